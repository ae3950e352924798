//! The benchmark's floor of the native build's design (row NB): an Envoy dynamic module
//! that does only what any module forwarding a request to Lambda in place must do, with
//! fixed values and no pipeline.
//!
//! - On the request headers: the headers of an Invoke (method, path, authority, content
//!   type, length, and the cluster header the rendered route reads, naming the cluster the
//!   filter's configuration gives), the route cache cleared, and a fixed 1.4 KB payload as
//!   the request's body (the benchmark's request is a `GET`, which has none).
//! - On the answer: held until it is whole, then its headers replaced (status, content
//!   type, length) and its body replaced by a fixed reply.
//!
//! The ABI's types, callback table and empty hooks are the main crate's own
//! (`src/native/abi.rs`, `src/native/idle_hooks.rs`), so the floor makes exactly the calls
//! the product makes.

#![allow(unsafe_code)]
// The hooks' signatures are the ABI's: Envoy's pointers arrive in safe `extern "C"` functions.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{c_char, c_void};

#[path = "../../../src/native/abi.rs"]
#[allow(dead_code)]
mod abi;
#[path = "../../../src/native/idle_hooks.rs"]
mod idle_hooks;

use abi::{Callbacks, ConfigEnvoyPtr, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, ModuleBuffer};

/// A proxy event of the size the pipeline sends for the benchmark's `GET`.
const PAYLOAD: [u8; 1400] = [b' '; 1400];
const REPLY: &[u8] = br#"{"message":"hello from the stand-in"}"#;

/// Sets one header.
fn set(cb: &Callbacks, envoy: FilterEnvoyPtr, kind: u32, name: &str, value: &str) {
    // SAFETY: both buffers are valid during the call; Envoy copies them.
    unsafe {
        (cb.set_header)(
            envoy,
            kind,
            ModuleBuffer::of(name.as_bytes()),
            ModuleBuffer::of(value.as_bytes()),
        );
    }
}

/// Drops a body (what Envoy buffered and what just arrived) and puts `data` in its place.
fn replace_body(cb: &Callbacks, envoy: FilterEnvoyPtr, buffered: u32, received: u32, data: &[u8]) {
    // SAFETY: plain values and a buffer valid during the call (Envoy copies it).
    unsafe {
        (cb.drain_body)(envoy, buffered, usize::MAX);
        (cb.drain_body)(envoy, received, usize::MAX);
        if !(cb.append_body)(envoy, buffered, ModuleBuffer::of(data)) {
            (cb.append_body)(envoy, received, ModuleBuffer::of(data));
        }
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    match abi::init() {
        Ok(()) => abi::ABI_VERSION.as_ptr(),
        Err(_) => std::ptr::null(),
    }
}

/// The configuration: the name of the cluster to send the Invoke to, and the bodies'
/// lengths as `content-length` values (written once).
struct Config {
    cluster: String,
    payload_length: String,
    reply_length: String,
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _envoy: ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy keeps the configuration's bytes valid during this hook.
    let bytes = unsafe { config.bytes() };
    let Ok(cluster) = std::str::from_utf8(bytes) else {
        return std::ptr::null();
    };
    let config = Config {
        cluster: cluster.trim().to_string(),
        payload_length: PAYLOAD.len().to_string(),
        reply_length: REPLY.len().to_string(),
    };
    Box::into_raw(Box::new(config))
        .cast_const()
        .cast::<c_void>()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if !config.is_null() {
        // SAFETY: `config` came from `Box::into_raw` in config_new; Envoy destroys it once,
        // after its last stream.
        drop(unsafe { Box::from_raw(config.cast_mut().cast::<Config>()) });
    }
}

/// The configuration behind a stream's pointer.
///
/// # Safety
/// `module` must be a pointer filter_new returned: the configuration, which Envoy destroys
/// only after its last stream.
unsafe fn config_of<'a>(module: *const c_void) -> Option<&'a Config> {
    // SAFETY: the caller's promise.
    unsafe { module.cast::<Config>().as_ref() }
}

/// A stream's pointer is its configuration's: the floor keeps nothing per stream.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _envoy: FilterEnvoyPtr,
) -> *const c_void {
    config
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_module: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: Envoy passes the pointer filter_new returned.
    let config = unsafe { config_of(module) };
    let (Some(cb), Some(config)) = (abi::callbacks(), config) else {
        return abi::HEADERS_CONTINUE;
    };
    let kind = abi::HEADERS_REQUEST;
    set(cb, envoy, kind, ":method", "POST");
    set(
        cb,
        envoy,
        kind,
        ":path",
        "/2015-03-31/functions/hello/invocations",
    );
    set(cb, envoy, kind, ":authority", "lambda");
    set(cb, envoy, kind, "content-type", "application/json");
    set(cb, envoy, kind, "content-length", &config.payload_length);
    set(cb, envoy, kind, "x-apigw-edge-cluster", &config.cluster);
    // SAFETY: a plain value crosses.
    unsafe { (cb.clear_route_cache)(envoy) };
    replace_body(
        cb,
        envoy,
        abi::BODY_BUFFERED_REQUEST,
        abi::BODY_RECEIVED_REQUEST,
        &PAYLOAD,
    );
    abi::HEADERS_CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::BODY_CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
) -> u32 {
    abi::TRAILERS_CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    if end_of_stream {
        abi::HEADERS_CONTINUE
    } else {
        abi::HEADERS_STOP_ITERATION
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    if !end_of_stream {
        return abi::BODY_STOP_AND_BUFFER;
    }
    // SAFETY: Envoy passes the pointer filter_new returned.
    let config = unsafe { config_of(module) };
    let (Some(cb), Some(config)) = (abi::callbacks(), config) else {
        return abi::BODY_CONTINUE;
    };
    let kind = abi::HEADERS_RESPONSE;
    set(cb, envoy, kind, ":status", "200");
    set(cb, envoy, kind, "content-type", "application/json");
    set(cb, envoy, kind, "content-length", &config.reply_length);
    replace_body(
        cb,
        envoy,
        abi::BODY_BUFFERED_RESPONSE,
        abi::BODY_RECEIVED_RESPONSE,
        REPLY,
    );
    abi::BODY_CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
) -> u32 {
    abi::TRAILERS_CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _chunks: *const EnvoyBuffer,
    _chunks_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _envoy: ConfigEnvoyPtr,
    _config: *const c_void,
    _event: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _envoy: ConfigEnvoyPtr,
    _config: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _chunks: *const EnvoyBuffer,
    _chunks_size: usize,
) {
}
