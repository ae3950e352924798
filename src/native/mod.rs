//! Envoy dynamic-module glue: the same pipeline as `src/filter/`, built as a native shared
//! library (`libapigw_edge.so`) Envoy loads with `envoy.filters.http.dynamic_modules`.
//!
//! Owns: the module's exported hooks (`envoy_dynamic_module_on_*`), Envoy's callbacks
//! ([`abi`]), and carrying out what the core's [`crate::stream::Stream`] asks for. Must not:
//! make API Gateway decisions (every rule lives in the core, as for the wasm build).
//!
//! Differences from the wasm glue, all in how, never in what: one compiled configuration
//! per worker thread (the core's per-request types are single-threaded, as in a wasm VM);
//! the counters every worker shares live in one locked map in the process
//! ([`crate::shared::locked`]) instead of the host's shared data; a call to the rate-limit
//! service is a gRPC message in an HTTP/2 callout. A panic in a hook is caught: the request
//! gets a 500 and the worker goes on.

#![allow(unsafe_code)]

mod abi;
mod config;
mod filter;
mod hooks;
mod idle_hooks;
mod keys;
mod log;
