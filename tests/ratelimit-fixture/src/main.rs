//! A rate-limit service for the end-to-end tests: Envoy's
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over plain HTTP/2, on the
//! Limitador engine with Redis storage. Counting and storage are Limitador's: the limits
//! file is Limitador's format, each request's descriptors become its `descriptors` list
//! (as Limitador's own server binds them), and the answer is the engine's verdict. Checks
//! run one at a time, so two gateways calling at once cannot both take the last request.
//!
//! Usage: apigw-edge-ratelimit-fixture LISTEN_ADDR REDIS_URL LIMITS_FILE [DELAY_MS]
//! (DELAY_MS: answer every check that late, to stand for a slow service).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use limitador::limit::{Context, Limit};
use limitador::storage::redis::RedisStorage;
use limitador::RateLimiter;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct RateLimitRequest {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(message, repeated, tag = "2")]
    descriptors: Vec<Descriptor>,
    #[prost(uint32, tag = "3")]
    hits_addend: u32,
}

#[derive(Clone, PartialEq, Message)]
struct Descriptor {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<Entry>,
}

#[derive(Clone, PartialEq, Message)]
struct Entry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct RateLimitResponse {
    #[prost(int32, tag = "1")]
    overall_code: i32,
}

const OK: i32 = 1;
const OVER_LIMIT: i32 = 2;
const PATH: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// The engine's verdict on one request: `Ok(code)` or a gRPC error status.
fn check(limiter: &Mutex<RateLimiter>, req: &RateLimitRequest) -> Result<i32, u32> {
    let values: Vec<HashMap<String, String>> = req
        .descriptors
        .iter()
        .map(|d| {
            d.entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect()
        })
        .collect();
    let mut ctx = Context::default();
    ctx.list_binding("descriptors".to_string(), values);
    let hits = u64::from(req.hits_addend.max(1));
    // The engine panics on a condition it cannot evaluate (a descriptor the request does
    // not have); the lock stays usable for the next request.
    let limiter = limiter
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match limiter.check_rate_limited_and_update(&req.domain.clone().into(), &ctx, hits) {
        Ok(r) if r.limited => Ok(OVER_LIMIT),
        Ok(_) => Ok(OK),
        Err(e) => {
            eprintln!("ratelimit fixture: {e}");
            Err(14)
        }
    }
}

async fn serve(
    limiter: Arc<Mutex<RateLimiter>>,
    delay: std::time::Duration,
    mut request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let body = request.body_mut();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let parsed = bytes
        .get(5..)
        .filter(|_| request.uri().path() == PATH)
        .and_then(|m| RateLimitRequest::decode(m).ok());
    let verdict = match parsed {
        None => Err(12),
        // 13 (INTERNAL) when the engine panicked on the request.
        Some(req) => tokio::task::spawn_blocking(move || check(&limiter, &req))
            .await
            .unwrap_or(Err(13)),
    };
    tokio::time::sleep(delay).await;
    let head = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap_or_default();
    match verdict {
        Ok(code) => {
            let message = RateLimitResponse { overall_code: code }.encode_to_vec();
            let mut frame = Vec::with_capacity(message.len() + 5);
            frame.push(0);
            frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
            frame.extend_from_slice(&message);
            let mut stream = respond.send_response(head, false)?;
            stream.send_data(Bytes::from(frame), false)?;
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            stream.send_trailers(trailers)?;
        }
        Err(status) => {
            let mut head = head;
            if let Ok(v) = http::HeaderValue::from_str(&status.to_string()) {
                head.headers_mut().insert("grpc-status", v);
            }
            respond.send_response(head, true)?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, redis, limits, delay_ms) = match args.as_slice() {
        [l, r, f] => (l, r, f, 0),
        [l, r, f, d] => (l, r, f, d.parse().unwrap_or(0)),
        _ => {
            eprintln!(
                "usage: apigw-edge-ratelimit-fixture LISTEN_ADDR REDIS_URL LIMITS_FILE [DELAY_MS]"
            );
            std::process::exit(2);
        }
    };
    let delay = std::time::Duration::from_millis(delay_ms);
    let text = std::fs::read_to_string(limits).expect("limits file");
    let limits: Vec<Limit> = serde_yaml::from_str(&text).expect("Limitador limits");
    let storage = RedisStorage::new(redis).expect("Redis storage");
    let limiter = RateLimiter::new_with_storage(Box::new(storage));
    for l in limits {
        limiter.add_limit(l);
    }
    let limiter = Arc::new(Mutex::new(limiter));
    let listener = tokio::net::TcpListener::bind(listen).await.expect("listen");
    eprintln!("ratelimit fixture: serving on {listen}");
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let Ok(mut conn) = h2::server::handshake(socket).await else {
                return;
            };
            while let Some(Ok((request, respond))) = conn.accept().await {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(limiter, delay, request, respond).await {
                        eprintln!("ratelimit fixture: {e}");
                    }
                });
            }
        });
    }
}
