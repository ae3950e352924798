//! The mock integration (`type: mock`) for templates without VTL.
//!
//! Owns: compiling a mock integration whose request and response templates are plain text
//! (the shape API Gateway's "Enable CORS" writes into exports: request template
//! `{"statusCode": 200}`, a `default` response with static `responseParameters` and an
//! `{}` response template) and answering from it: the request template's `statusCode` selects
//! the integration response (`default`, or a selection pattern matched against the status
//! code), whose static headers and template make the reply. Must not: evaluate VTL. A mock
//! that needs it is refused at compile time with a message saying so, and its method
//! answers 500 until the template engine exists.

use serde_json::Value;

use crate::error::ConfigError;
use crate::http::{Header, Reply};

/// One integration response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Response {
    /// `None` for `default`.
    pattern: Option<Pattern>,
    status: u16,
    headers: Vec<Header>,
    /// (media type, body) in the export's order.
    templates: Vec<(String, String)>,
}

/// A compiled mock integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mock {
    /// (media type, statusCode the template yields).
    requests: Vec<(String, u16)>,
    responses: Vec<Response>,
}

/// The selection-pattern subset a mock needs: literals, `\d`, `.`, `{n}` and `|`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(Vec<Vec<(Atom, usize)>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atom {
    Char(char),
    Digit,
    Any,
}

impl Pattern {
    fn parse(text: &str) -> Option<Pattern> {
        let mut alternatives = Vec::new();
        for alt in text.split('|') {
            let mut atoms: Vec<(Atom, usize)> = Vec::new();
            let mut chars = alt.chars().peekable();
            while let Some(c) = chars.next() {
                let atom = match c {
                    '\\' => match chars.next()? {
                        'd' => Atom::Digit,
                        c if !c.is_ascii_alphanumeric() => Atom::Char(c),
                        _ => return None,
                    },
                    '.' => Atom::Any,
                    '{' => {
                        let n: String = chars.by_ref().take_while(|c| *c != '}').collect();
                        let last = atoms.last_mut()?;
                        last.1 = n.parse().ok().filter(|n| *n > 0)?;
                        continue;
                    }
                    '[' | ']' | '(' | ')' | '*' | '+' | '?' | '^' | '$' | '}' => return None,
                    c => Atom::Char(c),
                };
                atoms.push((atom, 1));
            }
            alternatives.push(atoms);
        }
        Some(Pattern(alternatives))
    }

    /// Whole-string match, as Java's `String.matches`.
    fn matches(&self, text: &str) -> bool {
        self.0.iter().any(|alt| {
            let mut chars = text.chars();
            alt.iter().all(|(atom, n)| {
                (0..*n).all(|_| {
                    chars.next().is_some_and(|c| match atom {
                        Atom::Char(a) => c == *a,
                        Atom::Digit => c.is_ascii_digit(),
                        Atom::Any => true,
                    })
                })
            }) && chars.next().is_none()
        })
    }
}

fn static_text(t: &str) -> bool {
    !t.contains('$') && !t.contains('#')
}

fn needs_vtl(at: String, what: &str) -> ConfigError {
    ConfigError::new(
        at,
        format!(
            "{what} uses VTL, which mock integrations do not support yet; the method answers 500"
        ),
    )
}

fn status_of(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| (100..600).contains(s))
}

impl Mock {
    /// Compiles `x-amazon-apigateway-integration` of type mock; `at` is its location.
    /// An error means the method cannot be served yet (reported as a warning).
    pub fn compile(integ: &Value, at: &str) -> Result<Mock, ConfigError> {
        let mut requests = Vec::new();
        if let Some(map) = integ.get("requestTemplates").and_then(Value::as_object) {
            for (media, t) in map {
                let t_at = format!("{at}.requestTemplates.{media}");
                let text = t.as_str().unwrap_or_default();
                if !static_text(text) {
                    return Err(needs_vtl(t_at, "the request template"));
                }
                let status = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("statusCode").and_then(status_of))
                    .ok_or_else(|| {
                        ConfigError::new(
                            &t_at,
                            "a mock request template must yield JSON with an integer statusCode",
                        )
                    })?;
                requests.push((media.to_ascii_lowercase(), status));
            }
        }
        let mut responses = Vec::new();
        for (key, r) in integ
            .get("responses")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let r_at = format!("{at}.responses.{key}");
            let pattern = match key.as_str() {
                "default" => None,
                p => Some(Pattern::parse(p).ok_or_else(|| {
                    ConfigError::new(
                        &r_at,
                        "only literal selection patterns with \\d . {n} | are supported for mock integrations yet",
                    )
                })?),
            };
            let status = r.get("statusCode").and_then(status_of).ok_or_else(|| {
                ConfigError::new(format!("{r_at}.statusCode"), "expected an HTTP status code")
            })?;
            let mut headers = Vec::new();
            for (target, source) in r
                .get("responseParameters")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let p_at = format!("{r_at}.responseParameters.{target}");
                let name = target
                    .strip_prefix("method.response.header.")
                    .ok_or_else(|| {
                        ConfigError::new(&p_at, "expected method.response.header.NAME")
                    })?;
                let value = source
                    .as_str()
                    .and_then(|s| s.strip_prefix('\'')?.strip_suffix('\''))
                    .ok_or_else(|| {
                        ConfigError::new(
                            &p_at,
                            "only static 'values' are supported for mock integrations yet",
                        )
                    })?;
                headers.push((name.to_string(), value.to_string()));
            }
            let mut templates = Vec::new();
            for (media, t) in r
                .get("responseTemplates")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let text = t.as_str().unwrap_or_default();
                if !static_text(text) {
                    return Err(needs_vtl(
                        format!("{r_at}.responseTemplates.{media}"),
                        "the response template",
                    ));
                }
                templates.push((media.to_ascii_lowercase(), text.to_string()));
            }
            responses.push(Response {
                pattern,
                status,
                headers,
                templates,
            });
        }
        Ok(Mock {
            requests,
            responses,
        })
    }

    /// Answers a request, or says why it cannot be answered (API Gateway's 500).
    pub fn respond(
        &self,
        content_type: Option<&str>,
        accept: Option<&str>,
    ) -> Result<Reply, String> {
        let wanted = content_type
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        let status = self
            .requests
            .iter()
            .find(|(m, _)| *m == wanted)
            .or_else(|| self.requests.iter().find(|(m, _)| m == "application/json"))
            .map(|(_, s)| *s)
            .ok_or("Unable to parse statusCode. It should be an integer that is defined in the request template.")?;
        let code = status.to_string();
        let response = self
            .responses
            .iter()
            .find(|r| r.pattern.as_ref().is_some_and(|p| p.matches(&code)))
            .or_else(|| self.responses.iter().find(|r| r.pattern.is_none()))
            .ok_or_else(|| {
                format!("no integration response matches status {code} and there is no default")
            })?;
        let accept = accept.and_then(|a| a.split(',').next()).map(|a| {
            a.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        let template = response
            .templates
            .iter()
            .find(|(m, _)| Some(m.as_str()) == accept.as_deref())
            .or_else(|| {
                response
                    .templates
                    .iter()
                    .find(|(m, _)| m == "application/json")
            })
            .or_else(|| response.templates.first());
        let (media, body) = template
            .map(|(m, b)| (m.clone(), b.clone()))
            .unwrap_or_else(|| ("application/json".into(), String::new()));
        let mut headers = vec![("Content-Type".to_string(), media)];
        headers.extend(response.headers.iter().cloned());
        Ok(Reply {
            status: response.status,
            headers,
            body: body.into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The OPTIONS method API Gateway's "Enable CORS" exports.
    fn enable_cors() -> Value {
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

    #[test]
    fn enable_cors_exports_answer_as_exported() {
        let m = Mock::compile(&enable_cors(), "x").unwrap();
        for ct in [None, Some("application/json"), Some("text/plain")] {
            let r = m.respond(ct, None).unwrap();
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
        let m = Mock::compile(
            &json!({"requestTemplates": {"application/json": "{\"statusCode\": 404}", "text/plain": "{\"statusCode\": 201}"},
                "responses": {
                    "default": {"statusCode": "200"},
                    "4\\d{2}": {"statusCode": "404", "responseTemplates": {"application/json": "{\"message\":\"gone\"}", "text/html": "<p>gone</p>"}},
                    "201|202": {"statusCode": "201"}
                }}),
            "x",
        )
        .unwrap();
        let r = m.respond(None, Some("text/html, */*")).unwrap();
        assert_eq!((r.status, r.body_text()), (404, "<p>gone</p>".into()));
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert_eq!(
            m.respond(None, None).unwrap().body_text(),
            r#"{"message":"gone"}"#
        );
        assert_eq!(m.respond(Some("text/plain"), None).unwrap().status, 201);
    }

    #[test]
    fn patterns_match_whole_codes() {
        for (p, code, want) in [
            ("200", "200", true),
            ("2\\d{2}", "204", true),
            ("2\\d{2}", "2041", false),
            ("4..", "418", true),
            ("500|502", "502", true),
            ("500|502", "503", false),
        ] {
            assert_eq!(Pattern::parse(p).unwrap().matches(code), want, "{p} {code}");
        }
        for p in ["(2|3)00", "2\\d+", "[45]00", "\\w"] {
            assert!(Pattern::parse(p).is_none(), "{p}");
        }
    }

    #[test]
    fn what_needs_vtl_or_is_wrong_is_named() {
        for (patch, location) in [
            (
                json!({"requestTemplates": {"application/json": "#set($x = 1){\"statusCode\": 200}"}}),
                "x.requestTemplates.application/json",
            ),
            (
                json!({"requestTemplates": {"application/json": "{}"}}),
                "x.requestTemplates.application/json",
            ),
            (
                json!({"responses": {"default": {"statusCode": "200", "responseTemplates": {"application/json": "$input.body"}}}}),
                "x.responses.default.responseTemplates.application/json",
            ),
            (
                json!({"responses": {"default": {"statusCode": "200", "responseParameters": {"method.response.header.X": "integration.response.header.Y"}}}}),
                "x.responses.default.responseParameters.method.response.header.X",
            ),
            (
                json!({"responses": {"(x)": {"statusCode": "200"}}}),
                "x.responses.(x)",
            ),
            (
                json!({"responses": {"default": {"statusCode": "nope"}}}),
                "x.responses.default.statusCode",
            ),
        ] {
            let mut integ = enable_cors();
            for (k, v) in patch.as_object().unwrap() {
                integ[k] = v.clone();
            }
            let err = Mock::compile(&integ, "x").unwrap_err();
            assert_eq!(err.location, location, "{err}");
        }
    }

    #[test]
    fn no_template_or_no_response_is_a_500_reason() {
        let m = Mock::compile(
            &json!({"responses": {"default": {"statusCode": "200"}}}),
            "x",
        )
        .unwrap();
        assert!(m.respond(None, None).unwrap_err().contains("statusCode"));
        let m = Mock::compile(
            &json!({"requestTemplates": {"application/json": "{\"statusCode\": 500}"}, "responses": {"2\\d{2}": {"statusCode": "200"}}}),
            "x",
        )
        .unwrap();
        assert!(m
            .respond(None, None)
            .unwrap_err()
            .contains("no integration response"));
    }
}
