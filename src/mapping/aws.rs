//! The non-proxy Lambda integration (`type: aws`): the Invoke payload from a request
//! template (or the body passed through), and the reply from the function's result through
//! the integration responses.
//!
//! Owns: `requestParameters` that reach the Invoke call (`X-Amz-Invocation-Type` for
//! asynchronous invocations, `X-Amz-Client-Context`, `X-Amz-Log-Type`; also settable from a
//! template through `$context.requestOverride.header`), the 415 of `passthroughBehavior`,
//! and selecting the integration response by the function's `errorMessage`. Must not:
//! dispatch the call or classify the Invoke answer (see [`crate::lambda::invoke`]).

use serde_json::Value as Json;

use super::content::ContentHandling;
use super::{
    header_mappings, integration_reply, integration_reply_with, override_headers, request_plan,
    IntegrationResponse, IntegrationResponses, MapFailure, Passthrough, RequestPlan, Selector,
    Side, Source, Sources, Templates,
};
use crate::error::ConfigError;
use crate::http::{Header, Reply};
use crate::vtl;

/// Integration request headers the Lambda Invoke API acts on.
pub const INVOKE_HEADERS: [&str; 3] = [
    "X-Amz-Invocation-Type",
    "X-Amz-Client-Context",
    "X-Amz-Log-Type",
];

/// A compiled non-proxy Lambda integration.
#[derive(Debug)]
pub struct AwsMapping {
    request_templates: Templates,
    passthrough: Passthrough,
    invoke_headers: Vec<(String, Source)>,
    responses: IntegrationResponses,
    /// How the request payload crosses between text and binary (`contentHandling`).
    pub content_handling: ContentHandling,
}

/// Why a request cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFailure {
    /// `passthroughBehavior` refuses the `Content-Type` (415).
    UnsupportedMediaType,
    Map(MapFailure),
}

fn canonical_invoke_header(name: &str) -> Option<&'static str> {
    INVOKE_HEADERS
        .into_iter()
        .find(|h| h.eq_ignore_ascii_case(name))
}

impl AwsMapping {
    /// Compiles the integration; problems go to `errors`, mappings that cannot affect a
    /// Lambda call to `warnings`.
    pub fn compile(
        spec: &Json,
        method_responses: Option<Vec<u16>>,
        at: &str,
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<ConfigError>,
    ) -> AwsMapping {
        let request_templates = Templates::compile(
            spec.get("requestTemplates"),
            &format!("{at}.requestTemplates"),
            errors,
        );
        let passthrough = Passthrough::compile(spec, at, errors);
        let mut invoke_headers = Vec::new();
        let mut ignored = Vec::new();
        let all = header_mappings(
            spec.get("requestParameters"),
            "integration.request.",
            Side::Request,
            &format!("{at}.requestParameters"),
            errors,
        );
        for (dest, source) in all {
            match dest
                .strip_prefix("header.")
                .and_then(canonical_invoke_header)
            {
                Some(h) => invoke_headers.push((h.to_string(), source)),
                None => ignored.push(dest),
            }
        }
        for dest in ignored {
            warnings.push(ConfigError::new(
                format!("{at}.requestParameters.integration.request.{dest}"),
                "has no effect on a Lambda integration (only the X-Amz-Invocation-Type, X-Amz-Client-Context and X-Amz-Log-Type headers reach the Invoke API)",
            ));
        }
        let responses = IntegrationResponses::compile(spec, method_responses, at, errors);
        AwsMapping {
            request_templates,
            passthrough,
            invoke_headers,
            responses,
            content_handling: ContentHandling::compile(spec, at, errors),
        }
    }

    /// The Invoke payload and extra Invoke headers for a request.
    pub fn request(
        &self,
        env: &vtl::Env,
        sources: &Sources,
        content_type: Option<&str>,
    ) -> Result<(Vec<u8>, Vec<Header>), RequestFailure> {
        let payload = match request_plan(&self.request_templates, self.passthrough, content_type) {
            RequestPlan::Unsupported => return Err(RequestFailure::UnsupportedMediaType),
            RequestPlan::PassThrough => sources.body.to_string(),
            RequestPlan::Transform(t) => t
                .render(env)
                .map_err(|e| RequestFailure::Map(MapFailure::from(e)))?,
        };
        // Lambda takes an empty payload as `{}`; sending it keeps emulators in line.
        let payload = if payload.trim().is_empty() {
            "{}".to_string()
        } else {
            payload
        };
        Ok((payload.into_bytes(), self.headers(env, sources)))
    }

    /// A binary request payload (see [`crate::mapping::content`]) goes to Lambda as it is,
    /// with the Invoke headers the mappings set.
    pub fn request_binary(
        &self,
        payload: Vec<u8>,
        env: &vtl::Env,
        sources: &Sources,
    ) -> (Vec<u8>, Vec<Header>) {
        (payload, self.headers(env, sources))
    }

    fn headers(&self, env: &vtl::Env, sources: &Sources) -> Vec<Header> {
        let mut headers: Vec<Header> = Vec::new();
        for (name, source) in &self.invoke_headers {
            if let Some(v) = source.resolve(sources) {
                headers.push((name.clone(), v));
            }
        }
        for (name, v) in override_headers(&env.context, "requestOverride") {
            if let Some(h) = canonical_invoke_header(&name) {
                headers.retain(|(k, _)| k != h);
                headers.push((h.to_string(), v));
            }
        }
        headers
    }

    /// The reply for a function result: `error` is the function's `errorMessage` when it
    /// failed; `env` and `sources` carry the payload as the integration response.
    pub fn response(
        &self,
        error: Option<&str>,
        env: &vtl::Env,
        sources: &Sources,
        accept: Option<&str>,
    ) -> Result<Reply, MapFailure> {
        let response = self.response_for(error)?;
        integration_reply(response, &self.responses, env, sources, accept)
    }

    /// The integration response for a function result (`error`: its `errorMessage`).
    pub fn response_for(&self, error: Option<&str>) -> Result<&IntegrationResponse, MapFailure> {
        self.responses
            .select(Selector::LambdaError(error))
            .ok_or_else(|| {
                MapFailure::Failed(match error {
                    Some(m) => format!(
                        "no integration response matches the function error `{m}` and there is no default"
                    ),
                    None => "the integration has no default response".to_string(),
                })
            })
    }

    /// [`AwsMapping::response`] from a selected `response`, with `binary` as the body when
    /// `contentHandling` made the function's result binary.
    pub fn reply(
        &self,
        response: &IntegrationResponse,
        (env, sources): (&vtl::Env, &Sources),
        accept: Option<&str>,
        binary: Option<Vec<u8>>,
    ) -> Result<Reply, MapFailure> {
        integration_reply_with(response, &self.responses, (env, sources), accept, binary)
    }
}
