//! `token_authorizer`: a TOKEN Lambda authorizer written against the official event types.
//!
//! `Authorization: Bearer allow-<name>` is allowed on every method of the stage, with
//! `<name>` as the principal and a context the backend receives; `Bearer deny` gets an
//! explicit deny; anything else fails with `Unauthorized` (401).

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::json;

/// `arn:…:{api}/{stage}/*`: every method of the stage the request came to, so that a cached
/// result serves the caller's other methods too.
fn whole_stage(method_arn: &str) -> String {
    let mut parts = method_arn.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(api), Some(stage)) => format!("{api}/{stage}/*"),
        _ => method_arn.to_string(),
    }
}

fn policy(
    principal: &str,
    effect: IamPolicyEffect,
    resource: String,
) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = vec![resource];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".into());
    document.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(principal.into());
    response.policy_document = document;
    response.context = json!({"user": principal, "tier": "gold", "checked": true});
    response
}

async fn handler(
    event: LambdaEvent<ApiGatewayCustomAuthorizerRequest>,
) -> Result<ApiGatewayCustomAuthorizerResponse, Error> {
    let (request, _context) = event.into_parts();
    let arn = request.method_arn.unwrap_or_default();
    let token = request.authorization_token.unwrap_or_default();
    match token.strip_prefix("Bearer ") {
        Some("deny") => Ok(policy("blocked", IamPolicyEffect::Deny, whole_stage(&arn))),
        Some(t) if t.starts_with("allow-") => Ok(policy(
            t.trim_start_matches("allow-"),
            IamPolicyEffect::Allow,
            whole_stage(&arn),
        )),
        _ => Err("Unauthorized".into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handler)).await
}
