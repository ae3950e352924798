//! The `ResourcePolicy` stage: the API's resource policy against this request.
//!
//! Owns: the facts a policy's conditions read (the caller's address, which Envoy derives
//! from the TCP peer or trusted `X-Forwarded-For` hops; `User-Agent`; `Referer`; the
//! deployment's VPC facts; the time), and combining the verdict with the method's
//! authentication as API Gateway documents it: an explicit deny always refuses; a method
//! without an authorizer needs an explicit allow; a method with a Lambda, Cognito or JWT
//! authorizer goes on to it unless denied (the authorizer then decides). The 403s name the
//! caller and the resource. Must not: authenticate anyone (IAM callers are anonymous here
//! until a SigV4 stage names them).

use super::pipeline::{Exchange, Step};
use super::{Gateway, Known};
use crate::error::GatewayError;
use crate::http::header;
use crate::resource_policy::{Facts, Verdict, INVOKE};

impl Gateway {
    /// Runs the stage: `None` goes on to the next stage.
    pub(super) fn resource_policy_stage(&self, ex: &mut Exchange) -> Option<Step> {
        let policy = self.resource_policy.as_ref()?;
        let routed = ex.routed.as_ref()?;
        let route = self.routes.get(routed.route)?;
        let arn = self.method_arn(ex);
        let facts = Facts {
            source_ip: ex.head.source_ip.parse().ok(),
            source_vpc: self.policy_network.0.as_deref(),
            source_vpce: self.policy_network.1.as_deref(),
            referer: header(&ex.head.headers, "referer"),
            user_agent: header(&ex.head.headers, "user-agent"),
            principal_account: None,
            now_ms: ex.head.now_ms,
            secure_transport: false,
        };
        let verdict = policy.evaluate(&arn, None, &facts);
        let authenticated = route.authorizer.is_some() || route.token_auth.is_some();
        let (error, suffix) = match verdict {
            Verdict::ExplicitDeny => (GatewayError::ExplicitDeny, " with an explicit deny"),
            Verdict::Silent if !authenticated => (GatewayError::ImplicitDeny, ""),
            Verdict::Silent | Verdict::Allow => return None,
        };
        let message = format!(
            "User: anonymous is not authorized to perform: {INVOKE} on resource: {arn}{suffix}"
        );
        let known = Known {
            route: Some(route),
            ..Known::default()
        };
        let why = format!(
            "the resource policy {} {arn} for {}",
            if suffix.is_empty() {
                "allows nothing that covers"
            } else {
                "denies"
            },
            ex.head.source_ip
        );
        Some(Step::Reply(Box::new(self.fail_saying(
            &ex.head,
            known,
            (error, &message),
            &why,
        ))))
    }
}
