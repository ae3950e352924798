//! The stages before the integration: CORS preflight, routing, API key and usage plan,
//! and the stage cache plan. (The authorizer stage lives in `authorize.rs`; the order is
//! `pipeline::STAGES`.)
//!
//! Owns: each stage's rule as a function of the request and what earlier stages found.
//! Must not: call the host or run other stages.

use super::*;
use crate::cache::{Decision, KeySource};
use crate::error::GatewayError;
use crate::http::header;
use crate::mock::Mock;
use crate::openapi::Method;
use crate::shared::SharedCells;

impl Gateway {
    /// How much of `raw` (a request path, without its query) this stage's base path
    /// takes (`/prod`, `/v1`, nothing for the empty mapping), or `None` when the path is
    /// outside the stage. Several stages in one gateway pick by the longest.
    pub fn base_path_match(&self, raw: &str) -> Option<usize> {
        self.after_base_path(raw)?;
        Some(match &self.base_path {
            BasePath::Stage => self.stage.len() + 1,
            BasePath::Mapping(prefix) => prefix.len(),
        })
    }

    /// What follows the stage's base path in `raw` (empty, or from a `/`), without
    /// allocating; `None` when the path is outside the stage.
    fn after_base_path<'p>(&self, raw: &'p str) -> Option<&'p str> {
        let rest = match &self.base_path {
            // Extra slashes before the stage are ignored, as API Gateway ignores them.
            BasePath::Stage => raw
                .strip_prefix('/')?
                .trim_start_matches('/')
                .strip_prefix(self.stage.as_str())?,
            BasePath::Mapping(prefix) => raw.strip_prefix(prefix.as_str())?,
        };
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Splits a raw request path into the event `path` and the path to match, or `None`
    /// when it is outside this stage.
    pub(super) fn split_path<'p>(&self, raw: &'p str) -> Option<(&'p str, String)> {
        let rest = self.after_base_path(raw)?;
        let trimmed = rest.trim_start_matches('/');
        let event_path = match &self.base_path {
            BasePath::Stage if trimmed.is_empty() => "/",
            BasePath::Stage => raw.get(raw.len() - trimmed.len() - 1..).unwrap_or("/"),
            BasePath::Mapping(_) => raw,
        };
        let mut match_path = String::with_capacity(trimmed.len() + 1);
        match_path.push('/');
        match_path.push_str(trimmed.strip_suffix('/').unwrap_or(trimmed));
        Some((event_path, match_path))
    }

    /// Stage `ClientCert`: with mutual TLS, the certificate Envoy verified in the handshake
    /// (its `x-forwarded-client-cert`), read once for `identity.clientCert` (or taken from
    /// the worker's cache of certificates already read). Without one the request is refused
    /// with API Gateway's mutual TLS answer, 403 `Forbidden`.
    pub(super) fn client_cert_stage(
        &self,
        head: &mut RequestHead,
        host: &super::pipeline::Host,
    ) -> Option<Outcome> {
        if !self.mtls {
            return None;
        }
        let value = head
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(crate::client_cert::XFCC_HEADER))
            .map(|(_, v)| v.as_bytes());
        let Some(value) = value else {
            return Some(self.fail(
                head,
                GatewayError::ClientCertificate,
                "no client certificate came with the request",
            ));
        };
        let key = String::from_utf8_lossy(value);
        let cached = host
            .certs
            .and_then(|c| c.borrow_mut().get(&key, head.now_ms, 0));
        let read = match cached {
            Some(cert) => Ok(cert),
            None => crate::client_cert::ClientCert::from_xfcc(value).map(|cert| {
                let cert = Rc::new(cert);
                if let Some(cache) = host.certs {
                    cache.borrow_mut().put(
                        key.into_owned(),
                        cert.clone(),
                        head.now_ms,
                        crate::client_cert::CERT_CACHE_MS,
                        0,
                    );
                }
                cert
            }),
        };
        match read {
            Ok(cert) => {
                head.client_cert = Some(cert);
                None
            }
            Err(why) => Some(self.fail(head, GatewayError::ClientCertificate, &why)),
        }
    }

    /// Stage `Validation`: the method's request validator. Required parameters first
    /// (`400 Missing required request parameters: [a, b]`), then the body against the model
    /// for its content type (`400 Invalid request body`, the details in
    /// `$context.error.validationErrorString`); the body is waited for only when a model
    /// applies.
    pub(super) fn validation_stage(
        &self,
        ex: &mut super::pipeline::Exchange,
    ) -> Option<super::pipeline::Step> {
        let routed = ex.routed.as_ref()?;
        let route = self.routes.get(routed.route)?;
        let check = route.validation.as_ref()?;
        let known = Known {
            route: Some(route),
            ..Known::default()
        };
        if !check.params.is_empty() {
            let raw_query = ex
                .head
                .path
                .split_once('?')
                .map(|(_, q)| q)
                .unwrap_or_default();
            let query = crate::query::parse(raw_query);
            let missing = check.missing(&routed.params, &query, &ex.head.headers);
            if !missing.is_empty() {
                let message = format!(
                    "Missing required request parameters: [{}]",
                    missing.join(", ")
                );
                let o = self.fail_validating(
                    &ex.head,
                    known,
                    (GatewayError::MissingParameters, &message, &message),
                    &message,
                );
                return Some(super::pipeline::Step::Reply(Box::new(o)));
            }
        }
        let model = check.model_for(header(&ex.head.headers, "content-type"))?;
        let Some(body) = &ex.body else {
            return Some(super::pipeline::Step::NeedBody);
        };
        let why = self.models.validate(model, body).err()?;
        let o = self.fail_validating(
            &ex.head,
            known,
            (
                GatewayError::InvalidBody,
                GatewayError::InvalidBody.message(),
                &why,
            ),
            &format!("invalid request body: {why}"),
        );
        Some(super::pipeline::Step::Reply(Box::new(o)))
    }

    /// Stage `Preflight`: a CORS preflight the deployment's policy answers.
    pub(super) fn preflight(&self, head: &RequestHead) -> Option<Outcome> {
        let reply = self.cors.as_ref()?.preflight(&head.method, &head.headers)?;
        Some(Outcome::ok(self.stamp(reply, head, false)))
    }

    /// Stage `Route`: the stage, the resource and method, and the declared body size.
    pub(super) fn route(&self, head: &RequestHead) -> Result<Routed, Outcome> {
        let raw_path = head.path.split('?').next().unwrap_or_default();
        let Some((event_path, match_path)) = self.split_path(raw_path) else {
            return Err(self.fail(
                head,
                GatewayError::MissingAuthenticationToken,
                "path is outside the stage",
            ));
        };
        let Some(found) =
            Method::from_request(&head.method).and_then(|m| self.router.find(m, &match_path))
        else {
            return Err(self.fail(
                head,
                GatewayError::MissingAuthenticationToken,
                "no resource and method match",
            ));
        };
        let too_large = header(&head.headers, "content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body_bytes);
        if too_large {
            return Err(self.request_too_large(head));
        }
        Ok(Routed {
            route: found.operation,
            params: found.params,
            event_path: event_path.to_string(),
            cache: None,
            api_key_id: None,
            usage: None,
            limit_headers: Vec::new(),
            notice: None,
            auth: None,
            caller: None,
            template_context: None,
        })
    }

    /// Stage `ApiKeyUsage`: the API key (from `x-api-key`, or from the authorizer's
    /// `usageIdentifierKey` when the API's key source is `AUTHORIZER`), its usage plan, and
    /// the plan's and the stage's throttles and quota, counted in `cells` (shared by all
    /// workers).
    pub(super) fn admit(
        &self,
        head: &RequestHead,
        routed: &mut Routed,
        cells: &dyn SharedCells,
    ) -> Result<(), Outcome> {
        let caller = self.caller_of(head, routed)?;
        let check = self.usage.check(cells, routed.route, caller, head.now_ms);
        self.apply_check(head, routed, caller.map(|(k, p)| (k.id.as_str(), p)), check)
    }

    /// The API key a method that requires one was called with, and its usage plan; the
    /// refusal when there is none or it is in no plan of this stage.
    pub(super) fn caller_of(
        &self,
        head: &RequestHead,
        routed: &Routed,
    ) -> Result<Option<(&crate::apikeys::Key, usize)>, Outcome> {
        if !self.usage.key_required(routed.route) {
            return Ok(None);
        }
        let (presented, from) = if self.api_key_from_authorizer {
            let key = routed.auth.as_ref().and_then(|a| match a {
                Authorized::Lambda { decision, .. } => decision.usage_key.as_deref(),
                Authorized::Token(_) => None,
            });
            (key, "the authorizer's usageIdentifierKey")
        } else {
            (header(&head.headers, "x-api-key"), "x-api-key")
        };
        let Some(key) = presented.and_then(|v| self.api_keys.identify(v)) else {
            let why = if presented.is_some() {
                format!("unknown or disabled API key in {from}")
            } else {
                format!("the method requires an API key and {from} is missing")
            };
            let known = routed.known(self);
            return Err(self.fail_in(head, known, GatewayError::InvalidApiKey, &why));
        };
        let Some(plan) = self.usage.plan_of(key) else {
            let why = format!(
                "API key {} is in no usage plan of stage {}",
                key.id, self.stage
            );
            let known = routed.known(self);
            return Err(self.fail_in(head, known, GatewayError::InvalidApiKey, &why));
        };
        Ok(Some((key, plan)))
    }

    /// Applies a finished usage check: the refusal, or what the request carries on with.
    pub(super) fn apply_check(
        &self,
        head: &RequestHead,
        routed: &mut Routed,
        caller: Option<(&str, usize)>,
        check: crate::usage::Check,
    ) -> Result<(), Outcome> {
        if let Err((error, reason)) = &check.verdict {
            let mut outcome = self.fail_in(head, routed.known(self), *error, reason);
            outcome.reply.headers.extend(check.headers);
            outcome.usage = check.event;
            return Err(outcome);
        }
        routed.api_key_id = caller.map(|(k, _)| k.to_string());
        routed.usage = check.event;
        routed.limit_headers = check.headers;
        routed.notice = check.log;
        Ok(())
    }

    /// The mock integration of a route, when it has one.
    pub(super) fn mock_of(&self, routed: &Routed) -> Option<&Mock> {
        match self.routes.get(routed.route).map(|r| &r.action) {
            Some(RouteAction::Mock(mock)) => Some(mock),
            _ => None,
        }
    }

    /// Stage `Cache` (planning): what the stage cache does for this request.
    pub(super) fn plan_cache(
        &self,
        head: &RequestHead,
        routed: &mut Routed,
    ) -> Result<(), Outcome> {
        routed.cache = match self.cache_decision(head, routed.route, &routed.params) {
            Some(Decision::Forbidden) => return Err(self.fail_in(
                head,
                routed.known(self),
                GatewayError::CacheInvalidationForbidden,
                "Cache-Control: max-age=0 from a caller not allowed to invalidate (FAIL_WITH_403)",
            )),
            Some(Decision::Use(plan)) => Some(plan),
            None => None,
        };
        Ok(())
    }

    pub(super) fn cache_decision(
        &self,
        head: &RequestHead,
        route: usize,
        params: &[(String, String)],
    ) -> Option<Decision> {
        let stage_cache = self.cache.as_ref()?;
        let route = self.routes.get(route)?;
        let rule = route.cache.as_ref()?;
        let src = KeySource {
            stage: &self.stage,
            method: &head.method,
            resource: &route.resource,
            path_params: params,
            raw_query: head
                .path
                .split_once('?')
                .map(|(_, q)| q)
                .unwrap_or_default(),
            headers: &head.headers,
        };
        Some(stage_cache.plan(rule, &src, &self.api_keys))
    }
}
