//! The HTTP side of the `Integration` stage: the call to an `http` or `http_proxy` backend
//! and the reply made from its answer.
//!
//! Owns: turning the request into a [`crate::http_integration::ClientRequest`], the failures
//! of a backend call (timeout, unreachable, oversized answer) and which mapping makes the
//! reply. Must not: call the host (the glue dispatches) or build the request itself (see
//! [`crate::http_integration`]).

use super::*;
use crate::error::GatewayError;
use crate::http::{header, Reply, UpstreamAnswer, UpstreamCall};
use crate::http_integration::{self, BackendOutcome, ClientRequest, HttpIntegration};
use crate::lambda::response::{first_media_type, is_binary};
use crate::mapping::aws::RequestFailure;
use crate::mapping::content::{self, Payload};
use crate::mapping::MapFailure;

impl Gateway {
    /// The call to the backend, and `$context` as a request template left it.
    pub(super) fn backend_call(
        &self,
        head: &RequestHead,
        routed: &Routed,
        integration: &HttpIntegration,
        body: &[u8],
        context_out: &mut Option<crate::vtl::Value>,
    ) -> Result<UpstreamCall, Outcome> {
        let content_type = header(&head.headers, "content-type");
        let binary = content_type
            .map(first_media_type)
            .is_some_and(|ct| is_binary(&ct, &self.binary_media_types))
            || std::str::from_utf8(body).is_err();
        let payload = if integration.proxy {
            Payload::Binary(std::borrow::Cow::Borrowed(body))
        } else {
            content::request(body, binary, integration.content_handling)
                .map_err(|m| self.fail(head, GatewayError::BinaryDecodeFailed, &m))?
        };
        let (text, sent, binary) = match &payload {
            Payload::Text(t) => (t.clone(), t.as_bytes(), false),
            Payload::Binary(b) => (String::from_utf8_lossy(body), b.as_ref(), true),
        };
        let f = self.facts(head);
        let scope = if integration.reads_context() {
            self.scope(head, routed.known(self), &routed.params, &f, &text)
        } else {
            self.scope_without_context(&routed.params, &f, &text)
        };
        let (env, sources) = (scope.env(&text), scope.sources(&[], ""));
        let headers = if integration.proxy {
            self.event_headers(head)
        } else {
            Vec::new()
        };
        let client = ClientRequest {
            method: &head.method,
            raw_query: head.path.split_once('?').map_or("", |(_, q)| q),
            headers: &headers,
            content_type,
            body: sent,
            binary,
        };
        let call = integration.call(&client, &env, &sources, &self.user_agent);
        *context_out = Some(env.context.clone());
        call.map_err(|e| self.request_failure(head, content_type, e))
    }

    /// The outcome of a request the integration request could not be made for.
    pub(super) fn request_failure(
        &self,
        head: &RequestHead,
        content_type: Option<&str>,
        e: RequestFailure,
    ) -> Outcome {
        match e {
            RequestFailure::UnsupportedMediaType => self.fail(
                head,
                GatewayError::UnsupportedMediaType,
                &format!(
                    "passthroughBehavior refuses Content-Type {}",
                    content_type.unwrap_or("(none)")
                ),
            ),
            RequestFailure::Map(MapFailure::InvalidBody(m)) => {
                self.fail(head, GatewayError::InvalidRequestBody, &m)
            }
            RequestFailure::Map(MapFailure::Failed(m)) => {
                self.fail(head, GatewayError::MappingFailed, &m)
            }
        }
    }

    /// The reply (before [`Gateway::finalize`]) for a backend's answer, or the failure.
    pub(super) fn map_backend(
        &self,
        head: &RequestHead,
        routed: &Routed,
        integration: &HttpIntegration,
        resp: &UpstreamAnswer,
    ) -> Result<Reply, Outcome> {
        let status = match HttpIntegration::classify(resp) {
            BackendOutcome::Timeout => {
                return Err(self.fail(
                    head,
                    GatewayError::IntegrationTimeout,
                    "the HTTP backend did not answer within the integration timeout",
                ))
            }
            BackendOutcome::Unreachable(why) => {
                return Err(self.fail(
                    head,
                    GatewayError::BackendFailed,
                    &format!("HTTP backend unreachable: {why}"),
                ))
            }
            BackendOutcome::Answer(status) => status,
        };
        if integration.proxy {
            return Ok(http_integration::passthrough(resp));
        }
        let mapping_failed = |e: MapFailure| match e {
            MapFailure::InvalidBody(m) | MapFailure::Failed(m) => {
                self.fail(head, GatewayError::MappingFailed, &m)
            }
        };
        let response = integration.response_for(status).map_err(mapping_failed)?;
        let accept = header(&head.headers, "accept");
        let binary_answer = header(&resp.headers, "content-type")
            .map(first_media_type)
            .is_some_and(|ct| is_binary(&ct, &self.binary_media_types))
            || std::str::from_utf8(&resp.body).is_err();
        let accept_binary = accept
            .map(first_media_type)
            .is_some_and(|a| is_binary(&a, &self.binary_media_types));
        let payload = content::response(
            &resp.body,
            binary_answer,
            accept_binary,
            response.content_handling,
        )
        .map_err(|m| self.fail(head, GatewayError::BinaryDecodeFailed, &m))?;
        let (text, binary) = match payload {
            Payload::Text(t) => (t, None),
            Payload::Binary(b) => (String::from_utf8_lossy(&resp.body), Some(b.into_owned())),
        };
        let f = self.facts(head);
        let mut scope = self.scope(head, routed.known(self), &routed.params, &f, "");
        self.restore_template_context(routed, &mut scope);
        let (env, sources) = (scope.env(&text), scope.sources(&resp.headers, &text));
        integration
            .mapped_reply(response, (&env, &sources), accept, binary)
            .map_err(mapping_failed)
    }
}
