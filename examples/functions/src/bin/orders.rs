//! `orders`: a plain lambda_runtime function behind a non-proxy (`aws`) integration.
//!
//! The gateway's request template turns `POST /orders/{id}` into
//! `{"orderId": "...", "quantity": n, "stage": "..."}`; the function answers with an order
//! or fails with a message the integration responses map to 404 or 400.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, _context) = event.into_parts();
    let id = payload["orderId"].as_str().unwrap_or_default().to_string();
    let quantity = payload["quantity"].as_i64().unwrap_or(0);
    if id.starts_with("missing") {
        return Err(format!("Order NotFound: {id}").into());
    }
    if quantity <= 0 {
        return Err(format!("Invalid quantity {quantity}").into());
    }
    Ok(json!({
        "id": id,
        "quantity": quantity,
        "total": quantity as f64 * 2.5,
        "stage": payload["stage"],
        "version": "v1"
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handler)).await
}
