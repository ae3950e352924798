//! Replies the gateway makes: failures as gateway responses (built in or customised),
//! per-request headers (`x-amzn-RequestId`, `x-amz-apigw-id`, `X-Amzn-Trace-Id`), CORS
//! decoration, and cache annotations.
//!
//! Owns: turning a [`GatewayError`] into the client's reply and one log line. Must not:
//! decide when a request fails (the stages do).

use super::*;
use crate::cache::{self, CachePlan};
use crate::error::GatewayError;
use crate::http::{header, Reply};
use crate::mapping::{self, Sources};
use crate::vtl;

impl Gateway {
    pub(super) fn fail(&self, head: &RequestHead, error: GatewayError, reason: &str) -> Outcome {
        self.fail_in(head, Known::default(), error, reason)
    }

    /// A failure, with what the pipeline already knows of the request (for the
    /// `$context` of customised gateway responses).
    pub(super) fn fail_in(
        &self,
        head: &RequestHead,
        known: Known,
        error: GatewayError,
        reason: &str,
    ) -> Outcome {
        self.fail_saying(head, known, (error, error.message()), reason)
    }

    /// [`Gateway::fail_in`] with a message of its own instead of the error's usual one.
    pub(super) fn fail_saying(
        &self,
        head: &RequestHead,
        known: Known,
        (error, message): (GatewayError, &str),
        reason: &str,
    ) -> Outcome {
        self.fail_validating(head, known, (error, message, ""), reason)
    }

    /// [`Gateway::fail_saying`] with the details of a failed request validation, for
    /// `$context.error.validationErrorString`.
    pub(super) fn fail_validating(
        &self,
        head: &RequestHead,
        known: Known,
        (error, message, validation): (GatewayError, &str, &str),
        reason: &str,
    ) -> Outcome {
        let reply = self.finalize(
            self.error_reply(head, known, (error, message), validation),
            head,
            false,
        );
        Outcome {
            log: Some(format!(
                "{} {} {} -> {} {}: {reason}",
                head.request_id,
                head.method,
                head.path,
                error.status(),
                error.response_type().name()
            )),
            reply,
            error: Some(error),
            store: None,
            usage: None,
        }
    }

    /// The gateway response for an error: built in, or as the export customises it. A
    /// customised response's templates see the same `$context` as mapping templates, plus
    /// `$context.error`.
    pub(super) fn error_reply(
        &self,
        head: &RequestHead,
        known: Known,
        (error, message): (GatewayError, &str),
        validation: &str,
    ) -> Reply {
        if !self.gateway_responses.is_customised(error) {
            return error.to_reply_with(message);
        }
        let mut message_string = String::new();
        vtl::value::json_string(message, &mut message_string);
        let f = self.facts(head);
        let context = mapping::context_value(&self.request_context(head, known, &f));
        if let vtl::Value::Map(m) = &context {
            m.put(
                "error",
                vtl::Value::map(vec![
                    ("message".into(), vtl::Value::str(message)),
                    ("messageString".into(), vtl::Value::str(message_string)),
                    (
                        "responseType".into(),
                        vtl::Value::str(error.response_type().name()),
                    ),
                    ("validationErrorString".into(), vtl::Value::str(validation)),
                ]),
            );
        }
        let stage_variables = self.stage_variables_value();
        let sources = Sources {
            path: &[],
            query: &f.query,
            headers: &head.headers,
            body: "",
            stage_variables: &stage_variables,
            context: &context,
            integration_headers: &[],
            integration_body: "",
        };
        self.gateway_responses.reply(
            (error, message),
            header(&head.headers, "accept"),
            &sources,
            &context,
        )
    }

    /// Adds the per-request headers and applies the CORS policy: every reply but a
    /// preflight's leaves through here.
    pub(super) fn finalize(&self, reply: Reply, head: &RequestHead, integration: bool) -> Reply {
        let mut reply = self.stamp(reply, head, integration);
        if let Some(cors) = &self.cors {
            cors.decorate(&mut reply, &head.headers);
        }
        reply
    }

    /// Adds `x-amzn-RequestId`, `x-amz-apigw-id` and, for integration answers,
    /// `X-Amzn-Trace-Id`.
    pub(super) fn stamp(&self, mut reply: Reply, head: &RequestHead, integration: bool) -> Reply {
        reply.headers.reserve(3);
        reply
            .headers
            .push(("x-amzn-RequestId".into(), head.request_id.clone()));
        reply.headers.push((
            "x-amz-apigw-id".into(),
            extended_request_id(&head.request_id),
        ));
        if integration {
            let client = header(&head.headers, "x-amzn-trace-id");
            let trace = super::context::reply_trace(client, &head.request_id, head.now_ms);
            reply.set_default_header("X-Amzn-Trace-Id", &trace);
        }
        reply
    }

    /// Adds what the cache says about a reply: the ignored-invalidation warning and, when
    /// enabled, the debug header.
    pub(super) fn annotate_cached(&self, reply: &mut Reply, plan: &CachePlan, what: &str) {
        if plan.warn {
            reply
                .headers
                .push((cache::WARNING.0.into(), cache::WARNING.1.into()));
        }
        if self.cache.as_ref().is_some_and(|c| c.debug_header) {
            reply
                .headers
                .push((cache::DEBUG_HEADER.into(), what.into()));
        }
    }

    /// The reply for a stored answer found by the glue.
    pub fn cache_hit(&self, head: &RequestHead, routed: &Routed, stored: Reply) -> Outcome {
        let mut reply = self.finalize(stored, head, true);
        if let Some(plan) = &routed.cache {
            self.annotate_cached(&mut reply, plan, "HIT");
        }
        reply.headers.extend(routed.limit_headers.iter().cloned());
        Outcome::ok(reply)
    }

    /// The reply for a body over [`Gateway::max_body_bytes`].
    pub fn request_too_large(&self, head: &RequestHead) -> Outcome {
        self.fail(
            head,
            GatewayError::RequestTooLarge,
            &format!("request body exceeds {} bytes", self.max_body_bytes),
        )
    }
}
