//! `echo`: a lambda_runtime function that answers with the proxy event it received, so the
//! event API Gateway (or apigw-edge) built can be inspected from the client.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let status = event
        .payload
        .pointer("/queryStringParameters/status")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(200);
    Ok(json!({
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"X-Echo": ["one", "two"]},
        "body": event.payload.to_string(),
        "isBase64Encoded": false
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handler)).await
}
