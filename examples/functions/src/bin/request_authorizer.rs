//! `request_authorizer`: a REQUEST Lambda authorizer written against the official event
//! types. Callers of tenant `acme` (header `X-Tenant`) may read; everyone else is denied.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::json;

async fn handler(
    event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
) -> Result<ApiGatewayCustomAuthorizerResponse, Error> {
    let (request, _context) = event.into_parts();
    let tenant = request
        .headers
        .get("x-tenant")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = if tenant == "acme" {
        IamPolicyEffect::Allow
    } else {
        IamPolicyEffect::Deny
    };
    statement.resource = vec![request.method_arn.unwrap_or_default()];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".into());
    document.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(format!("tenant-{tenant}"));
    response.policy_document = document;
    response.context = json!({
        "tenant": tenant,
        "path": request.path.unwrap_or_default(),
        "sourceIp": request.request_context.identity.and_then(|i| i.source_ip).unwrap_or_default(),
    });
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handler)).await
}
