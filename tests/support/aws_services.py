"""Prepares and reads back the AWS services the end-to-end tests of AWS service integrations
use, on a local emulator of them. Prints one JSON line.

Usage: aws_services.py ENDPOINT_URL setup|read
"""

import json
import sys

import boto3

REGION = "us-east-1"


def client(endpoint: str, service: str):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def setup(endpoint: str) -> dict:
    sqs = client(endpoint, "sqs")
    orders = sqs.create_queue(QueueName="orders")["QueueUrl"]
    inbox = sqs.create_queue(QueueName="events-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns = client(endpoint, "sns")
    topic = sns.create_topic(Name="events")["TopicArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=inbox_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    client(endpoint, "s3").create_bucket(Bucket="uploads")
    kinesis = client(endpoint, "kinesis")
    kinesis.create_stream(StreamName="clicks", ShardCount=1)
    client(endpoint, "dynamodb").create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return {"orders": orders, "inbox": inbox, "topic": topic}


def read(endpoint: str) -> dict:
    sqs = client(endpoint, "sqs")

    def messages(name: str) -> list:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return [m["Body"] for m in got.get("Messages", [])]

    s3 = client(endpoint, "s3")
    objects = {
        o["Key"]: s3.get_object(Bucket="uploads", Key=o["Key"])["Body"].read().decode()
        for o in s3.list_objects_v2(Bucket="uploads").get("Contents", [])
    }
    kinesis = client(endpoint, "kinesis")
    shard = kinesis.describe_stream(StreamName="clicks")["StreamDescription"]["Shards"][0]
    iterator = kinesis.get_shard_iterator(
        StreamName="clicks", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = [
        r["Data"].decode() for r in kinesis.get_records(ShardIterator=iterator)["Records"]
    ]
    items = client(endpoint, "dynamodb").scan(TableName="items")["Items"]
    return {
        "orders": messages("orders"),
        "inbox": messages("events-inbox"),
        "objects": objects,
        "records": records,
        "items": items,
    }


def main() -> None:
    endpoint, what = sys.argv[1], sys.argv[2]
    out = setup(endpoint) if what == "setup" else read(endpoint)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
