//! Plain HTTP values that cross the boundary between the host glue and the core.
//!
//! Owns: header lists (ordered, duplicates kept, names compared case-insensitively), the
//! reply type every pipeline stage returns, and header-name canonicalisation. Must not: touch
//! the host or allocate per lookup.

/// One header as the host reports it. Envoy hands names over lower-cased.
pub type Header = (String, String);

/// First value of `name` (case-insensitive).
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Canonical `Title-Case` form of a header name (`content-type` -> `Content-Type`).
///
/// Envoy's HTTP/1 codec lower-cases names before a filter sees them, so the client's own
/// casing cannot be recovered; HTTP/1.1 clients overwhelmingly send this form.
pub fn title_case(name: &str) -> String {
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
    fn title_case_table() {
        for (input, want) in [
            ("content-type", "Content-Type"),
            ("x-amzn-trace-id", "X-Amzn-Trace-Id"),
            ("accept", "Accept"),
            ("X-API-KEY", "X-Api-Key"),
            ("", ""),
        ] {
            assert_eq!(title_case(input), want, "{input}");
        }
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
