//! The proxy event's JSON bytes, written straight into one buffer sized up front.
//!
//! Owns: [`write`], the document that [`ProxyEvent`]'s `Serialize` shape describes (field
//! order, `null` for absent collections and values, last-value-wins single-value maps),
//! byte for byte, without serde's per-field machinery or the buffer growing as it goes.
//! The names of a list are grouped once for both its single-value and its multi-value
//! map. Text with nothing to escape is copied whole; other text goes through serde_json's
//! own escaping, so the two always agree. Must not: decide what the event holds (that is
//! [`super::event`] and the pipeline).

use serde::Serialize;

use super::event::{grouped, value_at, Identity, ProxyEvent, RequestContext, RequestFields};
use crate::name_groups::NameGroups;

/// The event as JSON bytes.
pub fn write(event: &ProxyEvent<'_>) -> Vec<u8> {
    let mut out = Out(Vec::with_capacity(size_hint(event)));
    out.event(event);
    out.0
}

/// Room for the event: its variable text twice over (most of it appears in two maps) plus
/// the fixed names, so a typical event is written without the buffer growing.
fn size_hint(event: &ProxyEvent<'_>) -> usize {
    let r = &event.request;
    let pairs = |p: &[(String, String)]| p.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    let sum: usize = [
        pairs(r.headers.0),
        pairs(r.multi_value_headers.0),
        pairs(r.query_string_parameters.0),
        pairs(r.multi_value_query_string_parameters.0),
        pairs(r.path_parameters.0),
    ]
    .iter()
    .sum();
    1024 + sum + r.path.len() * 2 + event.body.map_or(0, str::len)
}

/// Bytes that JSON strings carry as they are.
fn plain(b: u8) -> bool {
    b >= 0x20 && b != b'"' && b != b'\\'
}

/// Whether no byte of `text` needs escaping, eight bytes at a time: a word has a byte
/// below 0x20, or equal to `"` or `\`, exactly when the bit tricks below leave a high bit.
fn all_plain(text: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let words = text.chunks_exact(8);
    let tail = words.remainder();
    for word in words {
        let Ok(bytes) = <[u8; 8]>::try_from(word) else {
            return false;
        };
        let x = u64::from_ne_bytes(bytes);
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        if below_space
            | zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return false;
        }
    }
    tail.iter().all(|&b| plain(b))
}

struct Out(Vec<u8>);

impl Out {
    fn raw(&mut self, text: &str) {
        self.0.extend_from_slice(text.as_bytes());
    }

    /// A JSON string.
    fn text(&mut self, text: &str) {
        if all_plain(text.as_bytes()) {
            self.0.reserve(text.len() + 2);
            self.0.push(b'"');
            self.0.extend_from_slice(text.as_bytes());
            self.0.push(b'"');
        } else {
            self.serde(text);
        }
    }

    fn opt(&mut self, text: Option<&str>) {
        match text {
            Some(t) => self.text(t),
            None => self.raw("null"),
        }
    }

    /// `"name":` for a name that needs no escaping.
    fn key(&mut self, name: &str) {
        self.0.push(b'"');
        self.raw(name);
        self.raw("\":");
    }

    /// A value serde writes (numbers, and the rare nested values).
    fn serde<T: Serialize + ?Sized>(&mut self, value: &T) {
        // Writing into a vector cannot fail, and every map key here is a string.
        let _ = serde_json::to_writer(&mut self.0, value);
    }

    fn event(&mut self, e: &ProxyEvent<'_>) {
        self.0.push(b'{');
        self.request(&e.request);
        self.raw(",\"body\":");
        self.opt(e.body);
        self.raw(if e.is_base64_encoded {
            ",\"isBase64Encoded\":true}"
        } else {
            ",\"isBase64Encoded\":false}"
        });
    }

    fn request(&mut self, r: &RequestFields<'_>) {
        self.key("resource");
        self.text(r.resource);
        self.raw(",\"path\":");
        self.text(r.path);
        self.raw(",\"httpMethod\":");
        self.text(r.http_method);
        self.raw(",");
        self.maps(
            ("headers", r.headers.0),
            ("multiValueHeaders", r.multi_value_headers.0),
        );
        self.raw(",");
        self.maps(
            ("queryStringParameters", r.query_string_parameters.0),
            (
                "multiValueQueryStringParameters",
                r.multi_value_query_string_parameters.0,
            ),
        );
        self.raw(",\"pathParameters\":");
        let params = r.path_parameters.0;
        self.single(params, &grouped(params));
        self.raw(",\"stageVariables\":");
        let vars = r.stage_variables.0;
        if vars.is_empty() {
            self.raw("null");
        } else {
            self.0.push(b'{');
            for (i, (k, v)) in vars.iter().enumerate() {
                if i > 0 {
                    self.0.push(b',');
                }
                self.text(k);
                self.0.push(b':');
                self.text(v);
            }
            self.0.push(b'}');
        }
        self.raw(",\"requestContext\":");
        self.context(&r.request_context);
    }

    /// A single-value map and a multi-value map, named; one grouping when both list the
    /// same pairs (as the event's headers and query do).
    fn maps(
        &mut self,
        (single_name, single): (&str, &[(String, String)]),
        (multi_name, multi): (&str, &[(String, String)]),
    ) {
        let groups = grouped(single);
        self.key(single_name);
        self.single(single, &groups);
        self.raw(",");
        self.key(multi_name);
        if std::ptr::eq(single, multi) {
            self.multi(multi, &groups);
        } else {
            self.multi(multi, &grouped(multi));
        }
    }

    /// Name to last value; `null` when there are no pairs.
    fn single(&mut self, pairs: &[(String, String)], groups: &NameGroups<'_>) {
        if pairs.is_empty() {
            return self.raw("null");
        }
        self.0.push(b'{');
        for (i, g) in groups.groups().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.text(g.name);
            self.0.push(b':');
            self.text(value_at(pairs, g.last));
        }
        self.0.push(b'}');
    }

    /// Name to every value in order; `null` when there are no pairs.
    fn multi(&mut self, pairs: &[(String, String)], groups: &NameGroups<'_>) {
        if pairs.is_empty() {
            return self.raw("null");
        }
        self.0.push(b'{');
        for (i, g) in groups.groups().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.text(g.name);
            self.raw(":[");
            for (j, at) in groups.positions(g).enumerate() {
                if j > 0 {
                    self.0.push(b',');
                }
                self.text(value_at(pairs, at));
            }
            self.0.push(b']');
        }
        self.0.push(b'}');
    }

    /// `,"name":value` for each field, a value being a string or `null`.
    fn fields(&mut self, fields: &[(&str, Option<&str>)]) {
        for (name, value) in fields {
            self.0.push(b',');
            self.key(name);
            self.opt(*value);
        }
    }

    fn context(&mut self, c: &RequestContext<'_>) {
        self.0.push(b'{');
        self.key("accountId");
        self.text(c.account_id);
        self.fields(&[
            ("apiId", Some(c.api_id)),
            ("deploymentId", Some(c.deployment_id)),
            ("domainName", Some(c.domain_name)),
            ("domainPrefix", Some(c.domain_prefix)),
            ("extendedRequestId", Some(c.extended_request_id)),
            ("httpMethod", Some(c.http_method)),
        ]);
        self.raw(",\"identity\":");
        self.identity(&c.identity);
        self.fields(&[
            ("path", Some(c.path)),
            ("protocol", Some(c.protocol)),
            ("requestId", Some(c.request_id)),
            ("requestTime", Some(c.request_time)),
        ]);
        self.raw(",\"requestTimeEpoch\":");
        self.serde(&c.request_time_epoch);
        self.fields(&[
            ("resourceId", Some(c.resource_id)),
            ("resourcePath", Some(c.resource_path)),
            ("stage", Some(c.stage)),
        ]);
        if let Some(a) = &c.authorizer {
            self.raw(",\"authorizer\":");
            self.serde(a);
        }
        self.0.push(b'}');
    }

    fn identity(&mut self, id: &Identity<'_>) {
        self.0.push(b'{');
        self.key("accessKey");
        self.opt(id.access_key);
        self.fields(&[("accountId", id.account_id)]);
        // Present only when the method requires an API key: skipped, not `null`.
        if let Some(key) = id.api_key {
            self.fields(&[("apiKey", Some(key))]);
        }
        if let Some(key_id) = id.api_key_id {
            self.fields(&[("apiKeyId", Some(key_id))]);
        }
        self.fields(&[
            ("caller", id.caller),
            (
                "cognitoAuthenticationProvider",
                id.cognito_authentication_provider,
            ),
            ("cognitoAuthenticationType", id.cognito_authentication_type),
            ("cognitoIdentityId", id.cognito_identity_id),
            ("cognitoIdentityPoolId", id.cognito_identity_pool_id),
            ("principalOrgId", id.principal_org_id),
            ("sourceIp", Some(id.source_ip)),
            ("user", id.user),
            ("userAgent", id.user_agent),
            ("userArn", id.user_arn),
        ]);
        if let Some(cert) = id.client_cert {
            self.raw(",\"clientCert\":");
            self.serde(cert);
        }
        self.0.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::client_cert::{ClientCert, Validity};
    use crate::lambda::event::tests::pairs;
    use crate::lambda::event::{AuthorizerView, MultiValues, SingleValues, StageVariables};

    /// The parts of an event a case varies.
    #[derive(Default)]
    struct Case {
        headers: Vec<(String, String)>,
        query: Vec<(String, String)>,
        params: Vec<(String, String)>,
        vars: BTreeMap<String, String>,
        body: Option<&'static str>,
        base64: bool,
        api_key: Option<&'static str>,
        caller: Option<&'static str>,
        user_agent: Option<&'static str>,
        cert: Option<ClientCert>,
        context: Vec<(String, serde_json::Value)>,
        claims: Vec<(String, String)>,
        lambda_authorizer: bool,
        text: &'static str,
    }

    fn event<'a>(c: &'a Case, separate_multi: &'a [(String, String)]) -> ProxyEvent<'a> {
        let authorizer = if c.lambda_authorizer {
            Some(AuthorizerView::Lambda {
                principal_id: "user-1",
                context: &c.context,
                latency_ms: 12,
            })
        } else if !c.claims.is_empty() {
            Some(AuthorizerView::Claims(&c.claims))
        } else {
            None
        };
        ProxyEvent {
            request: RequestFields {
                resource: "/orders/{id}",
                path: c.text,
                http_method: "POST",
                headers: SingleValues(&c.headers),
                multi_value_headers: MultiValues(if separate_multi.is_empty() {
                    &c.headers
                } else {
                    separate_multi
                }),
                query_string_parameters: SingleValues(&c.query),
                multi_value_query_string_parameters: MultiValues(&c.query),
                path_parameters: SingleValues(&c.params),
                stage_variables: StageVariables(&c.vars),
                request_context: RequestContext {
                    account_id: "123456789012",
                    api_id: "abc123",
                    deployment_id: "dep1",
                    domain_name: "api.example.com",
                    domain_prefix: "api",
                    extended_request_id: "AbCdEfGhIjKlMnO=",
                    http_method: "POST",
                    identity: Identity {
                        api_key: c.api_key,
                        api_key_id: c.api_key.map(|_| "key-id"),
                        caller: c.caller,
                        user_arn: c.caller,
                        client_cert: c.cert.as_ref(),
                        ..Identity::anonymous("10.0.0.1", c.user_agent)
                    },
                    path: c.text,
                    protocol: "HTTP/1.1",
                    request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                    request_time: "09/Apr/2015:12:34:56 +0000",
                    request_time_epoch: 1_428_582_896_000,
                    resource_id: "r1",
                    resource_path: "/orders/{id}",
                    stage: "prod",
                    authorizer,
                },
            },
            body: c.body,
            is_base64_encoded: c.base64,
        }
    }

    /// Every case: the written bytes are exactly what serde writes for the same shape.
    #[test]
    fn writes_what_serde_writes() {
        let cert = ClientCert {
            client_cert_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".into(),
            subject_dn: "CN=client,O=\"Example, Inc.\"".into(),
            issuer_dn: "CN=ca".into(),
            serial_number: "01:02".into(),
            validity: Validity {
                not_before: "Jan 1 00:00:00 2026 GMT".into(),
                not_after: "Jan 1 00:00:00 2027 GMT".into(),
            },
        };
        let cases = [
            Case {
                text: "/prod/orders/7",
                ..Case::default()
            },
            Case {
                headers: pairs(&[
                    ("Host", "a"),
                    ("Accept", "x"),
                    ("accept", "y"),
                    ("Accept", "z"),
                ]),
                query: pairs(&[("q", "1"), ("r", ""), ("q", "2")]),
                params: pairs(&[("id", "7")]),
                vars: [("b".to_string(), "2".to_string()), ("a".into(), "1".into())].into(),
                body: Some("{\"a\":1}"),
                api_key: Some("k"),
                user_agent: Some("curl/8"),
                text: "/prod/orders/7",
                ..Case::default()
            },
            Case {
                headers: pairs(&[("X-Quote", "say \"hi\"\\"), ("X-Ctl", "a\tb\u{1}\u{7f}")]),
                query: pairs(&[("na\"me", "é ✓"), ("line", "a\nb\r")]),
                body: Some("AAEC"),
                base64: true,
                caller: Some("AIDA:arn"),
                cert: Some(cert),
                text: "/prod/ünïcode \"path\"",
                ..Case::default()
            },
            Case {
                lambda_authorizer: true,
                context: vec![
                    ("role".into(), json!("admin")),
                    ("level".into(), json!(3)),
                    ("principalId".into(), json!("ignored")),
                ],
                text: "/x",
                ..Case::default()
            },
            Case {
                claims: pairs(&[("sub", "u-1"), ("email", "a@b.c")]),
                text: "/x",
                ..Case::default()
            },
        ];
        for case in &cases {
            let e = event(case, &[]);
            let expected = serde_json::to_vec(&e).unwrap();
            assert_eq!(
                String::from_utf8(e.to_vec()).unwrap(),
                String::from_utf8(expected).unwrap(),
                "path {}",
                case.text
            );
        }
        // Single-value and multi-value maps over different lists are grouped apart.
        let case = Case {
            headers: pairs(&[("A", "1"), ("A", "2")]),
            text: "/x",
            ..Case::default()
        };
        let other = pairs(&[("B", "3"), ("B", "4")]);
        let e = event(&case, &other);
        let written: serde_json::Value = serde_json::from_slice(&e.to_vec()).unwrap();
        assert_eq!(written["headers"], json!({"A": "2"}));
        assert_eq!(written["multiValueHeaders"], json!({"B": ["3", "4"]}));
        assert_eq!(e.to_vec(), serde_json::to_vec(&e).unwrap());
    }

    /// Every ASCII character at every place of a string longer than a word: escaped
    /// exactly where serde escapes it.
    #[test]
    fn escapes_what_serde_escapes() {
        for c in (0u8..0x80).map(char::from).chain(['é', '✓', '\u{2028}']) {
            for at in 0..18 {
                let mut text: String = "abcdefghijklmnopq".into();
                text.insert(at, c);
                let mut out = Out(Vec::new());
                out.text(&text);
                assert_eq!(out.0, serde_json::to_vec(&text).unwrap(), "{c:?} at {at}");
                assert_eq!(all_plain(text.as_bytes()), text.bytes().all(plain));
            }
        }
    }

    /// A typical event fits the buffer reserved for it: the buffer is never grown (serde's
    /// writer starts small and grows, so this fails without the writer).
    #[test]
    fn typical_event_is_written_without_growing() {
        let case = Case {
            headers: pairs(&[
                ("Host", "api.example.com"),
                ("User-Agent", "curl/8.5"),
                (
                    "X-Amzn-Trace-Id",
                    "Root=1-5e1b4151-5ac6c58f5b5dbd6a7a4a9d9c",
                ),
                ("X-Forwarded-For", "10.0.0.1"),
                ("X-Forwarded-Proto", "https"),
            ]),
            body: Some("{\"order\":7}"),
            text: "/prod/orders/7",
            ..Case::default()
        };
        let e = event(&case, &[]);
        let bytes = e.to_vec();
        assert_eq!(bytes.capacity(), size_hint(&e), "{} bytes", bytes.len());
        assert_eq!(bytes, serde_json::to_vec(&e).unwrap());
    }
}
