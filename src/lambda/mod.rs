//! Everything about talking to AWS Lambda through the Invoke API.
//!
//! - [`arn`]: integration URIs and function ARNs to invoke targets.
//! - [`event`]: the Lambda proxy event (payload format 1.0) built from a request.
//! - [`invoke`]: the Invoke API call and how its outcome is classified.
//! - [`response`]: the Lambda proxy response contract and its mapping to a client reply.

pub mod arn;
pub mod event;
pub mod invoke;
pub mod response;
