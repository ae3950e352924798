//! The `ResourcePolicy` stage: the API's resource policy against this request.
//!
//! Owns: the facts a policy's conditions read (the caller's address, which Envoy derives
//! from the TCP peer or trusted `X-Forwarded-For` hops; `User-Agent`; `Referer`; the
//! deployment's VPC facts; the time), and combining the verdict with the method's
//! authentication as API Gateway documents it: an explicit deny always refuses; a method
//! without an authorizer needs an explicit allow; a method with a Lambda, Cognito or JWT
//! authorizer goes on to it unless denied (the authorizer then decides); an IAM method's
//! signed caller is allowed by the resource policy or their identity policy, unless either
//! denies. The 403s name the caller and the resource. Must not: authenticate anyone (the
//! `Iam` stage names the caller).

use super::pipeline::{Exchange, Step};
use super::{Gateway, Known};
use crate::error::GatewayError;
use crate::http::header;
use crate::resource_policy::{Caller, Facts, Verdict, INVOKE};

impl Gateway {
    /// Runs the stage: `None` goes on to the next stage.
    pub(super) fn resource_policy_stage(&self, ex: &mut Exchange) -> Option<Step> {
        let routed = ex.routed.as_ref()?;
        let route = self.routes.get(routed.route)?;
        if self.resource_policy.is_none() && !route.iam {
            return None;
        }
        let caller = routed.caller.and_then(|i| self.iam.get(i));
        let arn = self.method_arn(ex);
        let facts = Facts {
            source_ip: ex.head.source_ip.parse().ok(),
            source_vpc: self.policy_network.0.as_deref(),
            source_vpce: self.policy_network.1.as_deref(),
            referer: header(&ex.head.headers, "referer"),
            user_agent: header(&ex.head.headers, "user-agent"),
            principal_account: caller.map(|c| c.account.as_str()),
            now_ms: ex.head.now_ms,
            secure_transport: false,
        };
        let signed = caller.map(|c| Caller {
            arn: &c.arn,
            account: &c.account,
        });
        let resource = self.resource_policy.as_ref().map_or(Verdict::Silent, |p| {
            p.evaluate(&arn, signed.as_ref(), &facts)
        });
        // IAM methods: the caller's identity policy and the resource policy together (one
        // account: either may allow, neither may deny). Other methods: an explicit deny
        // refuses; without an authorizer, an explicit allow is needed.
        let verdict = match (route.iam, caller) {
            (true, Some(c)) => match (resource, c.allows(&arn, &facts)) {
                (Verdict::ExplicitDeny, _) | (_, Verdict::ExplicitDeny) => Verdict::ExplicitDeny,
                (Verdict::Allow, _) | (_, Verdict::Allow) => Verdict::Allow,
                _ => Verdict::Silent,
            },
            _ => resource,
        };
        let authenticated = route.authorizer.is_some() || route.token_auth.is_some();
        let who = caller.map_or("anonymous", |c| c.arn.as_str());
        let (error, suffix) = match verdict {
            Verdict::ExplicitDeny => (GatewayError::ExplicitDeny, " with an explicit deny"),
            Verdict::Silent if route.iam => (
                GatewayError::ImplicitDeny,
                " because no identity-based policy allows the execute-api:Invoke action",
            ),
            Verdict::Silent if !authenticated => (GatewayError::ImplicitDeny, ""),
            Verdict::Silent | Verdict::Allow => return None,
        };
        let message = format!(
            "User: {who} is not authorized to perform: {INVOKE} on resource: {arn}{suffix}"
        );
        let known = Known {
            route: Some(route),
            caller,
            ..Known::default()
        };
        let why = format!(
            "the {} {} {arn} for {who} from {}",
            if route.iam {
                "resource and identity policies"
            } else {
                "resource policy"
            },
            if verdict == Verdict::ExplicitDeny {
                "deny"
            } else {
                "allow nothing that covers"
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
