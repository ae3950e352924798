//! Everything about talking to AWS Lambda through the Invoke API.
//!
//! - [`arn`]: integration URIs and function ARNs to invoke targets.
//! - [`event`]: the Lambda proxy event (payload format 1.0) built from a request.
//! - [`event_json`]: the proxy event's JSON bytes, written directly.
//! - [`function_url`]: function URL targets (forwarding) and the payload 2.0 event.
//! - [`invoke`]: the Invoke API call and how its outcome is classified.
//! - [`response`]: the Lambda proxy response contract and its mapping to a client reply.
//! - [`upstream`]: the endpoints and function URLs a deployment calls, and who signs.

pub mod arn;
pub mod event;
pub mod event_json;
pub mod function_url;
pub mod invoke;
pub mod response;
pub mod upstream;
