//! The Lambda proxy integration event, payload format 1.0, as API Gateway REST APIs send it.
//!
//! Owns: the event's JSON shape (field names, nulls for absent collections, last-value-wins
//! single-value maps beside ordered multi-value maps). Serialises straight from borrowed
//! request data, with no intermediate JSON tree. Must not: decide which headers or body the
//! event carries (the pipeline does), or read anything from the host.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::name_groups::{Group, NameGroups};

/// Ordered (name, value) pairs serialised as a single-value map: the last value of a
/// repeated name wins, at the position the name first appeared; empty serialises as `null`.
#[derive(Debug, Clone, Copy)]
pub struct SingleValues<'a>(pub &'a [(String, String)]);

/// Ordered (name, value) pairs serialised as name -> [values in order]; empty is `null`.
#[derive(Debug, Clone, Copy)]
pub struct MultiValues<'a>(pub &'a [(String, String)]);

/// The pairs' names grouped exactly (the event keeps names as the host wrote them).
pub(super) fn grouped(pairs: &[(String, String)]) -> NameGroups<'_> {
    NameGroups::of(pairs.iter().map(|(k, _)| k.as_str()), false)
}

/// The value of pair `i` (empty past the end).
pub(super) fn value_at(pairs: &[(String, String)], i: usize) -> &str {
    pairs.get(i).map(|(_, v)| v.as_str()).unwrap_or_default()
}

impl Serialize for SingleValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return s.serialize_none();
        }
        let mut map = s.serialize_map(None)?;
        for g in grouped(self.0).groups() {
            map.serialize_entry(g.name, value_at(self.0, g.last))?;
        }
        map.end()
    }
}

/// The values of one name: the pairs, their grouping, and the name's group.
struct ValuesAt<'a>(&'a [(String, String)], &'a NameGroups<'a>, Group<'a>);

impl Serialize for ValuesAt<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.1.positions(self.2).map(|i| value_at(self.0, i)))
    }
}

impl Serialize for MultiValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return s.serialize_none();
        }
        let mut map = s.serialize_map(None)?;
        let groups = grouped(self.0);
        for g in groups.groups() {
            map.serialize_entry(g.name, &ValuesAt(self.0, &groups, g))?;
        }
        map.end()
    }
}

/// Stage variables: `null` when the stage has none.
#[derive(Debug, Clone, Copy)]
pub struct StageVariables<'a>(pub &'a BTreeMap<String, String>);

impl Serialize for StageVariables<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_none()
        } else {
            self.0.serialize(s)
        }
    }
}

/// `requestContext.identity` without an authorizer or API key: the caller's address and
/// user agent; every IAM and Cognito field is `null`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity<'a> {
    pub access_key: Option<&'a str>,
    pub account_id: Option<&'a str>,
    /// Present only for methods that require an API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<&'a str>,
    pub caller: Option<&'a str>,
    pub cognito_authentication_provider: Option<&'a str>,
    pub cognito_authentication_type: Option<&'a str>,
    pub cognito_identity_id: Option<&'a str>,
    pub cognito_identity_pool_id: Option<&'a str>,
    pub principal_org_id: Option<&'a str>,
    pub source_ip: &'a str,
    pub user: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub user_arn: Option<&'a str>,
    /// The caller's certificate, on a mutual TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<&'a crate::client_cert::ClientCert>,
}

impl<'a> Identity<'a> {
    pub fn anonymous(source_ip: &'a str, user_agent: Option<&'a str>) -> Self {
        Identity {
            access_key: None,
            account_id: None,
            api_key: None,
            api_key_id: None,
            caller: None,
            cognito_authentication_provider: None,
            cognito_authentication_type: None,
            cognito_identity_id: None,
            cognito_identity_pool_id: None,
            principal_org_id: None,
            source_ip,
            user: None,
            user_agent,
            user_arn: None,
            client_cert: None,
        }
    }
}

/// `requestContext`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext<'a> {
    pub account_id: &'a str,
    pub api_id: &'a str,
    pub deployment_id: &'a str,
    pub domain_name: &'a str,
    pub domain_prefix: &'a str,
    pub extended_request_id: &'a str,
    pub http_method: &'a str,
    pub identity: Identity<'a>,
    /// Path as requested, stage (or base path) included.
    pub path: &'a str,
    pub protocol: &'a str,
    pub request_id: &'a str,
    pub request_time: &'a str,
    pub request_time_epoch: u64,
    pub resource_id: &'a str,
    pub resource_path: &'a str,
    pub stage: &'a str,
    /// What a Lambda authorizer decided, for methods it guards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<AuthorizerView<'a>>,
}

/// `requestContext.authorizer`. After a Lambda authorizer: `principalId`, each `context`
/// value as a string, and `integrationLatency` (milliseconds the authorizer took; 0 when
/// its result came from the cache). After a Cognito or JWT authorizer: `claims`, each
/// value as a string.
#[derive(Debug, Clone, Copy)]
pub enum AuthorizerView<'a> {
    Lambda {
        principal_id: &'a str,
        context: &'a [(String, serde_json::Value)],
        latency_ms: u64,
    },
    Claims(&'a [(String, String)]),
}

/// Name-value pairs as a JSON object.
struct Pairs<'a>(&'a [(String, String)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for AuthorizerView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            AuthorizerView::Lambda {
                principal_id,
                context,
                latency_ms,
            } => {
                let mut map = s.serialize_map(Some(context.len() + 2))?;
                map.serialize_entry("principalId", principal_id)?;
                for (k, v) in context {
                    if k != "principalId" && k != "integrationLatency" {
                        map.serialize_entry(k, &crate::authorizer::context_text(v))?;
                    }
                }
                map.serialize_entry("integrationLatency", &latency_ms)?;
                map.end()
            }
            AuthorizerView::Claims(claims) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("claims", &Pairs(claims))?;
                map.end()
            }
        }
    }
}

/// The request as events describe it: the part the proxy event and a REQUEST authorizer's
/// event share.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestFields<'a> {
    pub resource: &'a str,
    pub path: &'a str,
    pub http_method: &'a str,
    pub headers: SingleValues<'a>,
    pub multi_value_headers: MultiValues<'a>,
    pub query_string_parameters: SingleValues<'a>,
    pub multi_value_query_string_parameters: MultiValues<'a>,
    pub path_parameters: SingleValues<'a>,
    pub stage_variables: StageVariables<'a>,
    pub request_context: RequestContext<'a>,
}

/// The whole event.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyEvent<'a> {
    #[serde(flatten)]
    pub request: RequestFields<'a>,
    pub body: Option<&'a str>,
    pub is_base64_encoded: bool,
}

impl ProxyEvent<'_> {
    /// The event as JSON bytes, the document this type's `Serialize` describes (written
    /// by [`super::event_json`]).
    pub fn to_vec(&self) -> Vec<u8> {
        super::event_json::write(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn single_and_multi_maps() {
        let q = pairs(&[
            ("category", "electronics"),
            ("x", "1"),
            ("category", "books"),
        ]);
        assert_eq!(
            serde_json::to_value(SingleValues(&q)).unwrap(),
            json!({"category": "books", "x": "1"})
        );
        assert_eq!(
            serde_json::to_value(MultiValues(&q)).unwrap(),
            json!({"category": ["electronics", "books"], "x": ["1"]})
        );
        assert_eq!(
            serde_json::to_value(SingleValues(&[])).unwrap(),
            json!(null)
        );
        assert_eq!(serde_json::to_value(MultiValues(&[])).unwrap(), json!(null));
        assert_eq!(
            serde_json::to_value(StageVariables(&BTreeMap::new())).unwrap(),
            json!(null)
        );
    }

    /// Many pairs (names hashed rather than scanned while grouping): the same maps.
    #[test]
    fn many_pairs_keep_first_positions_and_every_value() {
        let q: Vec<(String, String)> = (0..40)
            .map(|i| (format!("n{}", i % 20), format!("v{i}")))
            .collect();
        let single = serde_json::to_string(&SingleValues(&q)).unwrap();
        let multi = serde_json::to_string(&MultiValues(&q)).unwrap();
        assert!(single.starts_with(r#"{"n0":"v20","n1":"v21","#), "{single}");
        assert!(single.ends_with(r#""n19":"v39"}"#), "{single}");
        assert!(
            multi.starts_with(r#"{"n0":["v0","v20"],"n1":["v1","v21"],"#),
            "{multi}"
        );
        assert_eq!(multi.matches('[').count(), 20, "{multi}");
    }

    #[test]
    fn single_map_keeps_first_position() {
        let q = pairs(&[("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(
            serde_json::to_string(&SingleValues(&q)).unwrap(),
            r#"{"b":"3","a":"2"}"#
        );
    }
}
