//! proxy-wasm glue: the only code that talks to the host.
//!
//! Owns: reading the request from Envoy into core types, generating request ids, carrying
//! out what [`crate::gateway::Gateway`] decides (local reply, wait for body, dispatch the
//! Invoke call), metrics and logging. Must not: make API Gateway decisions; every rule lives
//! in the core. Host calls go through `proxy_wasm::hostcalls` so that a host error becomes a
//! handled `Err`, never a panic (a panic would kill this worker's VM).

mod cells;
mod control;
mod host;
mod http;
mod metrics;
mod root;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // A panic aborts this VM (panic = "abort"); say why before it goes. Envoy reloads the VM
    // (the rendered `failure_policy: FAIL_RELOAD`), and the next request is served by the
    // fresh one.
    std::panic::set_hook(Box::new(|info| {
        log::error!("apigw-edge: the filter VM is aborting: {info}");
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::Root::default())
    });
}}
