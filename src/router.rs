//! Resource matching with API Gateway REST API precedence.
//!
//! Owns: validating resource path templates as API Gateway does on import, and finding the
//! (resource, method) pair for a request. Matching is per method: for each concrete method
//! there is one `matchit` tree holding every resource that deploys that method or `ANY`
//! (the exact method wins over `ANY` on the same resource). Within a tree a literal segment
//! beats a `{param}`, which beats a greedy `{proxy+}`, and a request that fails under a
//! literal branch falls back to a greedy sibling: the behaviour recorded against AWS.
//! Must not: strip stages or base paths (the gateway hands over the resource-relative path).

use std::collections::BTreeMap;

use crate::error::ConfigError;
use crate::openapi::{Method, Operation};

/// Per-method lookup trees. Methods deployed on exactly the same resources share one tree
/// (a tree costs roughly 1 KB per resource, per worker); a tree's values index `ops`, the
/// operation each concrete method has on that resource.
#[derive(Debug, Default)]
pub struct Router {
    trees: Vec<matchit::Router<usize>>,
    /// Tree of each concrete method, in [`Method::CONCRETE`] order.
    tree_of: [Option<usize>; 7],
    /// Per resource, the operation of each concrete method.
    ops: Vec<[Option<usize>; 7]>,
}

/// A matched operation and its path parameters, values exactly as sent (still encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub operation: usize,
    pub params: Vec<(String, String)>,
}

fn tree_index(m: Method) -> Option<usize> {
    Method::CONCRETE.iter().position(|c| *c == m)
}

/// Checks one resource path template; returns its matchit form.
fn to_matchit(resource: &str) -> Result<String, String> {
    if resource == "/" {
        return Ok("/".into());
    }
    let body = resource
        .strip_prefix('/')
        .ok_or("a resource path must start with `/`")?;
    let segments: Vec<&str> = body.split('/').collect();
    let mut out = String::with_capacity(resource.len() + 2);
    for (i, seg) in segments.iter().enumerate() {
        out.push('/');
        if seg.is_empty() {
            return Err("empty path segment (`//` or a trailing `/`)".into());
        }
        if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            {
                return Err(format!("invalid path parameter `{seg}`"));
            }
            if greedy && i + 1 != segments.len() {
                return Err(format!(
                    "Cannot create a child of a resource with a greedy path variable: {seg}"
                ));
            }
            out.push_str(&if greedy {
                format!("{{*{name}}}")
            } else {
                format!("{{{name}}}")
            });
        } else if seg.contains(['{', '}']) {
            return Err(format!(
                "a path parameter must be a whole segment (`{seg}`)"
            ));
        } else if let Some(c) = seg.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ',' | ':' | '@'))
        }) {
            return Err(format!("character `{c}` is not allowed in a resource path"));
        } else {
            out.push_str(seg);
        }
    }
    Ok(out)
}

/// Parent path and variable segment of every level that has one, for the sibling rule.
fn variable_levels(resource: &str) -> impl Iterator<Item = (String, &str)> {
    let mut parent = String::new();
    resource
        .split('/')
        .filter(|s| !s.is_empty())
        .filter_map(move |seg| {
            let found = seg.starts_with('{').then(|| (parent.clone(), seg));
            parent.push('/');
            parent.push_str(seg);
            found
        })
}

impl Router {
    /// Builds the trees; every invalid path and sibling conflict is reported.
    pub fn build(operations: &[Operation]) -> Result<Router, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut level_owner: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut templates: BTreeMap<&str, String> = BTreeMap::new();
        for op in operations {
            if templates.contains_key(op.resource.as_str()) {
                continue;
            }
            let location = op
                .location
                .rsplit_once('.')
                .map_or(op.location.as_str(), |(l, _)| l);
            match to_matchit(&op.resource) {
                Ok(t) => {
                    templates.insert(&op.resource, t);
                }
                Err(msg) => {
                    errors.push(ConfigError::new(location, msg));
                    continue;
                }
            }
            for (parent, var) in variable_levels(&op.resource) {
                match level_owner.get(&parent) {
                    Some((other, _)) if other != var => errors.push(ConfigError::new(
                        location,
                        format!(
                            "A sibling ({}) of this resource already has a variable path part -- only one is allowed",
                            other.trim_matches(|c| c == '{' || c == '}')
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        level_owner.insert(parent, (var.to_string(), op.resource.clone()));
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // The operation of each concrete method on each resource: the exact method wins
        // over ANY.
        let mut table: BTreeMap<&str, [Option<usize>; 7]> = BTreeMap::new();
        for (i, op) in operations.iter().enumerate() {
            let row = table.entry(&op.resource).or_default();
            for (m, slot) in Method::CONCRETE.iter().zip(row.iter_mut()) {
                let exact = op.method == *m;
                if exact || (op.method == Method::Any && slot.is_none()) {
                    *slot = Some(i);
                }
            }
        }
        let mut router = Router::default();
        let mut tree_by_set: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
        for m in 0..Method::CONCRETE.len() {
            let set: Vec<usize> = table
                .values()
                .enumerate()
                .filter(|(_, row)| row.get(m).copied().flatten().is_some())
                .map(|(r, _)| r)
                .collect();
            if set.is_empty() {
                continue;
            }
            if let Some(&t) = tree_by_set.get(&set) {
                if let Some(slot) = router.tree_of.get_mut(m) {
                    *slot = Some(t);
                }
                continue;
            }
            let mut tree = matchit::Router::new();
            for (r, (resource, row)) in table.iter().enumerate() {
                if row.get(m).copied().flatten().is_none() {
                    continue;
                }
                let Some(template) = templates.get(resource) else {
                    continue;
                };
                if let Err(e) = tree.insert(template.as_str(), r) {
                    errors.push(ConfigError::new(
                        format!("openapi.paths.{resource}"),
                        format!("conflicting resource paths: {e}"),
                    ));
                }
            }
            let t = router.trees.len();
            router.trees.push(tree);
            tree_by_set.insert(set, t);
            if let Some(slot) = router.tree_of.get_mut(m) {
                *slot = Some(t);
            }
        }
        router.ops = table.into_values().collect();
        if errors.is_empty() {
            Ok(router)
        } else {
            Err(errors)
        }
    }

    /// Finds the operation for `method` on a resource-relative path (already normalised:
    /// one leading `/`, trailing `/` removed).
    pub fn find(&self, method: Method, path: &str) -> Option<RouteMatch> {
        let m_i = tree_index(method)?;
        let tree = self.trees.get(self.tree_of.get(m_i).copied().flatten()?)?;
        let m = tree.at(path).ok()?;
        let operation = self.ops.get(*m.value)?.get(m_i).copied().flatten()?;
        Some(RouteMatch {
            operation,
            params: m
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::Integration;

    fn ops(spec: &[(&str, Method)]) -> Vec<Operation> {
        spec.iter()
            .map(|(path, method)| Operation {
                resource: path.to_string(),
                method: *method,
                integration: Integration::Unsupported {
                    kind: "mock".into(),
                },
                cache_key_parameters: Vec::new(),
                api_key_required: false,
                authorizer: None,
                authorization_scopes: Vec::new(),
                method_responses: None,
                request: Default::default(),
                location: format!("openapi.paths.{path}.{}", method.as_str().to_lowercase()),
            })
            .collect()
    }

    /// Returns "resource METHOD" for a match.
    fn route(ops: &[Operation], r: &Router, method: Method, path: &str) -> Option<String> {
        r.find(method, path).map(|m| {
            let op = &ops[m.operation];
            format!("{} {}", op.resource, op.method.as_str())
        })
    }

    #[test]
    fn precedence_recorded_against_aws() {
        use Method::*;
        // Resources /test (POST), /test/any (ANY), /{proxy+} (OPTIONS).
        let o = ops(&[("/test", Post), ("/test/any", Any), ("/{proxy+}", Options)]);
        let r = Router::build(&o).unwrap();
        for (method, path, want) in [
            (Options, "/test", Some("/{proxy+} OPTIONS")),
            (Post, "/test", Some("/test POST")),
            (Options, "/test/any", Some("/test/any ANY")),
            (Get, "/test/any", Some("/test/any ANY")),
            (Get, "/test", None),
            (Options, "/", None),
        ] {
            assert_eq!(
                route(&o, &r, method, path).as_deref(),
                want,
                "{method:?} {path}"
            );
        }
        // Resources /part1, /part1/hardcoded-value, /{param+}, all GET.
        let o = ops(&[
            ("/part1", Get),
            ("/part1/hardcoded-value", Get),
            ("/{param+}", Get),
        ]);
        let r = Router::build(&o).unwrap();
        for (path, want) in [
            ("/part1", "/part1 GET"),
            ("/part1/hardcoded-value", "/part1/hardcoded-value GET"),
            ("/part1/random-value", "/{param+} GET"),
        ] {
            assert_eq!(route(&o, &r, Get, path).as_deref(), Some(want), "{path}");
        }
    }

    #[test]
    fn exact_method_beats_any_and_literal_beats_variable() {
        use Method::*;
        let o = ops(&[
            ("/pets/{id}", Any),
            ("/pets/{id}", Get),
            ("/pets/mine", Get),
            ("/", Get),
        ]);
        let r = Router::build(&o).unwrap();
        for (method, path, want) in [
            (Get, "/pets/7", Some("/pets/{id} GET")),
            (Delete, "/pets/7", Some("/pets/{id} ANY")),
            (Get, "/pets/mine", Some("/pets/mine GET")),
            (Delete, "/pets/mine", Some("/pets/{id} ANY")),
            (Get, "/", Some("/ GET")),
            (Post, "/", None),
            (Get, "/pets", None),
            (Get, "/Pets/7", None),
        ] {
            assert_eq!(
                route(&o, &r, method, path).as_deref(),
                want,
                "{method:?} {path}"
            );
        }
    }

    #[test]
    fn params_keep_encoding_and_greedy_spans_segments() {
        let o = ops(&[
            ("/users/{id}", Method::Get),
            ("/files/{proxy+}", Method::Get),
        ]);
        let r = Router::build(&o).unwrap();
        let m = r.find(Method::Get, "/users/a%2Fb").unwrap();
        assert_eq!(m.params, vec![("id".to_string(), "a%2Fb".to_string())]);
        let m = r.find(Method::Get, "/files/x//y/z+1").unwrap();
        assert_eq!(
            m.params,
            vec![("proxy".to_string(), "x//y/z+1".to_string())]
        );
        assert!(r.find(Method::Get, "/users/").is_none());
    }

    #[test]
    fn invalid_templates_table() {
        for (path, needle) in [
            ("/a/{proxy+}/b", "greedy path variable"),
            ("/a{id}", "whole segment"),
            ("/a//b", "empty path segment"),
            ("/a/", "empty path segment"),
            ("/a b", "not allowed"),
            ("/{}", "invalid path parameter"),
            ("pets", "must start with"),
        ] {
            let errs = Router::build(&ops(&[(path, Method::Get)])).unwrap_err();
            assert!(errs[0].message.contains(needle), "{path}: {}", errs[0]);
            assert_eq!(errs[0].location, format!("openapi.paths.{path}"));
        }
    }

    #[test]
    fn one_variable_per_level() {
        let errs = Router::build(&ops(&[
            ("/{proxy+}", Method::Get),
            ("/{id}/x", Method::Get),
        ]))
        .unwrap_err();
        assert!(
            errs[0].message.contains("only one is allowed"),
            "{}",
            errs[0]
        );
        // The same variable at the same level in several resources is one resource: fine.
        assert!(Router::build(&ops(&[
            ("/u/{id}", Method::Get),
            ("/u/{id}/x", Method::Get)
        ]))
        .is_ok());
    }
}
