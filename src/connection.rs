//! What the host knows of a request's connection: the protocol, the caller's address and the
//! local port.
//!
//! Owns: [`Connection`], the header Envoy writes them into before the gateway sees the
//! request ([`HEADER`], filled with [`ENVOY_FORMAT`] by the connection manager's early header
//! mutation, or by a `header_mutation` filter in front behind trusted proxies, in rendered
//! configurations), and reading Envoy's address text. Reading them from that header costs
//! nothing beyond the header map the filter reads anyway, where asking the host for three
//! properties costs three host calls per request.
//! Must not: call the host (the glue reads properties when the header is not trusted), or
//! trust the header unless the deployment says Envoy overwrites it.

use crate::http::Header;

/// The header carrying a request's connection facts.
pub const HEADER: &str = "x-apigw-edge-connection";

/// Envoy's substitution format for [`HEADER`]'s value: protocol, peer address, local port.
pub const ENVOY_FORMAT: &str = "%PROTOCOL% %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_PORT%";

/// A request's connection facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `HTTP/1.1`, `HTTP/2`, ... as Envoy names it.
    pub protocol: String,
    /// The caller's IP address, without a port.
    pub source_ip: String,
    /// The port the request arrived on.
    pub local_port: Option<u16>,
}

impl Connection {
    /// Reads [`HEADER`]'s value (`HTTP/1.1 1.2.3.4:5678 8080`); `None` when it is not
    /// three words with a protocol and an address.
    pub fn parse(value: &str) -> Option<Connection> {
        let mut words = value.split(' ');
        let (protocol, address, port) = (words.next()?, words.next()?, words.next()?);
        if words.next().is_some() || !protocol.starts_with("HTTP/") || address.is_empty() {
            return None;
        }
        Some(Connection {
            protocol: protocol.to_string(),
            source_ip: ip_of(address),
            local_port: port.parse().ok(),
        })
    }

    /// Removes every [`HEADER`] from `headers` (none of them reaches an integration) and
    /// reads the first.
    pub fn take(headers: &mut Vec<Header>) -> Option<Connection> {
        let mut first = None;
        headers.retain(|(name, value)| {
            if !name.eq_ignore_ascii_case(HEADER) {
                return true;
            }
            if first.is_none() {
                first = Some(Connection::parse(value));
            }
            false
        });
        first.flatten()
    }
}

/// The IP part of an Envoy address (`1.2.3.4:5678`, `[::1]:5678`, or an address without a
/// port).
pub fn ip_of(address: &str) -> String {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            ip.to_string()
        }
        _ => address.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_header_values() {
        let conn = |p: &str, ip: &str, port: Option<u16>| {
            Some(Connection {
                protocol: p.into(),
                source_ip: ip.into(),
                local_port: port,
            })
        };
        let table = [
            (
                "HTTP/1.1 127.0.0.1:57346 8080",
                conn("HTTP/1.1", "127.0.0.1", Some(8080)),
            ),
            ("HTTP/2 [::1]:443 443", conn("HTTP/2", "::1", Some(443))),
            ("HTTP/3 10.0.0.1:9 -", conn("HTTP/3", "10.0.0.1", None)),
            (
                "HTTP/1.1 10.0.0.1 80",
                conn("HTTP/1.1", "10.0.0.1", Some(80)),
            ),
            ("- 10.0.0.1:9 80", None),
            ("HTTP/1.1  80", None),
            ("HTTP/1.1 10.0.0.1:9", None),
            ("HTTP/1.1 10.0.0.1:9 80 extra", None),
            ("", None),
        ];
        for (value, want) in table {
            assert_eq!(Connection::parse(value), want, "{value:?}");
        }
    }

    #[test]
    fn taking_the_header_removes_every_copy_and_reads_the_first() {
        let mut headers: Vec<Header> = vec![
            (":path".into(), "/".into()),
            (HEADER.into(), "HTTP/2 1.2.3.4:5 80".into()),
            ("accept".into(), "*/*".into()),
            (
                "X-Apigw-Edge-Connection".into(),
                "HTTP/1.1 9.9.9.9:9 81".into(),
            ),
        ];
        let got = Connection::take(&mut headers);
        assert_eq!(got.map(|c| c.source_ip), Some("1.2.3.4".to_string()));
        assert_eq!(headers.len(), 2);
        let mut none: Vec<Header> = vec![("accept".into(), "*/*".into())];
        assert_eq!(Connection::take(&mut none), None);
        assert_eq!(none.len(), 1);
    }

    #[test]
    fn ips_of_envoy_addresses() {
        for (address, ip) in [
            ("1.2.3.4:5678", "1.2.3.4"),
            ("[::1]:5678", "::1"),
            ("[2001:db8::1]:80", "2001:db8::1"),
            ("1.2.3.4", "1.2.3.4"),
            ("::1", "::1"),
        ] {
            assert_eq!(ip_of(address), ip, "{address}");
        }
    }
}
