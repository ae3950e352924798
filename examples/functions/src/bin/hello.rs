//! `hello`: a lambda_http function behind an API Gateway REST proxy integration.
//!
//! `GET /hello?name=Ada` and `GET /hello/{name}` greet; `GET /hello/fail` fails on purpose,
//! which the gateway answers with 502 as API Gateway does.

use lambda_http::{run, service_fn, Body, Error, Request, RequestExt, Response};
use serde_json::json;

async fn handler(event: Request) -> Result<Response<Body>, Error> {
    let path_name = event
        .path_parameters_ref()
        .and_then(|p| p.first("name"))
        .map(str::to_string);
    if path_name.as_deref() == Some("fail") {
        return Err("failing on purpose".into());
    }
    let name = path_name
        .or_else(|| {
            event
                .query_string_parameters_ref()
                .and_then(|q| q.first("name"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "world".to_string());
    let greeting = event
        .stage_variables_ref()
        .and_then(|v| v.first("greeting"))
        .unwrap_or("Hello")
        .to_string();
    let stage = match event.request_context() {
        lambda_http::request::RequestContext::ApiGatewayV1(ctx) => ctx.stage.unwrap_or_default(),
        _ => String::new(),
    };
    let body = json!({
        "message": format!("{greeting}, {name}!"),
        "path": event.uri().path(),
        "stage": stage,
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-example", "hello")
        .body(body.to_string().into())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handler)).await
}
