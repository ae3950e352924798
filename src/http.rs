//! Plain HTTP values that cross the boundary between the host glue and the core.
//!
//! Owns: header lists (ordered, duplicates kept, names compared case-insensitively), the
//! reply type every pipeline stage returns, and header-name canonicalisation. Must not: touch
//! the host or allocate per lookup.

use std::borrow::Cow;

use crate::name_groups::NameGroups;

/// One header as the host reports it. Envoy hands names over lower-cased.
pub type Header = (String, String);

/// First value of `name` (case-insensitive).
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Header bytes as text: UTF-8 when they are UTF-8, otherwise ISO-8859-1 (each byte one
/// character), the charset HTTP/1.1 gives `obs-text`. Nothing is dropped and nothing fails:
/// a client or an upstream that sends arbitrary bytes gets a deterministic string.
pub fn header_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => latin1(e.as_bytes()),
    }
}

/// [`header_text`] of borrowed bytes: no copy when they are UTF-8.
pub fn header_text_of(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(latin1(bytes)),
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Decodes a proxy-wasm header map (`u32` count, then a `u32` name and value length per
/// pair, then each name and value followed by a NUL byte, lengths little-endian), reading
/// names and values as [`header_text`]. `None` when the buffer is shorter than it says.
pub fn decode_header_map(bytes: &[u8]) -> Option<Vec<Header>> {
    let u32_at = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32_at(0)?;
    // Each pair needs 8 bytes of lengths and two NULs: a count the buffer cannot hold is
    // refused before anything is allocated for it.
    if count.checked_mul(10)? > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    let mut data = 4 + count * 8;
    for n in 0..count {
        let sizes = 4 + n * 8;
        let (name_len, value_len) = (u32_at(sizes)?, u32_at(sizes + 4)?);
        let name = bytes.get(data..data.checked_add(name_len)?)?.to_vec();
        data = data.checked_add(name_len)?.checked_add(1)?;
        let value = bytes.get(data..data.checked_add(value_len)?)?.to_vec();
        data = data.checked_add(value_len)?.checked_add(1)?;
        out.push((header_text(name), header_text(value)));
    }
    Some(out)
}

/// Canonical `Title-Case` form of a header name (`content-type` -> `Content-Type`).
///
/// Envoy's HTTP/1 codec lower-cases names before a filter sees them, so the client's own
/// casing cannot be recovered; HTTP/1.1 clients overwhelmingly send this form.
pub fn title_case(name: &str) -> String {
    if name.is_ascii() {
        let mut out = String::with_capacity(name.len());
        let mut upper = true;
        for c in name.chars() {
            out.push(if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            upper = c == '-';
        }
        return out;
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        upper = c == '-';
    }
    out
}

/// Owned headers from `(name, value)` pairs, for tests.
#[cfg(test)]
pub fn headers_of(pairs: &[(&str, &str)]) -> Vec<Header> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One change to a host's header map (see [`header_edits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    /// Remove every value of the name.
    Remove(&'a str),
    /// Replace every value of the name with this one.
    Set(&'a str, &'a str),
    /// Add one more value of the name (after a `Set` of it).
    Add(&'a str, &'a str),
}

/// The changes that make a header map holding `current` hold exactly `wanted` (a name
/// repeated for several values, in order), leaving alone the names whose values stay the
/// same: a host that looks a name up on every call pays only for what changes. Names
/// compare case-insensitively. Linear in the number of headers (see [`NameGroups`]).
pub fn header_edits<'a, K, V>(
    current: &'a [(K, V)],
    wanted: &[(&'a str, &'a str)],
) -> Vec<HeaderEdit<'a>>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let had = NameGroups::of(current.iter().map(|(k, _)| k.as_ref()), true);
    let want = NameGroups::of(wanted.iter().map(|(k, _)| *k), true);
    let mut edits: Vec<HeaderEdit<'a>> = had
        .groups()
        .filter(|g| want.group(g.name).is_none())
        .map(|g| HeaderEdit::Remove(g.name))
        .collect();
    let value = |pairs: &'a [(K, V)], i: usize| pairs.get(i).map_or("", |(_, v)| v.as_ref());
    for g in want.groups() {
        let mut values = want
            .positions(g)
            .map(|i| wanted.get(i).map_or("", |&(_, v)| v));
        let before = had
            .group(g.name)
            .into_iter()
            .flat_map(|h| had.positions(h).map(|i| value(current, i)));
        if values.clone().eq(before) {
            continue;
        }
        if let Some(first) = values.next() {
            edits.push(HeaderEdit::Set(g.name, first));
        }
        edits.extend(values.map(|v| HeaderEdit::Add(g.name, v)));
    }
    edits
}

/// A complete response the host sends to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A reply with a JSON body and `Content-Type: application/json`.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// First value of a response header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Adds a header unless one of that name is already present.
    pub fn set_default_header(&mut self, name: &str, value: &str) {
        if self.header(name).is_none() {
            self.headers.push((name.to_string(), value.to_string()));
        }
    }

    /// Body as UTF-8 text (lossy), for logs and tests.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_table() {
        for (bytes, want, borrowed) in [
            (&b""[..], "", true),
            (b"application/json", "application/json", true),
            ("caf\u{e9}".as_bytes(), "caf\u{e9}", true),
            // Not UTF-8: each byte one ISO-8859-1 character.
            (b"caf\xe9", "caf\u{e9}", false),
            (b"\xff\x00a", "\u{ff}\u{0}a", false),
        ] {
            assert_eq!(header_text(bytes.to_vec()), want, "{bytes:?}");
            let text = header_text_of(bytes);
            assert_eq!(text, want, "{bytes:?}");
            assert_eq!(matches!(text, Cow::Borrowed(_)), borrowed, "{bytes:?}");
        }
    }

    #[test]
    fn header_edits_touch_only_what_changes() {
        use HeaderEdit::{Add, Remove, Set};
        let current = headers_of(&[
            (":status", "200"),
            ("content-type", "application/json"),
            ("x-amzn-requestid", "stand-in"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("date", "Wed"),
        ]);
        for (wanted, want) in [
            // The same map, in other letter case: nothing to do.
            (
                vec![
                    (":status", "200"),
                    ("Content-Type", "application/json"),
                    ("X-Amzn-RequestId", "stand-in"),
                    ("Set-Cookie", "a=1"),
                    ("set-cookie", "b=2"),
                    ("Date", "Wed"),
                ],
                vec![],
            ),
            // Changed values are set, missing names removed (once each), new names set.
            (
                vec![
                    (":status", "201"),
                    ("content-type", "application/json"),
                    ("x-amzn-RequestId", "r-1"),
                    ("x-amz-apigw-id", "id"),
                ],
                vec![
                    Remove("set-cookie"),
                    Remove("date"),
                    Set(":status", "201"),
                    Set("x-amzn-RequestId", "r-1"),
                    Set("x-amz-apigw-id", "id"),
                ],
            ),
            // Several values of a name: all of them again when any differs or the count
            // changes, in order.
            (
                vec![
                    (":status", "200"),
                    ("set-cookie", "a=1"),
                    ("content-type", "application/json"),
                    ("set-cookie", "c=3"),
                    ("x-amzn-requestid", "stand-in"),
                    ("date", "Wed"),
                ],
                vec![Set("set-cookie", "a=1"), Add("set-cookie", "c=3")],
            ),
            (
                vec![
                    (":status", "200"),
                    ("set-cookie", "a=1"),
                    ("content-type", "application/json"),
                    ("x-amzn-requestid", "stand-in"),
                    ("date", "Wed"),
                ],
                vec![Set("set-cookie", "a=1")],
            ),
            // Nothing wanted: every name removed once.
            (
                vec![],
                vec![
                    Remove(":status"),
                    Remove("content-type"),
                    Remove("x-amzn-requestid"),
                    Remove("set-cookie"),
                    Remove("date"),
                ],
            ),
        ] {
            assert_eq!(header_edits(&current, &wanted), want, "{wanted:?}");
        }
        // From an empty map: everything is set or added.
        assert_eq!(
            header_edits::<&str, &str>(&[], &[("a", "1"), ("a", "2")]),
            [Set("a", "1"), Add("a", "2")]
        );
        // Many headers (names hashed rather than scanned): the same rules.
        let many: Vec<(String, String)> = (0..40)
            .map(|i| (format!("x-h{}", i % 20), format!("v{i}")))
            .collect();
        let upper: Vec<(String, String)> = many
            .iter()
            .map(|(k, v)| (k.to_uppercase(), v.clone()))
            .collect();
        let upper: Vec<(&str, &str)> = upper
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(header_edits(&many, &upper), []);
        let mut changed = upper.clone();
        changed.retain(|(k, _)| *k != "X-H3");
        changed[0].1 = "new";
        assert_eq!(
            header_edits(&many, &changed),
            [Remove("x-h3"), Set("X-H0", "new"), Add("X-H0", "v20")]
        );
    }

    #[test]
    fn title_case_table() {
        for (input, want) in [
            ("content-type", "Content-Type"),
            ("x-amzn-trace-id", "X-Amzn-Trace-Id"),
            ("accept", "Accept"),
            ("X-API-KEY", "X-Api-Key"),
            ("", ""),
            ("-a--b-", "-A--B-"),
            ("x_y.z", "X_y.z"),
            // Names beyond ASCII take the Unicode case rules.
            ("\u{e9}t\u{c9}-\u{e9}", "\u{c9}t\u{e9}-\u{c9}"),
        ] {
            assert_eq!(title_case(input), want, "{input}");
        }
    }

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend(*k);
            out.push(0);
            out.extend(*v);
            out.push(0);
        }
        out
    }

    #[test]
    fn header_maps_decode_any_bytes() {
        let map = encode(&[
            (b":path", b"/dev/a"),
            (b"x-bin", b"\xc0\xaf"),
            (b"x-utf8", "caf\u{e9}".as_bytes()),
            (b"x-empty", b""),
        ]);
        assert_eq!(
            decode_header_map(&map).unwrap(),
            headers_of(&[
                (":path", "/dev/a"),
                ("x-bin", "\u{c0}\u{af}"),
                ("x-utf8", "caf\u{e9}"),
                ("x-empty", ""),
            ])
        );
        assert_eq!(decode_header_map(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn truncated_or_lying_header_maps_are_refused() {
        let map = encode(&[(b"a", b"b"), (b"cc", b"dd")]);
        // The last NUL carries nothing, so every shorter cut must fail.
        for cut in 1..map.len() - 1 {
            assert_eq!(decode_header_map(&map[..cut]), None, "cut at {cut}");
        }
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend([0u8; 16]);
        assert_eq!(decode_header_map(&huge), None);
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_first_wins() {
        let h = vec![
            ("accept".to_string(), "a".to_string()),
            ("Accept".to_string(), "b".to_string()),
        ];
        assert_eq!(header(&h, "ACCEPT"), Some("a"));
        assert_eq!(header(&h, "missing"), None);
    }
}

/// The header naming the cluster a forwarded integration request goes to: the rendered
/// route sends the request there and removes the header.
pub const FORWARD_CLUSTER_HEADER: &str = "x-apigw-edge-cluster";

/// Marks a forwarded request whose integration request carries its own `X-Forwarded-Proto`
/// (an HTTP integration that maps one): the route keeps that header and removes the mark.
/// Without the mark the route removes `X-Forwarded-Proto`, which a forwarded request holds
/// only so that Envoy matches a route.
pub const FORWARD_KEEP_PROTO_HEADER: &str = "x-apigw-edge-keep-proto";

/// A ready HTTP call for the host to dispatch to one of Envoy's clusters (a Lambda Invoke,
/// a function URL, an HTTP backend, an authorizer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCall {
    pub cluster: String,
    /// Request headers, pseudo-headers (`:method`, `:path`, `:authority`) first.
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

/// What came back from a dispatched call, as the host saw it.
#[derive(Debug, Clone, Default)]
pub struct UpstreamAnswer {
    /// `None` when the host delivered no response headers (stream reset, dispatch failure).
    pub status: Option<u16>,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
    /// Set when the host made this answer itself instead of relaying the upstream's (the
    /// request was forwarded and the upstream timed out or could not be reached): the
    /// host's reason, such as Envoy's `upstream_response_timeout`.
    pub host_reply: Option<String>,
}

impl UpstreamAnswer {
    /// The answer as the client's reply: status, headers and body as they came, except the
    /// headers named in `dropped` (left out) and in `remapped` (renamed
    /// `x-amzn-Remapped-<name>`, as API Gateway does); names in lower case. An answer
    /// without a status (none came) is a 502.
    pub fn passed_through(&self, dropped: &[&str], remapped: &[&str]) -> Reply {
        let mut headers = Vec::with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            let lower = k.to_ascii_lowercase();
            if dropped.contains(&lower.as_str()) {
                continue;
            }
            if remapped.contains(&lower.as_str()) {
                headers.push((format!("x-amzn-Remapped-{k}"), v.clone()));
            } else {
                headers.push((k.clone(), v.clone()));
            }
        }
        Reply {
            status: self.status.unwrap_or(502),
            headers,
            body: self.body.clone(),
        }
    }
}
