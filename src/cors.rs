//! A CORS policy the gateway applies itself, modelled on API Gateway HTTP APIs'
//! `corsConfiguration`.
//!
//! Owns: compiling the policy (a wildcard origin with credentials is refused), answering
//! preflight requests, and adding `Access-Control-Allow-Origin` (with `Vary: Origin`) and
//! the other response headers to every reply, the gateway's own errors (403, 429, 5xx)
//! included. With a policy configured, CORS headers from the function are replaced, as HTTP
//! APIs do. Must not: decide anything else about a request; a preflight never reaches routing,
//! keys, limits or Lambda.

use crate::config::CorsSettings;
use crate::error::ConfigError;
use crate::http::{header, Header, Reply};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    Any,
    List(Vec<String>),
}

impl Allowed {
    fn from(items: &[String], lower: bool) -> Allowed {
        if items.iter().any(|i| i == "*") {
            return Allowed::Any;
        }
        Allowed::List(
            items
                .iter()
                .map(|i| {
                    if lower {
                        i.to_ascii_lowercase()
                    } else {
                        i.to_ascii_uppercase()
                    }
                })
                .collect(),
        )
    }

    fn allows(&self, item: &str) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::List(items) => items.iter().any(|i| i.eq_ignore_ascii_case(item)),
        }
    }
}

/// A compiled CORS policy.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Allowed,
    methods: Allowed,
    headers: Allowed,
    expose: String,
    max_age: Option<u32>,
    credentials: bool,
}

fn valid_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && !rest.contains('/')
}

impl CorsPolicy {
    pub fn compile(s: &CorsSettings, errors: &mut Vec<ConfigError>) -> CorsPolicy {
        if s.allow_origins.is_empty() {
            errors.push(ConfigError::new(
                "deployment.cors.allowOrigins",
                "list at least one origin (`https://app.example.com`) or `*`",
            ));
        }
        for (i, o) in s.allow_origins.iter().enumerate() {
            if o != "*" && !valid_origin(o) {
                errors.push(ConfigError::new(
                    format!("deployment.cors.allowOrigins[{i}]"),
                    format!("`{o}` is not an origin: expected scheme://host[:port] without a path"),
                ));
            }
        }
        let origins = Allowed::from(&s.allow_origins, true);
        if s.allow_credentials && origins == Allowed::Any {
            errors.push(ConfigError::new(
                "deployment.cors.allowOrigins",
                "allowCredentials cannot be combined with the wildcard origin `*` (browsers refuse it); list the origins",
            ));
        }
        CorsPolicy {
            origins,
            methods: Allowed::from(&s.allow_methods, false),
            headers: Allowed::from(&s.allow_headers, true),
            expose: s.expose_headers.join(","),
            max_age: s.max_age,
            credentials: s.allow_credentials,
        }
    }

    /// `Access-Control-Allow-Origin` for a request origin, if the origin is allowed.
    fn allow_origin(&self, origin: &str) -> Option<String> {
        match &self.origins {
            Allowed::Any if !self.credentials => Some("*".into()),
            o if o.allows(origin) => Some(origin.to_string()),
            _ => None,
        }
    }

    /// Answers a preflight request (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`); `None` when the request is not one. A preflight the
    /// policy does not allow gets a 204 without CORS headers, which the browser refuses.
    pub fn preflight(&self, method: &str, headers: &[Header]) -> Option<Reply> {
        let origin = header(headers, "origin")?;
        let requested = header(headers, "access-control-request-method")?;
        if method != "OPTIONS" {
            return None;
        }
        let mut reply = Reply {
            status: 204,
            headers: vec![("Vary".into(), "Origin".into())],
            body: Vec::new(),
        };
        let requested_headers: Vec<&str> = header(headers, "access-control-request-headers")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let allowed = self.allow_origin(origin).filter(|_| {
            self.methods.allows(requested)
                && requested_headers.iter().all(|h| self.headers.allows(h))
        });
        let Some(allow_origin) = allowed else {
            return Some(reply);
        };
        reply
            .headers
            .push(("Access-Control-Allow-Origin".into(), allow_origin));
        let methods = match &self.methods {
            Allowed::Any => requested.to_string(),
            Allowed::List(m) => m.join(","),
        };
        reply
            .headers
            .push(("Access-Control-Allow-Methods".into(), methods));
        let allow_headers = match &self.headers {
            Allowed::Any => requested_headers.join(","),
            Allowed::List(h) => h.join(","),
        };
        if !allow_headers.is_empty() {
            reply
                .headers
                .push(("Access-Control-Allow-Headers".into(), allow_headers));
        }
        if let Some(age) = self.max_age {
            reply
                .headers
                .push(("Access-Control-Max-Age".into(), age.to_string()));
        }
        if self.credentials {
            reply
                .headers
                .push(("Access-Control-Allow-Credentials".into(), "true".into()));
        }
        Some(reply)
    }

    /// Sets the CORS headers of an actual (non-preflight) reply.
    pub fn decorate(&self, reply: &mut Reply, request_headers: &[Header]) {
        reply.headers.retain(|(k, _)| {
            !k.get(..15)
                .is_some_and(|p| p.eq_ignore_ascii_case("access-control-"))
        });
        let Some(origin) = header(request_headers, "origin") else {
            return;
        };
        let Some(allow_origin) = self.allow_origin(origin) else {
            return;
        };
        if allow_origin != "*" {
            reply.headers.push(("Vary".into(), "Origin".into()));
        }
        reply
            .headers
            .push(("Access-Control-Allow-Origin".into(), allow_origin));
        if !self.expose.is_empty() {
            reply
                .headers
                .push(("Access-Control-Expose-Headers".into(), self.expose.clone()));
        }
        if self.credentials {
            reply
                .headers
                .push(("Access-Control-Allow-Credentials".into(), "true".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(v: serde_json::Value) -> CorsPolicy {
        let mut errors = Vec::new();
        let p = CorsPolicy::compile(&serde_json::from_value(v).unwrap(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        p
    }

    use crate::http::headers_of as h;

    const APP: &str = "http://app.test:3000";

    fn strict() -> CorsPolicy {
        policy(
            serde_json::json!({"allowOrigins": [APP], "allowMethods": ["GET", "PUT"],
            "allowHeaders": ["content-type", "x-api-key"], "exposeHeaders": ["x-amzn-requestid"],
            "maxAge": 600, "allowCredentials": true}),
        )
    }

    #[test]
    fn preflight_table() {
        let p = strict();
        for (origin, method, req_headers, allowed) in [
            (APP, "PUT", "content-type, X-Api-Key", true),
            (APP, "GET", "", true),
            (APP, "DELETE", "", false),
            (APP, "PUT", "x-other", false),
            ("http://evil.test", "PUT", "", false),
            ("http://APP.test:3000", "PUT", "", true),
        ] {
            let mut headers = vec![
                ("origin", origin),
                ("access-control-request-method", method),
            ];
            if !req_headers.is_empty() {
                headers.push(("access-control-request-headers", req_headers));
            }
            let r = p.preflight("OPTIONS", &h(&headers)).unwrap();
            assert_eq!(r.status, 204);
            assert_eq!(r.header("vary"), Some("Origin"));
            assert_eq!(
                r.header("access-control-allow-origin").is_some(),
                allowed,
                "{origin} {method} {req_headers}"
            );
            if allowed {
                assert_eq!(r.header("access-control-allow-origin"), Some(origin));
                assert_eq!(r.header("access-control-allow-methods"), Some("GET,PUT"));
                assert_eq!(
                    r.header("access-control-allow-headers"),
                    Some("content-type,x-api-key")
                );
                assert_eq!(r.header("access-control-max-age"), Some("600"));
                assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
            }
        }
        // Not preflights.
        assert!(p.preflight("OPTIONS", &h(&[("origin", APP)])).is_none());
        assert!(p
            .preflight(
                "GET",
                &h(&[("origin", APP), ("access-control-request-method", "GET")])
            )
            .is_none());
    }

    #[test]
    fn wildcards_echo_what_was_asked() {
        let p = policy(
            serde_json::json!({"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"]}),
        );
        let r = p
            .preflight(
                "OPTIONS",
                &h(&[
                    ("origin", APP),
                    ("access-control-request-method", "PATCH"),
                    ("access-control-request-headers", "x-a,x-b"),
                ]),
            )
            .unwrap();
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(r.header("access-control-allow-methods"), Some("PATCH"));
        assert_eq!(r.header("access-control-allow-headers"), Some("x-a,x-b"));
        assert!(r.header("access-control-allow-credentials").is_none());
    }

    #[test]
    fn decorate_replaces_function_headers() {
        let p = strict();
        let mut reply = Reply::json(429, "{}");
        reply
            .headers
            .push(("Access-Control-Allow-Origin".into(), "*".into()));
        p.decorate(&mut reply, &h(&[("origin", APP)]));
        assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
        assert_eq!(
            reply
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("access-control-allow-origin"))
                .count(),
            1
        );
        assert_eq!(reply.header("vary"), Some("Origin"));
        assert_eq!(
            reply.header("access-control-expose-headers"),
            Some("x-amzn-requestid")
        );
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            Some("true")
        );
        // A disallowed origin, or none, gets no CORS headers (and the function's are gone).
        for req in [h(&[("origin", "http://evil.test")]), h(&[])] {
            let mut reply = Reply::json(200, "{}");
            reply
                .headers
                .push(("access-control-allow-origin".into(), "*".into()));
            p.decorate(&mut reply, &req);
            assert!(reply.header("access-control-allow-origin").is_none());
        }
    }

    #[test]
    fn configuration_errors() {
        for (v, location) in [
            (
                serde_json::json!({"allowOrigins": ["*"], "allowCredentials": true}),
                "deployment.cors.allowOrigins",
            ),
            (
                serde_json::json!({"allowOrigins": []}),
                "deployment.cors.allowOrigins",
            ),
            (
                serde_json::json!({"allowOrigins": ["app.test"]}),
                "deployment.cors.allowOrigins[0]",
            ),
            (
                serde_json::json!({"allowOrigins": ["http://app.test/"]}),
                "deployment.cors.allowOrigins[0]",
            ),
        ] {
            let mut errors = Vec::new();
            CorsPolicy::compile(&serde_json::from_value(v.clone()).unwrap(), &mut errors);
            assert_eq!(
                errors.first().map(|e| e.location.as_str()),
                Some(location),
                "{v}"
            );
        }
    }
}
