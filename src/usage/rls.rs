//! The messages of Envoy's rate-limit service protocol
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`), in protobuf's wire
//! format.
//!
//! Owns: encoding a `RateLimitRequest` (domain, descriptors of key/value entries) and
//! reading the parts of a `RateLimitResponse` the gateway acts on (the overall code and
//! each descriptor's code). Only the fields used are written; unknown fields of an answer
//! are skipped. Reading is linear in the answer and never panics on a malformed one. Must
//! not: decide what an answer means (see [`super::fleet`]) or make the call.

/// The gRPC service and method the glue calls.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";

/// Largest answer read; the gateway needs a few bytes of it.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The `GrpcService` message naming an Envoy cluster (`envoy_grpc.cluster_name`), which is
/// how a proxy-wasm host is told where a gRPC call goes. Cluster names are short ASCII, so
/// the bytes are text.
pub fn grpc_service(cluster: &str) -> String {
    let mut inner = Vec::with_capacity(cluster.len() + 2);
    bytes_field(&mut inner, 1, cluster.as_bytes());
    let mut out = Vec::with_capacity(inner.len() + 2);
    bytes_field(&mut out, 1, &inner);
    String::from_utf8(out).unwrap_or_else(|_| cluster.to_string())
}

/// `RateLimitResponse.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unknown,
    Ok,
    OverLimit,
}

impl Code {
    fn of(v: u64) -> Code {
        match v {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }
}

/// What the gateway reads of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub overall: Code,
    /// Each descriptor's code, in the request's order, when the service reports them
    /// (Envoy's reference service does; Limitador answers with the overall code only).
    pub statuses: Vec<Code>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Encodes a request of `hits` for `descriptors`, each a list of (key, value) entries.
pub fn encode_request(domain: &str, descriptors: &[Vec<(&str, &str)>], hits: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + descriptors.len() * 64);
    bytes_field(&mut out, 1, domain.as_bytes());
    for d in descriptors {
        let mut desc = Vec::with_capacity(d.len() * 24);
        for (k, v) in d {
            let mut entry = Vec::with_capacity(k.len() + v.len() + 4);
            bytes_field(&mut entry, 1, k.as_bytes());
            bytes_field(&mut entry, 2, v.as_bytes());
            bytes_field(&mut desc, 1, &entry);
        }
        bytes_field(&mut out, 2, &desc);
    }
    if hits != 1 {
        varint(&mut out, 3 << 3);
        varint(&mut out, u64::from(hits));
    }
    out
}

/// A protobuf field: its number and value.
enum Field<'a> {
    Varint(u64, u64),
    Bytes(u64, &'a [u8]),
    Other,
}

/// Reads protobuf fields one by one.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.rest.split_first()?;
            self.rest = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Some(a)
    }

    /// The next field; `None` at the end, `Some(Err)` on malformed input.
    fn next_field(&mut self) -> Option<Result<Field<'a>, ()>> {
        if self.rest.is_empty() {
            return None;
        }
        Some(self.field().ok_or(()))
    }

    fn field(&mut self) -> Option<Field<'a>> {
        let tag = self.varint()?;
        let number = tag >> 3;
        Some(match tag & 7 {
            0 => Field::Varint(number, self.varint()?),
            1 => {
                self.take(8)?;
                Field::Other
            }
            2 => {
                let n = usize::try_from(self.varint()?).ok()?;
                Field::Bytes(number, self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Other
            }
            _ => return None,
        })
    }
}

/// A `RateLimitResponse` saying OK (for runs that do not ask the service).
pub fn ok_response() -> Vec<u8> {
    vec![0x08, 1]
}

/// Reads an answer; `None` when it is not a well-formed message.
pub fn decode_response(bytes: &[u8]) -> Option<Answer> {
    let mut answer = Answer {
        overall: Code::Unknown,
        statuses: Vec::new(),
    };
    let mut r = Reader { rest: bytes };
    while let Some(field) = r.next_field() {
        match field.ok()? {
            Field::Varint(1, code) => answer.overall = Code::of(code),
            Field::Bytes(2, status) => {
                let mut code = Code::Unknown;
                let mut s = Reader { rest: status };
                while let Some(f) = s.next_field() {
                    if let Field::Varint(1, c) = f.ok()? {
                        code = Code::of(c);
                    }
                }
                answer.statuses.push(code);
            }
            _ => {}
        }
    }
    Some(answer)
}

/// A unary gRPC call's request as HTTP/2 (for hosts without a gRPC client): its headers
/// to `cluster` and its body, the message behind gRPC's 5-byte length prefix.
pub fn grpc_http_request(cluster: &str, message: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let headers = [
        (":method", "POST".to_string()),
        (":path", format!("/{SERVICE}/{METHOD}")),
        (":authority", cluster.to_string()),
        ("content-type", "application/grpc".to_string()),
        ("te", "trailers".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut body = Vec::with_capacity(message.len() + 5);
    body.push(0);
    body.extend_from_slice(&len.to_be_bytes());
    body.extend_from_slice(message);
    (headers, body)
}

/// The message of a unary gRPC answer received as HTTP: `Err` with why there is none (an
/// HTTP status other than 200, a `grpc-status` other than 0 in the headers, a compressed or
/// cut message). A missing message is an empty one.
pub fn grpc_http_answer(
    status: Option<u16>,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<u8>, String> {
    if status != Some(200) {
        return Err(format!("HTTP status {status:?}"));
    }
    let grpc = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("grpc-status"))
        .map(|(_, v)| v.as_str());
    if let Some(code) = grpc.filter(|c| *c != "0") {
        return Err(format!("gRPC status {code}"));
    }
    let Some((head, rest)) = body.split_first_chunk::<5>() else {
        return if body.is_empty() {
            Ok(Vec::new())
        } else {
            Err("a cut gRPC frame".into())
        };
    };
    let [flag, len @ ..] = *head;
    if flag != 0 {
        return Err("a compressed gRPC message".into());
    }
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    match rest.get(..len) {
        Some(message) if len <= MAX_RESPONSE_BYTES => Ok(message.to_vec()),
        Some(_) => Err("a gRPC message over the size limit".into()),
        None => Err("a cut gRPC message".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_travel_framed_over_http() {
        let (headers, body) = grpc_http_request("apigw_ratelimit", b"abc");
        assert_eq!(
            headers[1],
            (":path".to_string(), format!("/{SERVICE}/{METHOD}"))
        );
        assert_eq!(body, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let ok = |h: &[(&str, &str)], b: &[u8]| {
            let h: Vec<(String, String)> = h
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            grpc_http_answer(Some(200), &h, b)
        };
        assert_eq!(ok(&[], &body), Ok(b"abc".to_vec()));
        assert_eq!(ok(&[("grpc-status", "0")], &[]), Ok(Vec::new()));
        assert_eq!(
            ok(&[("grpc-status", "14")], &[]),
            Err("gRPC status 14".into())
        );
        assert_eq!(ok(&[], &body[..6]), Err("a cut gRPC message".into()));
        assert_eq!(ok(&[], &body[..3]), Err("a cut gRPC frame".into()));
        assert_eq!(
            ok(&[], &[1, 0, 0, 0, 0]),
            Err("a compressed gRPC message".into())
        );
        assert_eq!(
            grpc_http_answer(Some(503), &[], &body),
            Err("HTTP status Some(503)".into())
        );
    }

    #[test]
    fn grpc_service_names_the_cluster() {
        assert_eq!(
            grpc_service("rl").as_bytes(),
            [0x0a, 4, 0x0a, 2, b'r', b'l']
        );
    }

    #[test]
    fn request_bytes_are_protobuf() {
        let bytes = encode_request("d", &[vec![("k", "v")]], 1);
        // domain "d"; descriptor { entry { key "k", value "v" } }
        assert_eq!(
            bytes,
            [0x0a, 1, b'd', 0x12, 8, 0x0a, 6, 0x0a, 1, b'k', 0x12, 1, b'v']
        );
        let with_hits = encode_request("d", &[], 300);
        assert_eq!(with_hits, [0x0a, 1, b'd', 0x18, 0xac, 0x02]);
    }

    #[test]
    fn answers_are_read_and_malformed_ones_refused() {
        for (bytes, want) in [
            (
                vec![0x08, 1],
                Some(Answer {
                    overall: Code::Ok,
                    statuses: vec![],
                }),
            ),
            (
                // OVER_LIMIT; statuses OK and OVER_LIMIT (with a current_limit to skip);
                // an unknown fixed32 field.
                vec![
                    0x08, 2, 0x12, 2, 0x08, 1, 0x12, 6, 0x08, 2, 0x12, 2, 0x08, 5, 0x3d, 1, 2, 3, 4,
                ],
                Some(Answer {
                    overall: Code::OverLimit,
                    statuses: vec![Code::Ok, Code::OverLimit],
                }),
            ),
            (
                vec![],
                Some(Answer {
                    overall: Code::Unknown,
                    statuses: vec![],
                }),
            ),
            (vec![0x08], None),
            (vec![0x12, 9, 1], None),
            (vec![0x0f], None),
            (vec![0xff; 20], None),
        ] {
            assert_eq!(decode_response(&bytes), want, "{bytes:?}");
        }
    }
}
