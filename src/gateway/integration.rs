//! The `Integration` stage: mock answers, the integration request (proxy event, request
//! template, function URL forwarding, payload 2.0 event) and the mapping of the answer.
//!
//! Owns: everything between "the request may go to its integration" and the reply.
//! Must not: call the host (the glue makes the call) or store in the cache (the pipeline
//! does).

use base64::Engine;

use super::*;
use crate::cache::{self, Mode};
use crate::error::GatewayError;
use crate::http::{header, Reply};
use crate::http::{UpstreamAnswer, UpstreamCall};
use crate::lambda::event::ProxyEvent;
use crate::lambda::function_url::{self, UrlOutcome};
use crate::lambda::invoke::{classify, InvokeOutcome, TargetKind};
use crate::lambda::response::{self, first_media_type, is_binary};
use crate::mapping::content::{self, Payload};
use crate::mapping::MapFailure;
use crate::mock::{Mock, MockFailure};

impl Gateway {
    /// Answers a mock integration (on the request headers: mocks see no body).
    pub(super) fn mock_answer(&self, head: &RequestHead, routed: &Routed, mock: &Mock) -> Outcome {
        let f = self.facts(head);
        let scope = self.scope(head, routed.known(self), &routed.params, &f, "");
        let (env, sources) = (scope.env(""), scope.sources(&[], ""));
        let content_type = header(&head.headers, "content-type");
        match mock.respond(
            &env,
            &sources,
            content_type,
            header(&head.headers, "accept"),
        ) {
            Ok(reply) => Outcome::ok(self.finalize(reply, head, false)),
            Err(MockFailure::UnsupportedMediaType) => self.fail(
                head,
                GatewayError::UnsupportedMediaType,
                "passthroughBehavior refuses the request's Content-Type",
            ),
            Err(MockFailure::Map(MapFailure::InvalidBody(m))) => {
                self.fail(head, GatewayError::InvalidRequestBody, &m)
            }
            Err(MockFailure::Map(MapFailure::Failed(m))) => {
                self.fail(head, GatewayError::MockFailed, &m)
            }
        }
    }

    /// Step 2, with the whole body: build the event (or render the request template, or
    /// forward the request to a function URL) and the call, signed when this filter signs.
    pub fn invoke(
        &self,
        head: &RequestHead,
        routed: &Routed,
        body: &[u8],
    ) -> Result<UpstreamCall, Outcome> {
        self.invoke_in(head, routed, body).map(|(call, _)| call)
    }

    /// [`Gateway::invoke`], also returning `$context` as a request template left it.
    pub(super) fn invoke_in(
        &self,
        head: &RequestHead,
        routed: &Routed,
        body: &[u8],
    ) -> Result<(UpstreamCall, Option<crate::vtl::Value>), Outcome> {
        let mut context = None;
        let mut call = self.build_call(head, routed, body, &mut context)?;
        self.sign(&mut call, head.now_ms);
        Ok((call, context))
    }

    pub(super) fn build_call(
        &self,
        head: &RequestHead,
        routed: &Routed,
        body: &[u8],
        context_out: &mut Option<crate::vtl::Value>,
    ) -> Result<UpstreamCall, Outcome> {
        let Some(route) = self.routes.get(routed.route) else {
            return Err(self.fail(
                head,
                GatewayError::IntegrationNotSupported,
                "route table out of step",
            ));
        };
        if let RouteAction::Http(h) = &route.action {
            if body.len() as u64 > self.max_body_bytes {
                return Err(self.request_too_large(head));
            }
            return self.backend_call(head, routed, h, body, context_out);
        }
        let (target, timeout_ms, aws) = match &route.action {
            RouteAction::LambdaProxy { target, timeout_ms } => (target, *timeout_ms, None),
            RouteAction::LambdaAws {
                target,
                timeout_ms,
                mapping,
            } => (target, *timeout_ms, Some(mapping)),
            RouteAction::Refused { reason } => {
                let reason = format!("{} {}: {reason}", head.method, route.resource);
                return Err(self.fail(head, GatewayError::IntegrationNotSupported, &reason));
            }
            RouteAction::Mock(_) | RouteAction::Http(_) => {
                return Err(self.fail(
                    head,
                    GatewayError::IntegrationNotSupported,
                    "a mock integration is answered on the request headers",
                ));
            }
        };
        if body.len() as u64 > self.max_body_bytes {
            return Err(self.request_too_large(head));
        }
        if let TargetKind::FunctionUrl { prefix } = &target.kind {
            let raw_query = head.path.split_once('?').map_or("", |(_, q)| q);
            return Ok(function_url::forward(
                target,
                prefix,
                (&head.method, &routed.event_path, raw_query),
                &self.event_headers(head),
                body,
                timeout_ms,
            ));
        }
        let f = self.facts(head);
        let request_context = self.request_context(head, routed.known(self), &f);
        let content_type = header(&head.headers, "content-type");
        if let Some(mapping) = aws {
            let binary = content_type
                .map(first_media_type)
                .is_some_and(|ct| is_binary(&ct, &self.binary_media_types))
                || std::str::from_utf8(body).is_err();
            let payload = content::request(body, binary, mapping.content_handling)
                .map_err(|m| self.fail(head, GatewayError::BinaryDecodeFailed, &m))?;
            let text = match &payload {
                Payload::Text(t) => t.clone(),
                Payload::Binary(_) => String::from_utf8_lossy(body),
            };
            let scope = self.scope(head, routed.known(self), &routed.params, &f, &text);
            let (env, sources) = (scope.env(&text), scope.sources(&[], ""));
            let rendered = match payload {
                Payload::Binary(bytes) => {
                    Ok(mapping.request_binary(bytes.into_owned(), &env, &sources))
                }
                Payload::Text(_) => mapping.request(&env, &sources, content_type),
            };
            *context_out = Some(scope.context.clone());
            return match rendered {
                Ok((payload, extra)) => {
                    let mut call =
                        UpstreamCall::sync(target, self.user_agent.clone(), payload, timeout_ms);
                    for (name, value) in extra {
                        call.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
                        call.headers.push((name.to_ascii_lowercase(), value));
                    }
                    Ok(call)
                }
                Err(e) => Err(self.request_failure(head, content_type, e)),
            };
        }
        let binary = content_type
            .map(first_media_type)
            .is_some_and(|ct| is_binary(&ct, &self.binary_media_types));
        let (body_text, is_base64) = match std::str::from_utf8(body) {
            _ if body.is_empty() => (None, false),
            Ok(text) if !binary => (Some(std::borrow::Cow::Borrowed(text)), false),
            _ => (
                Some(std::borrow::Cow::Owned(
                    base64::engine::general_purpose::STANDARD.encode(body),
                )),
                true,
            ),
        };
        if target.kind == TargetKind::InvokeV2 {
            let raw_query = head.path.split_once('?').map_or("", |(_, q)| q);
            let payload = function_url::event(&function_url::EventInput {
                method: &head.method,
                path: &routed.event_path,
                raw_query,
                query: &f.query,
                headers: &head.headers,
                host: &f.host,
                protocol: &head.protocol,
                source_ip: &head.source_ip,
                account_id: &self.api.account_id,
                api_id: &self.api.id,
                request_id: &head.request_id,
                request_time: &f.request_time,
                now_ms: head.now_ms,
                body: body_text.as_deref(),
                is_base64,
            });
            return Ok(UpstreamCall::sync(
                target,
                self.user_agent.clone(),
                payload,
                timeout_ms,
            ));
        }
        let event = ProxyEvent {
            request: self.request_fields(head, routed, route, &f, request_context),
            body: body_text.as_deref(),
            is_base64_encoded: is_base64,
        };
        Ok(UpstreamCall::sync(
            target,
            self.user_agent.clone(),
            event.to_vec(),
            timeout_ms,
        ))
    }

    /// Step 3: map the Invoke answer to the client reply, and say what the cache may keep.
    pub fn finish(&self, head: &RequestHead, routed: &Routed, resp: &UpstreamAnswer) -> Outcome {
        let mut outcome = match self.map_invoke(head, routed, resp) {
            Ok(reply) => {
                // The answer is kept as mapped: per-request headers and CORS are added
                // afresh to every reply made from it.
                let store = (routed.cache.is_some() && cache::store::cacheable(&reply))
                    .then(|| Box::new(reply.clone()));
                Outcome {
                    store,
                    ..Outcome::ok(self.finalize(reply, head, true))
                }
            }
            Err(outcome) => outcome,
        };
        outcome
            .reply
            .headers
            .extend(routed.limit_headers.iter().cloned());
        if let Some(plan) = &routed.cache {
            let what = match plan.mode {
                Mode::Lookup => "MISS",
                Mode::Refresh => "REFRESH",
            };
            self.annotate_cached(&mut outcome.reply, plan, what);
        }
        outcome
    }

    /// The mapped reply (before [`Gateway::finalize`]), or the failure.
    pub(super) fn map_invoke(
        &self,
        head: &RequestHead,
        routed: &Routed,
        resp: &UpstreamAnswer,
    ) -> Result<Reply, Outcome> {
        const INVOKE: TargetKind = TargetKind::Invoke;
        if resp.body.len() as u64 > self.max_response_bytes {
            // A forwarded answer is held only up to the limit: what came is at least this.
            let why = format!(
                "the integration's answer ({} bytes or more) is over limits.maxResponseBytes ({})",
                resp.body.len(),
                self.max_response_bytes
            );
            return Err(self.fail(head, GatewayError::BackendFailed, &why));
        }
        if let Some(RouteAction::Http(h)) = self.routes.get(routed.route).map(|r| &r.action) {
            return self.map_backend(head, routed, h, resp);
        }
        let (aws, kind) = match self.routes.get(routed.route).map(|r| (r, &r.action)) {
            Some((route, RouteAction::LambdaAws { mapping, .. })) => {
                (Some((route, mapping)), &INVOKE)
            }
            Some((_, RouteAction::LambdaProxy { target, .. })) => (None, &target.kind),
            _ => (None, &INVOKE),
        };
        if let TargetKind::FunctionUrl { .. } = kind {
            return match function_url::classify(resp) {
                UrlOutcome::Answer => Ok(function_url::passthrough(resp)),
                UrlOutcome::Rejected { status, error_type } => Err(self.fail(
                    head,
                    GatewayError::InvokeRejected,
                    &format!(
                        "the function URL refused the call with status {status}: {error_type}"
                    ),
                )),
                UrlOutcome::Timeout => Err(self.fail(
                    head,
                    GatewayError::IntegrationTimeout,
                    "the function URL did not answer within the integration timeout",
                )),
                UrlOutcome::Unreachable(why) => Err(self.fail(
                    head,
                    GatewayError::IntegrationUnreachable,
                    &format!("function URL unreachable: {why}"),
                )),
            };
        }
        let (payload, function_error) = match classify(resp) {
            InvokeOutcome::Payload(p) => (p, None),
            InvokeOutcome::FunctionError(msg) if aws.is_some() => (resp.body.as_slice(), Some(msg)),
            InvokeOutcome::FunctionError(msg) => {
                return Err(self.fail(
                    head,
                    GatewayError::FunctionError,
                    &format!("Lambda execution failed due to customer function error: {msg}"),
                ));
            }
            InvokeOutcome::Rejected { status, error_type } => {
                return Err(self.fail(
                    head,
                    GatewayError::InvokeRejected,
                    &format!("Lambda rejected the invocation with status {status}: {error_type}"),
                ));
            }
            InvokeOutcome::Timeout => {
                return Err(self.fail(
                    head,
                    GatewayError::IntegrationTimeout,
                    "Lambda did not answer within the integration timeout",
                ));
            }
            InvokeOutcome::Unreachable(why) => {
                return Err(self.fail(
                    head,
                    GatewayError::IntegrationUnreachable,
                    &format!("Lambda endpoint unreachable: {why}"),
                ));
            }
        };
        let Some((_, mapping)) = aws else {
            if *kind == TargetKind::InvokeV2 {
                return function_url::infer_response(payload)
                    .map_err(|e| self.fail(head, e.error, &e.reason));
            }
            return response::map(
                payload,
                &self.binary_media_types,
                header(&head.headers, "accept"),
            )
            .map_err(|e| self.fail(head, e.error, &e.reason));
        };
        let mapping_failed = |e: MapFailure| match e {
            MapFailure::InvalidBody(m) | MapFailure::Failed(m) => {
                self.fail(head, GatewayError::MappingFailed, &m)
            }
        };
        let response = mapping
            .response_for(function_error.as_deref())
            .map_err(mapping_failed)?;
        let accept = header(&head.headers, "accept");
        let accept_binary = accept
            .map(first_media_type)
            .is_some_and(|a| is_binary(&a, &self.binary_media_types));
        let binary =
            match content::lambda_response(payload, accept_binary, response.content_handling)
                .map_err(|m| self.fail(head, GatewayError::BinaryDecodeFailed, &m))?
            {
                Payload::Binary(b) => Some(b.into_owned()),
                Payload::Text(_) => None,
            };
        let f = self.facts(head);
        let mut scope = self.scope(head, routed.known(self), &routed.params, &f, "");
        self.restore_template_context(routed, &mut scope);
        let text = String::from_utf8_lossy(payload);
        let (env, sources) = (scope.env(&text), scope.sources(&resp.headers, &text));
        mapping
            .reply(response, (&env, &sources), accept, binary)
            .map_err(mapping_failed)
    }

    /// `$context` is one map for the whole request: what the request template wrote is
    /// there for the response template (with fresh response overrides).
    pub(super) fn restore_template_context(
        &self,
        routed: &Routed,
        scope: &mut crate::mapping::Scope,
    ) {
        if let Some(context) = &routed.template_context {
            if let crate::vtl::Value::Map(m) = context {
                for (k, v) in crate::mapping::override_maps() {
                    if &*k == "responseOverride" {
                        m.put(&k, v);
                    }
                }
            }
            scope.context = context.clone();
        }
    }
}
