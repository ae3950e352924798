//! apigw-edge: the Amazon API Gateway (REST API) request pipeline as a library.
//!
//! Everything in this crate except [`filter`] is host-independent: no proxy-wasm calls, no
//! clock reads, no randomness. The host glue in `src/filter/` (feature `proxy`, on by
//! default) reads a request, hands plain values to [`gateway::Gateway`], and carries out the
//! decision it returns. The same core is used by the native CLI to validate deployments and
//! render Envoy configurations, so a configuration error reads the same in both places.

pub mod access_log;
pub mod apikeys;
pub mod arn;
pub mod authorizer;
pub mod aws_service;
pub mod cache;
pub mod client_cert;
pub mod config;
pub mod connection;
pub mod control;
pub mod cors;
pub mod docs;
pub mod error;
pub mod execution_log;
pub mod export;
pub mod gateway;
pub mod gateway_responses;
pub mod http;
pub mod http_integration;
pub mod iam;
pub mod ids;
pub mod jwt;
pub mod lambda;
pub mod mapping;
pub mod method_test;
pub mod mock;
pub mod name_groups;
pub mod openapi;
pub mod query;
pub mod render;
pub mod resource_policy;
pub mod router;
pub mod sdk;
pub mod shared;
pub mod sigv4;
pub mod stage_set;
pub mod stats;
pub mod stream;
pub mod time;
pub mod usage;
pub mod validation;
pub mod vtl;

#[cfg(feature = "proxy")]
mod filter;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
mod native;
