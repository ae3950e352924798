//! The mock integration (`type: mock`).
//!
//! Owns: answering a method from its templates alone. The request template (chosen by
//! `Content-Type`, under `passthroughBehavior`) must render JSON with an integer
//! `statusCode`; that code selects the integration response (selection patterns are matched
//! against it, else `default`), whose header mappings and response template (chosen by
//! `Accept`) make the reply. This is how exported APIs answer CORS preflights: the
//! console's "Enable CORS" writes exactly such a method. Must not: call anything.

use serde_json::Value as Json;

use crate::error::ConfigError;
use crate::http::Reply;
use crate::mapping::{
    integration_reply, request_plan, IntegrationResponses, MapFailure, Passthrough, RequestPlan,
    Selector, Sources, Templates,
};
use crate::vtl::{self, Value};

/// API Gateway's words when the request template yields no usable status code.
pub const NO_STATUS: &str =
    "Unable to parse statusCode. It should be an integer that is defined in the request template.";

/// A compiled mock integration.
#[derive(Debug)]
pub struct Mock {
    request_templates: Templates,
    passthrough: Passthrough,
    responses: IntegrationResponses,
}

/// Why a mock could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MockFailure {
    /// `passthroughBehavior` refuses the `Content-Type` (415).
    UnsupportedMediaType,
    Map(MapFailure),
}

impl Mock {
    /// Compiles `x-amazon-apigateway-integration` of type mock; `at` is its location.
    pub fn compile(
        integ: &Json,
        method_responses: Option<Vec<u16>>,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Mock {
        Mock {
            request_templates: Templates::compile(
                integ.get("requestTemplates"),
                &format!("{at}.requestTemplates"),
                errors,
            ),
            passthrough: Passthrough::compile(integ, at, errors),
            responses: IntegrationResponses::compile(integ, method_responses, at, errors),
        }
    }

    /// Answers a request. `env` is the request's template environment.
    pub fn respond(
        &self,
        env: &vtl::Env,
        sources: &Sources,
        content_type: Option<&str>,
        accept: Option<&str>,
    ) -> Result<Reply, MockFailure> {
        let rendered = match request_plan(&self.request_templates, self.passthrough, content_type) {
            RequestPlan::Unsupported => return Err(MockFailure::UnsupportedMediaType),
            // A mock has no backend to pass a body to: a request with another media type
            // is answered from the JSON template, as a preflight without Content-Type is.
            RequestPlan::PassThrough => match self.request_templates.for_request(None) {
                Some(t) => t
                    .render(env)
                    .map_err(|e| MockFailure::Map(MapFailure::from(e)))?,
                None => String::new(),
            },
            RequestPlan::Transform(t) => t
                .render(env)
                .map_err(|e| MockFailure::Map(MapFailure::from(e)))?,
        };
        let strict = vtl::json::parse(&rendered)
            .ok()
            .and_then(|v| match v {
                Value::Map(m) => m.get("statusCode"),
                _ => None,
            })
            .and_then(|s| match s {
                Value::Int(i) => u16::try_from(i).ok(),
                Value::Str(s) => s.trim().parse().ok(),
                _ => None,
            });
        let status = strict
            .or_else(|| lenient_status(&rendered))
            .filter(|s| (100..600).contains(s))
            .ok_or_else(|| MockFailure::Map(MapFailure::Failed(NO_STATUS.into())))?;
        let response = self
            .responses
            .select(Selector::Status(status))
            .ok_or_else(|| {
                MockFailure::Map(MapFailure::Failed(format!(
                    "no integration response matches status {status} and there is no default"
                )))
            })?;
        let response_env = vtl::Env {
            input: vtl::Input {
                body: "",
                ..env.input
            },
            ..env.clone()
        };
        let response_sources = Sources {
            integration_body: "",
            integration_headers: &[],
            ..*sources
        };
        integration_reply(
            response,
            &self.responses,
            &response_env,
            &response_sources,
            accept,
        )
        .map_err(MockFailure::Map)
    }
}

/// `statusCode` from a request template's output that is not strict JSON, as API Gateway
/// reads it: `{statusCode: 200}`, `{'statusCode': '200'}` and the like.
fn lenient_status(text: &str) -> Option<u16> {
    let at = text.find("statusCode")?;
    let rest = text.get(at + "statusCode".len()..)?;
    let rest = rest.trim_start_matches(['"', '\'', ' ', '\t', '\r', '\n']);
    let rest = rest.strip_prefix(':')?;
    let rest = rest.trim_start_matches(['"', '\'', ' ', '\t', '\r', '\n']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::testing::Fixture;
    use serde_json::json;

    /// The OPTIONS method API Gateway's "Enable CORS" exports.
    fn enable_cors() -> Json {
        json!({
            "type": "mock",
            "requestTemplates": {"application/json": "{\"statusCode\" : 200}"},
            "passthroughBehavior": "when_no_match",
            "responses": {"default": {
                "statusCode": "200",
                "responseParameters": {
                    "method.response.header.Access-Control-Allow-Headers": "'Content-Type,X-Amz-Date,Authorization,X-Api-Key'",
                    "method.response.header.Access-Control-Allow-Methods": "'*'",
                    "method.response.header.Access-Control-Allow-Origin": "'*'"
                },
                "responseTemplates": {"application/json": "{}"}
            }}
        })
    }

    fn compile(integ: &Json) -> Mock {
        let mut errors = Vec::new();
        let m = Mock::compile(integ, None, "x", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        m
    }

    fn respond(m: &Mock, ct: Option<&str>, accept: Option<&str>) -> Result<Reply, MockFailure> {
        let f = Fixture::new("");
        m.respond(&f.env(), &f.sources(), ct, accept)
    }

    #[test]
    fn enable_cors_exports_answer_as_exported() {
        let m = compile(&enable_cors());
        for ct in [None, Some("application/json"), Some("text/plain")] {
            let r = respond(&m, ct, None).unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body_text(), "{}");
            assert_eq!(r.header("access-control-allow-origin"), Some("*"));
            assert_eq!(r.header("access-control-allow-methods"), Some("*"));
            assert_eq!(
                r.header("access-control-allow-headers"),
                Some("Content-Type,X-Amz-Date,Authorization,X-Api-Key")
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }

    #[test]
    fn status_selects_the_response() {
        let m = compile(&json!({
            "requestTemplates": {
                "application/json": "#if($input.params('gone') == 'yes'){\"statusCode\": 404}#{else}{\"statusCode\": 200}#end",
                "text/plain": "{\"statusCode\": 201}"
            },
            "responses": {
                "default": {"statusCode": "200", "responseTemplates": {"application/json": "{\"stage\": \"$context.stage\"}"}},
                "4\\d{2}": {"statusCode": "404", "responseTemplates": {"application/json": "{\"message\":\"gone\"}", "text/html": "<p>gone</p>"}},
                "201|202": {"statusCode": "201"}
            }
        }));
        let f = Fixture::new("").query(&[("gone", "yes")]);
        let r = m
            .respond(&f.env(), &f.sources(), None, Some("text/html, */*"))
            .unwrap();
        assert_eq!((r.status, r.body_text()), (404, "<p>gone</p>".into()));
        assert_eq!(r.header("content-type"), Some("text/html"));
        let r = m.respond(&f.env(), &f.sources(), None, None).unwrap();
        assert_eq!(r.body_text(), r#"{"message":"gone"}"#);
        let r = respond(&m, None, None).unwrap();
        assert_eq!(
            (r.status, r.body_text()),
            (200, r#"{"stage": "prod"}"#.into())
        );
        assert_eq!(respond(&m, Some("text/plain"), None).unwrap().status, 201);
    }

    #[test]
    fn request_templates_need_not_be_strict_json() {
        for (template, status) in [
            ("{statusCode: 200}", 200),
            ("{ 'statusCode' : '404' }", 404),
            ("{\n  statusCode:201\n}", 201),
        ] {
            let m = compile(&json!({
                "requestTemplates": {"application/json": template},
                "responses": {"default": {"statusCode": "200"}, "404": {"statusCode": "404"}, "201": {"statusCode": "201"}}
            }));
            assert_eq!(
                respond(&m, None, None).unwrap().status,
                status,
                "{template}"
            );
        }
        assert_eq!(lenient_status("{statusCode: x}"), None);
        assert_eq!(lenient_status("{code: 200}"), None);
    }

    #[test]
    fn a_response_without_a_template_has_an_empty_body() {
        let m = compile(&json!({
            "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "200"}}
        }));
        assert_eq!(respond(&m, None, None).unwrap().body_text(), "");
    }

    #[test]
    fn passthrough_and_failures() {
        let never = compile(&json!({
            "passthroughBehavior": "never",
            "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "200"}}
        }));
        assert_eq!(
            respond(&never, Some("application/xml"), None).unwrap_err(),
            MockFailure::UnsupportedMediaType
        );
        let none = compile(&json!({"responses": {"default": {"statusCode": "200"}}}));
        assert_eq!(
            respond(&none, None, None).unwrap_err(),
            MockFailure::Map(MapFailure::Failed(NO_STATUS.into()))
        );
        let unmatched = compile(&json!({
            "requestTemplates": {"application/json": "{\"statusCode\": 500}"},
            "responses": {"2\\d{2}": {"statusCode": "200"}}
        }));
        assert!(matches!(
            respond(&unmatched, None, None).unwrap_err(),
            MockFailure::Map(MapFailure::Failed(m)) if m.contains("no integration response")
        ));
    }

    #[test]
    fn what_is_wrong_is_named() {
        for (patch, location) in [
            (
                json!({"requestTemplates": {"application/json": "#if($x){}"}}),
                "x.requestTemplates.application/json",
            ),
            (
                json!({"responses": {"default": {"statusCode": "200", "responseTemplates": {"application/json": "$input.path('$.a[')"}}}}),
                "x.responses.default.responseTemplates.application/json",
            ),
            (
                json!({"responses": {"default": {"statusCode": "200", "responseParameters": {"method.response.header.X": "nowhere.y"}}}}),
                "x.responses.default.responseParameters.method.response.header.X",
            ),
            (
                json!({"responses": {"(x": {"statusCode": "200"}}}),
                "x.responses.(x",
            ),
            (
                json!({"responses": {"default": {"statusCode": "nope"}}}),
                "x.responses.default.statusCode",
            ),
            (
                json!({"passthroughBehavior": "sometimes"}),
                "x.passthroughBehavior",
            ),
        ] {
            let mut integ = enable_cors();
            for (k, v) in patch.as_object().unwrap() {
                integ[k] = v.clone();
            }
            let mut errors = Vec::new();
            Mock::compile(&integ, None, "x", &mut errors);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].location, location, "{}", errors[0]);
        }
    }
}
