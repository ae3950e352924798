//! Cache keys: which request values split the stage cache.
//!
//! Owns: parsing `cacheKeyParameters` (`method.request.path.NAME`,
//! `method.request.querystring.NAME`, `method.request.multivaluequerystring.NAME`,
//! `method.request.header.NAME`, `method.request.multivalueheader.NAME`) once at configure
//! time, and deriving the key of a request: stage, method, resource, and the values of the
//! listed parameters only. Values are length-prefixed so no two different requests can
//! produce the same key. Must not: look at the body (API Gateway never keys on it) or at
//! parameters that are not listed.

use crate::http::Header;
use crate::query;

/// One cache key parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParam {
    Path(String),
    Query(String),
    MultiQuery(String),
    /// Header name, lower-cased (header names are case-insensitive).
    Header(String),
    MultiHeader(String),
}

impl KeyParam {
    /// Parses one `cacheKeyParameters` entry. `path_params` are the resource's parameter
    /// names (`proxy` for `{proxy+}`).
    pub fn parse(text: &str, path_params: &[&str]) -> Result<KeyParam, String> {
        let rest = text
            .strip_prefix("method.request.")
            .ok_or("expected `method.request.{path|querystring|multivaluequerystring|header|multivalueheader}.NAME`")?;
        let (kind, name) = rest
            .split_once('.')
            .filter(|(_, n)| !n.is_empty())
            .ok_or("expected a parameter name after the location")?;
        let param = match kind {
            "path" => {
                if !path_params.contains(&name) {
                    return Err(format!(
                        "`{name}` is not a path parameter of this resource (it has: {})",
                        if path_params.is_empty() {
                            "none".to_string()
                        } else {
                            path_params.join(", ")
                        }
                    ));
                }
                KeyParam::Path(name.to_string())
            }
            "querystring" => KeyParam::Query(name.to_string()),
            "multivaluequerystring" => KeyParam::MultiQuery(name.to_string()),
            "header" => KeyParam::Header(name.to_ascii_lowercase()),
            "multivalueheader" => KeyParam::MultiHeader(name.to_ascii_lowercase()),
            other => {
                return Err(format!(
                    "unknown location `{other}`: expected path, querystring, multivaluequerystring, header or multivalueheader"
                ))
            }
        };
        Ok(param)
    }

    fn needs_query(&self) -> bool {
        matches!(self, KeyParam::Query(_) | KeyParam::MultiQuery(_))
    }
}

/// The parameter names of a resource path template (`/a/{id}/{proxy+}` -> `id`, `proxy`).
pub fn path_param_names(resource: &str) -> Vec<&str> {
    resource
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_end_matches('+'))
        .collect()
}

/// The request values a key is derived from.
#[derive(Debug, Clone, Copy)]
pub struct KeySource<'a> {
    pub stage: &'a str,
    pub method: &'a str,
    pub resource: &'a str,
    /// Path parameters as matched (still percent-encoded, as in `pathParameters`).
    pub path_params: &'a [(String, String)],
    /// The raw query string, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a [Header],
}

fn push_value(out: &mut String, v: &str) {
    out.push_str(&v.len().to_string());
    out.push(':');
    out.push_str(v);
}

fn push_values<'v>(out: &mut String, values: impl Iterator<Item = &'v str>) {
    let mut any = false;
    for v in values {
        out.push(if any { ',' } else { '=' });
        push_value(out, v);
        any = true;
    }
}

/// Derives the cache key of a request.
pub fn derive(params: &[KeyParam], src: &KeySource<'_>) -> String {
    let mut out = String::with_capacity(64);
    push_value(&mut out, src.stage);
    out.push(' ');
    out.push_str(src.method);
    out.push(' ');
    push_value(&mut out, src.resource);
    let query = if params.iter().any(KeyParam::needs_query) {
        query::parse(src.raw_query)
    } else {
        Vec::new()
    };
    let named = |pairs: &'_ [(String, String)], name: &str, lower: bool| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| {
                if lower {
                    k.eq_ignore_ascii_case(name)
                } else {
                    k == name
                }
            })
            .map(|(_, v)| v.clone())
            .collect()
    };
    for p in params {
        out.push('\n');
        let (tag, name, values, multi) = match p {
            KeyParam::Path(n) => ("p", n, named(src.path_params, n, false), false),
            KeyParam::Query(n) => ("q", n, named(&query, n, false), false),
            KeyParam::MultiQuery(n) => ("mq", n, named(&query, n, false), true),
            KeyParam::Header(n) => ("h", n, named(src.headers, n, true), false),
            KeyParam::MultiHeader(n) => ("mh", n, named(src.headers, n, true), true),
        };
        out.push_str(tag);
        out.push('.');
        push_value(&mut out, name);
        if multi {
            push_values(&mut out, values.iter().map(String::as_str));
        } else {
            // The single-value view is the last value, as in the proxy event.
            push_values(&mut out, values.last().map(String::as_str).into_iter());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::headers_of as h;

    fn key(
        params: &[KeyParam],
        query: &str,
        headers: &[(&str, &str)],
        path: &[(&str, &str)],
    ) -> String {
        let headers = h(headers);
        let path = h(path);
        derive(
            params,
            &KeySource {
                stage: "prod",
                method: "GET",
                resource: "/pets/{id}",
                path_params: &path,
                raw_query: query,
                headers: &headers,
            },
        )
    }

    #[test]
    fn parse_table() {
        let path = ["id", "proxy"];
        for (text, want) in [
            ("method.request.path.id", Ok(KeyParam::Path("id".into()))),
            (
                "method.request.path.proxy",
                Ok(KeyParam::Path("proxy".into())),
            ),
            (
                "method.request.querystring.type",
                Ok(KeyParam::Query("type".into())),
            ),
            (
                "method.request.multivaluequerystring.tag",
                Ok(KeyParam::MultiQuery("tag".into())),
            ),
            (
                "method.request.header.Authorization",
                Ok(KeyParam::Header("authorization".into())),
            ),
            (
                "method.request.multivalueheader.X-Tag",
                Ok(KeyParam::MultiHeader("x-tag".into())),
            ),
            ("method.request.path.other", Err("not a path parameter")),
            ("method.request.body.x", Err("unknown location")),
            (
                "integration.request.path.id",
                Err("expected `method.request."),
            ),
            ("method.request.querystring.", Err("parameter name")),
        ] {
            match (KeyParam::parse(text, &path), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{text}: {got}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn path_param_names_table() {
        assert_eq!(path_param_names("/a/{id}/b/{proxy+}"), vec!["id", "proxy"]);
        assert!(path_param_names("/").is_empty());
    }

    #[test]
    fn unlisted_parameters_do_not_split_the_key() {
        let params = [KeyParam::Query("type".into())];
        let a = key(
            &params,
            "type=admin&department=A",
            &[("x-h", "1")],
            &[("id", "1")],
        );
        let b = key(
            &params,
            "department=B&type=admin",
            &[("x-h", "2")],
            &[("id", "2")],
        );
        assert_eq!(a, b);
        assert_ne!(a, key(&params, "type=user", &[], &[]));
        // No parameters: one entry per stage, method and resource.
        assert_eq!(
            key(&[], "a=1", &[], &[("id", "1")]),
            key(&[], "a=2", &[], &[("id", "2")])
        );
    }

    /// A query string, headers and path parameters.
    type Sample = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
    );

    #[test]
    fn every_kind_splits_the_key() {
        let cases: [(KeyParam, Sample, Sample); 5] = [
            (
                KeyParam::Path("id".into()),
                ("", &[], &[("id", "1")]),
                ("", &[], &[("id", "2")]),
            ),
            (
                KeyParam::Query("q".into()),
                ("q=1", &[], &[]),
                ("q=2", &[], &[]),
            ),
            (
                KeyParam::MultiQuery("q".into()),
                ("q=1&q=2", &[], &[]),
                ("q=2", &[], &[]),
            ),
            (
                KeyParam::Header("x-t".into()),
                ("", &[("X-T", "a")], &[]),
                ("", &[("x-t", "b")], &[]),
            ),
            (
                KeyParam::MultiHeader("x-t".into()),
                ("", &[("x-t", "a"), ("x-t", "b")], &[]),
                ("", &[("x-t", "b")], &[]),
            ),
        ];
        for (param, (q1, h1, p1), (q2, h2, p2)) in cases {
            let params = [param.clone()];
            assert_ne!(
                key(&params, q1, h1, p1),
                key(&params, q2, h2, p2),
                "{param:?}"
            );
        }
    }

    #[test]
    fn single_value_views_use_the_last_value_and_decode() {
        let params = [KeyParam::Query("q".into())];
        assert_eq!(
            key(&params, "q=1&q=2", &[], &[]),
            key(&params, "q=2", &[], &[])
        );
        assert_eq!(
            key(&params, "q=a+b", &[], &[]),
            key(&params, "q=a%20b", &[], &[])
        );
        let params = [KeyParam::Header("x-t".into())];
        assert_eq!(
            key(&params, "", &[("x-t", "a"), ("x-t", "b")], &[]),
            key(&params, "", &[("x-t", "b")], &[])
        );
    }

    #[test]
    fn absent_empty_and_ambiguous_values_differ() {
        let params = [KeyParam::Query("a".into()), KeyParam::Query("b".into())];
        let absent = key(&params, "", &[], &[]);
        let empty = key(&params, "a=", &[], &[]);
        assert_ne!(absent, empty);
        // Length prefixes keep values from running into each other.
        assert_ne!(
            key(&params, "a=1,2&b=3", &[], &[]),
            key(&params, "a=1&b=2,3", &[], &[])
        );
        let params = [KeyParam::MultiQuery("a".into())];
        assert_ne!(
            key(&params, "a=1,2", &[], &[]),
            key(&params, "a=1&a=2", &[], &[])
        );
    }
}
