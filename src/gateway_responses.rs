//! Gateway responses: how the gateway's own errors look, customised by
//! `x-amazon-apigateway-gateway-responses`.
//!
//! Owns: compiling the customisations (response type -> status, `gatewayresponse.header.*`
//! mappings, templates by media type) and building an error reply from them. A type that is
//! not customised falls back to `DEFAULT_4XX` or `DEFAULT_5XX` (by its default status), then
//! to the built-in response. Templates are not VTL, as in API Gateway: `$context.*` and
//! `$stageVariables.*` are substituted (an absent value becomes empty), everything else is
//! text. `REQUEST_TOO_LARGE` cannot be customised, as in API Gateway. Must not: decide when
//! an error happens.

use serde_json::Value as Json;

use crate::error::{ConfigError, GatewayError};
use crate::http::{Header, Reply};
use crate::mapping::{header_mappings, media_key, Side, Source, Sources};
use crate::vtl::Value;

/// Every response type API Gateway lets an export customise.
pub const TYPES: [&str; 23] = [
    "ACCESS_DENIED",
    "API_CONFIGURATION_ERROR",
    "AUTHORIZER_CONFIGURATION_ERROR",
    "AUTHORIZER_FAILURE",
    "BAD_REQUEST_PARAMETERS",
    "BAD_REQUEST_BODY",
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "EXPIRED_TOKEN",
    "INTEGRATION_FAILURE",
    "INTEGRATION_TIMEOUT",
    "INVALID_API_KEY",
    "INVALID_SIGNATURE",
    "MISSING_AUTHENTICATION_TOKEN",
    "QUOTA_EXCEEDED",
    "REQUEST_TOO_LARGE",
    "RESOURCE_NOT_FOUND",
    "THROTTLED",
    "UNAUTHORIZED",
    "UNSUPPORTED_MEDIA_TYPE",
    "WAF_FILTERED",
    "MISSING_AUTHENTICATION_TOKEN_FOR_WEBSOCKET",
    "REQUEST_TOO_LARGE_FOR_WEBSOCKET",
];

#[derive(Debug)]
struct Custom {
    status: Option<u16>,
    headers: Vec<(String, Source)>,
    templates: Vec<(String, String)>,
}

/// The compiled customisations of one API.
#[derive(Debug, Default)]
pub struct GatewayResponses {
    custom: Vec<(String, Custom)>,
}

/// `$context.x.y` / `${context.x.y}` / `$stageVariables.x` substitution.
fn substitute(template: &str, context: &Value, stage_variables: &Value) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        let (braced, body) = match after.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, after),
        };
        let len = body
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map_or(body.len(), |(i, _)| i);
        let name = body.get(..len).unwrap_or_default().trim_end_matches('.');
        let closes = !braced || body.get(name.len()..).is_some_and(|r| r.starts_with('}'));
        let root_and_path = name.split_once('.');
        let root = match root_and_path {
            Some(("context", _)) => Some(context),
            Some(("stageVariables", _)) => Some(stage_variables),
            _ => None,
        };
        let (Some(root), Some((_, path)), true) = (root, root_and_path, closes) else {
            out.push('$');
            rest = after;
            continue;
        };
        let found = path
            .split('.')
            .try_fold(root.clone(), |cur, key| match cur {
                Value::Map(m) => m.get(key),
                _ => None,
            });
        if let Some(v) = found.filter(|v| !v.is_null()) {
            v.write_text(&mut out);
        }
        let consumed = name.len() + usize::from(braced) * 2;
        rest = after.get(consumed..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

impl GatewayResponses {
    /// Compiles `x-amazon-apigateway-gateway-responses`.
    pub fn compile(v: Option<&Json>, errors: &mut Vec<ConfigError>) -> GatewayResponses {
        const AT: &str = "openapi.x-amazon-apigateway-gateway-responses";
        let mut custom = Vec::new();
        let Some(v) = v else {
            return GatewayResponses { custom };
        };
        let Some(map) = v.as_object() else {
            errors.push(ConfigError::new(
                AT,
                "expected an object of response type -> response",
            ));
            return GatewayResponses { custom };
        };
        for (kind, r) in map {
            let at = format!("{AT}.{kind}");
            if !TYPES.contains(&kind.as_str()) {
                errors.push(ConfigError::new(
                    &at,
                    "unknown gateway response type (expected DEFAULT_4XX, DEFAULT_5XX, MISSING_AUTHENTICATION_TOKEN, THROTTLED, ...)",
                ));
                continue;
            }
            let status = match r.get("statusCode") {
                None => None,
                Some(s) => {
                    let parsed = match s {
                        Json::String(s) => s.trim().parse::<u16>().ok(),
                        Json::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                        _ => None,
                    }
                    .filter(|s| (100..600).contains(s));
                    if parsed.is_none() {
                        errors.push(ConfigError::new(
                            format!("{at}.statusCode"),
                            "expected an HTTP status code",
                        ));
                    }
                    parsed
                }
            };
            let headers = header_mappings(
                r.get("responseParameters"),
                "gatewayresponse.header.",
                Side::Request,
                &format!("{at}.responseParameters"),
                errors,
            );
            let mut templates = Vec::new();
            for (media, t) in r
                .get("responseTemplates")
                .and_then(Json::as_object)
                .into_iter()
                .flatten()
            {
                match t.as_str() {
                    Some(t) => templates.push((media.to_ascii_lowercase(), t.to_string())),
                    None => errors.push(ConfigError::new(
                        format!("{at}.responseTemplates.{media}"),
                        "expected the template as a string",
                    )),
                }
            }
            custom.push((
                kind.clone(),
                Custom {
                    status,
                    headers,
                    templates,
                },
            ));
        }
        GatewayResponses { custom }
    }

    fn get(&self, kind: &str) -> Option<&Custom> {
        self.custom.iter().find(|(k, _)| k == kind).map(|(_, c)| c)
    }

    /// Whether any response is customised (callers skip building a context otherwise).
    pub fn is_customised(&self, error: GatewayError) -> bool {
        !matches!(
            error,
            GatewayError::RequestTooLarge | GatewayError::UriTooLong
        ) && (self.get(error.response_type().name()).is_some()
            || self.get(default_kind(error)).is_some())
    }

    /// The reply for `error` with `message`. `context` must carry `error.message`,
    /// `error.messageString` and `error.responseType` besides the request's values.
    pub fn reply(
        &self,
        (error, message): (GatewayError, &str),
        accept: Option<&str>,
        sources: &Sources,
        context: &Value,
    ) -> Reply {
        let mut reply = error.to_reply_with(message);
        if !self.is_customised(error) {
            return reply;
        }
        let specific = self.get(error.response_type().name());
        let fallback = self.get(default_kind(error));
        if let Some(status) = specific
            .and_then(|c| c.status)
            .or(fallback.and_then(|c| c.status))
        {
            reply.status = status;
        }
        let mut headers: Vec<Header> = Vec::new();
        for c in [fallback, specific].into_iter().flatten() {
            for (name, source) in &c.headers {
                if let Some(v) = source.resolve(sources) {
                    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                    headers.push((name.clone(), v));
                }
            }
        }
        let templates = specific
            .filter(|c| !c.templates.is_empty())
            .or(fallback.filter(|c| !c.templates.is_empty()))
            .map(|c| c.templates.as_slice())
            .unwrap_or_default();
        let key = accept.map(media_key);
        let chosen = templates
            .iter()
            .find(|(m, _)| Some(m.as_str()) == key.as_deref())
            .or_else(|| templates.iter().find(|(m, _)| m == "application/json"))
            .or_else(|| templates.first());
        if let Some((media, text)) = chosen {
            reply.body = substitute(text, context, sources.stage_variables).into_bytes();
            reply
                .headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
            reply
                .headers
                .insert(0, ("Content-Type".into(), media.clone()));
        }
        for (name, v) in headers {
            reply
                .headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
            reply.headers.push((name, v));
        }
        reply
    }
}

fn default_kind(error: GatewayError) -> &'static str {
    if error.status() >= 500 {
        "DEFAULT_5XX"
    } else {
        "DEFAULT_4XX"
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::mapping::testing::Fixture;
    use serde_json::json;

    fn context(error: GatewayError) -> Value {
        let mut msg = String::new();
        crate::vtl::value::json_string(error.message(), &mut msg);
        Value::map(vec![
            (Rc::from("stage"), Value::str("prod")),
            (
                Rc::from("error"),
                Value::map(vec![
                    (Rc::from("message"), Value::str(error.message())),
                    (Rc::from("messageString"), Value::str(msg)),
                    (
                        Rc::from("responseType"),
                        Value::str(error.response_type().name()),
                    ),
                ]),
            ),
        ])
    }

    fn compile(v: Json) -> GatewayResponses {
        let mut errors = Vec::new();
        let g = GatewayResponses::compile(Some(&v), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        g
    }

    #[test]
    fn specific_then_default_then_builtin() {
        let g = compile(json!({
            "DEFAULT_4XX": {
                "responseParameters": {"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
                "responseTemplates": {"application/json": "{\"message\":$context.error.messageString,\"type\":\"$context.error.responseType\"}"}
            },
            "MISSING_AUTHENTICATION_TOKEN": {
                "statusCode": "404",
                "responseParameters": {"gatewayresponse.header.X-Stage": "stageVariables.env", "gatewayresponse.header.X-Asked": "method.request.header.x-ask"},
                "responseTemplates": {"application/json": "{\"message\":\"Not Found\",\"stage\":\"$context.stage\",\"v\":\"${stageVariables.env}\",\"none\":\"$context.nothing\",\"cost\":\"$5\"}"}
            }
        }));
        let f = Fixture::new("").headers(&[("x-ask", "yes")]);
        let e = GatewayError::MissingAuthenticationToken;
        let r = g.reply((e, e.message()), None, &f.sources(), &context(e));
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body_text(),
            r#"{"message":"Not Found","stage":"prod","v":"test","none":"","cost":"$5"}"#
        );
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(r.header("x-stage"), Some("test"));
        assert_eq!(r.header("x-asked"), Some("yes"));
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("MissingAuthenticationTokenException")
        );

        let e = GatewayError::Throttled;
        let r = g.reply((e, e.message()), None, &f.sources(), &context(e));
        assert_eq!(r.status, 429);
        assert_eq!(
            r.body_text(),
            r#"{"message":"Too Many Requests","type":"THROTTLED"}"#
        );
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));

        let e = GatewayError::IntegrationTimeout;
        assert_eq!(
            g.reply((e, e.message()), None, &f.sources(), &context(e)),
            e.to_reply()
        );
        let e = GatewayError::RequestTooLarge;
        assert_eq!(
            g.reply((e, e.message()), None, &f.sources(), &context(e)),
            e.to_reply()
        );
    }

    #[test]
    fn default_status_applies_to_the_class() {
        let g = compile(json!({"DEFAULT_5XX": {"statusCode": 503}}));
        let f = Fixture::new("");
        let e = GatewayError::FunctionError;
        let r = g.reply(
            (e, e.message()),
            Some("text/html"),
            &f.sources(),
            &context(e),
        );
        assert_eq!(
            (r.status, r.body_text()),
            (503, r#"{"message":"Internal server error"}"#.into())
        );
    }

    #[test]
    fn errors_name_the_field() {
        for (v, at) in [
            (json!({"NOPE": {}}), "openapi.x-amazon-apigateway-gateway-responses.NOPE"),
            (json!({"THROTTLED": {"statusCode": "abc"}}), "openapi.x-amazon-apigateway-gateway-responses.THROTTLED.statusCode"),
            (json!({"THROTTLED": {"responseParameters": {"method.response.header.X": "'a'"}}}), "openapi.x-amazon-apigateway-gateway-responses.THROTTLED.responseParameters.method.response.header.X"),
        ] {
            let mut errors = Vec::new();
            GatewayResponses::compile(Some(&v), &mut errors);
            assert_eq!(errors.first().map(|e| e.location.as_str()), Some(at), "{errors:?}");
        }
    }
}
