//! Query strings and percent-decoding as API Gateway REST APIs apply them.
//!
//! Owns: splitting a raw query into ordered (name, value) pairs, decoding `%XX` and `+` as
//! space. Must not: decode the path (API Gateway keeps path encoding verbatim).

/// Decodes `%XX` escapes and, when `plus_as_space`, `+` as a space. Invalid escapes are kept
/// as written; invalid UTF-8 after decoding is replaced rather than dropped.
pub fn percent_decode(input: &str, plus_as_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' if plus_as_space => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|s| u8::from_str_radix(s, 16).ok())
                });
                if let Some(v) = hex {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Percent-encodes everything outside the RFC 3986 unreserved set.
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits a raw query string (without `?`) into decoded pairs, in order. A name without `=`
/// gets an empty value; empty names are skipped.
pub fn parse(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|part| !part.is_empty())
        .filter_map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = percent_decode(k, true);
            (!k.is_empty()).then(|| (k, percent_decode(v, true)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_table() {
        for (raw, want) in [
            ("test%2Balias@gmail.com", "test+alias@gmail.com"),
            ("test+alias@gmail.com", "test alias@gmail.com"),
            ("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00 00:00"),
            ("%zz", "%zz"),
            ("%", "%"),
            ("caf%C3%A9", "café"),
            ("%FF", "\u{FFFD}"),
        ] {
            assert_eq!(percent_decode(raw, true), want, "{raw}");
        }
        assert_eq!(percent_decode("a+b", false), "a+b");
    }

    #[test]
    fn parse_keeps_order_and_repeats() {
        assert_eq!(
            parse("category=electronics&category=books&flag&=x&&a=1=2"),
            vec![
                ("category".to_string(), "electronics".to_string()),
                ("category".to_string(), "books".to_string()),
                ("flag".to_string(), String::new()),
                ("a".to_string(), "1=2".to_string()),
            ]
        );
    }

    #[test]
    fn encode_round_trip() {
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
        assert_eq!(percent_decode(&percent_encode("ä ?&="), false), "ä ?&=");
    }
}
