"""Creates a Cognito user pool, an app client and a user on a Cognito emulator, signs the
user in, and prints what the end-to-end tests need as one JSON line.

Usage: cognito.py ENDPOINT_URL
"""

import json
import sys

import boto3


def main() -> None:
    endpoint = sys.argv[1]
    idp = boto3.client(
        "cognito-idp",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pool = idp.create_user_pool(PoolName="apigw-edge-e2e")["UserPool"]["Id"]
    client = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="web", ExplicitAuthFlows=["USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    idp.admin_create_user(
        UserPoolId=pool,
        Username="alice",
        UserAttributes=[{"Name": "email", "Value": "alice@example.com"}],
        MessageAction="SUPPRESS",
    )
    idp.admin_set_user_password(
        UserPoolId=pool, Username="alice", Password="Correct-Horse-9", Permanent=True
    )
    for group in ("admins", "ops"):
        idp.create_group(GroupName=group, UserPoolId=pool)
        idp.admin_add_user_to_group(UserPoolId=pool, Username="alice", GroupName=group)
    tokens = idp.initiate_auth(
        ClientId=client,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": "Correct-Horse-9"},
    )["AuthenticationResult"]
    print(
        json.dumps(
            {
                "pool": pool,
                "client": client,
                "id_token": tokens["IdToken"],
                "access_token": tokens["AccessToken"],
            }
        )
    )


if __name__ == "__main__":
    main()
