//! The hooks Envoy calls (`envoy_dynamic_module_on_*`), each a thin wrapper: it finds the
//! module's object behind Envoy's pointer and hands the event over. A panic inside is
//! caught and logged (a stream that panicked gets a 500) instead of unwinding into Envoy.
//! Hooks the module has no use for are exported empty from [`super::idle_hooks`].

use std::cell::{Cell, RefCell, UnsafeCell};
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::abi::{self, ConfigEnvoyPtr, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, ModuleBuffer};
use super::config::NativeConfig;
use super::filter::{callout_answer, NativeFilter};
use crate::stream::Flow;

/// Runs `f`, turning a panic into `fallback` (and a log line).
fn guarded<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            log::error!("apigw-edge: a panic in {what} was caught; the stream is answered 500");
            fallback
        }
    }
}

/// What the module keeps behind Envoy's pointer for one stream. Envoy may call a hook
/// while another of the same stream runs (a callout that fails at once answers inside the
/// call that made it): such an answer waits in `deferred` until the running hook is done,
/// so the stream is never entered twice.
pub struct Slot {
    busy: Cell<bool>,
    deferred: RefCell<Vec<Answer>>,
    filter: UnsafeCell<NativeFilter>,
}

/// A callout's answer, copied.
struct Answer {
    id: u64,
    success: bool,
    headers: Vec<crate::http::Header>,
    body: Vec<u8>,
}

/// The slot behind `module`.
///
/// # Safety
/// `module` must be a pointer [`envoy_dynamic_module_on_http_filter_new`] returned and
/// Envoy has not destroyed yet; Envoy calls a stream's hooks on one thread.
unsafe fn slot<'a>(module: *const c_void) -> Option<&'a Slot> {
    // SAFETY: the caller's promise.
    unsafe { module.cast::<Slot>().as_ref() }
}

/// Answers 500 after a panic (the stream's state is not trusted any more).
fn internal_error(envoy: FilterEnvoyPtr) {
    let Some(cb) = abi::callbacks() else { return };
    let body = br#"{"message": "Internal server error"}"#;
    let mut header = abi::ModuleHeader::of("content-type", "application/json");
    // SAFETY: the buffers are valid during the call; Envoy copies them.
    unsafe {
        (cb.send_response)(
            envoy,
            500,
            &mut header,
            1,
            ModuleBuffer::of(body),
            ModuleBuffer::of(b"apigw_edge_panic"),
        )
    };
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    super::log::install();
    match abi::init() {
        Ok(()) => abi::ABI_VERSION.as_ptr(),
        Err(missing) => {
            // Envoy's logger is one of the callbacks; standard error always works.
            eprintln!(
                "apigw-edge: this Envoy lacks the dynamic-module callback `{missing}`; the native module is built for Envoy {} (ABI {})",
                abi::ENVOY_VERSION,
                abi::ABI_VERSION.to_string_lossy()
            );
            std::ptr::null()
        }
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guarded("loading the configuration", std::ptr::null(), || {
        // SAFETY: Envoy keeps the configuration's bytes valid during this hook.
        let bytes = unsafe { config.bytes() };
        match NativeConfig::load(envoy, bytes) {
            Some(cfg) => Arc::into_raw(Arc::new(cfg)).cast::<c_void>(),
            None => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if config.is_null() {
        return;
    }
    // SAFETY: `config` came from `Arc::into_raw` in config_new; Envoy destroys it once.
    drop(unsafe { Arc::from_raw(config.cast::<NativeConfig>()) });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    envoy: FilterEnvoyPtr,
) -> *const c_void {
    guarded("creating a stream", std::ptr::null(), || {
        let config = config.cast::<NativeConfig>();
        if config.is_null() {
            return std::ptr::null();
        }
        // SAFETY: `config` came from `Arc::into_raw` and lives until config_destroy, which
        // Envoy calls after its last stream; this stream takes its own reference.
        let cfg = unsafe {
            Arc::increment_strong_count(config);
            Arc::from_raw(config)
        };
        match NativeFilter::new(cfg, envoy) {
            Some(f) => Box::into_raw(Box::new(Slot {
                busy: Cell::new(false),
                deferred: RefCell::new(Vec::new()),
                filter: UnsafeCell::new(f),
            }))
            .cast_const()
            .cast::<c_void>(),
            None => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *const c_void) {
    if module.is_null() {
        return;
    }
    // SAFETY: `module` came from `Box::into_raw` in filter_new; Envoy destroys it once.
    let slot = unsafe { Box::from_raw(module.cast_mut().cast::<Slot>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(slot)));
}

/// Runs a stream hook: `f` on the stream, then any answer that came in the meantime, then
/// the actions the stream left for after (its reply, letting the request go on), once the
/// stream is no longer borrowed. A panic gives the client a 500 and Envoy `on_panic`.
fn stream_hook(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    what: &str,
    on_panic: u32,
    f: impl FnOnce(&mut NativeFilter) -> u32,
) -> u32 {
    // SAFETY: Envoy passes the pointer filter_new returned, on the stream's thread.
    let Some(slot) = (unsafe { slot(module) }) else {
        return 0;
    };
    if slot.busy.replace(true) {
        log::error!("apigw-edge: {what} arrived while the stream was busy; ignored");
        return on_panic;
    }
    let ran = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `busy` makes this the only borrow of the stream; it ends in this closure.
        let filter = unsafe { &mut *slot.filter.get() };
        let status = f(filter);
        loop {
            let next = slot.deferred.borrow_mut().pop();
            let Some(a) = next else { break };
            filter.callout_done(a.id, a.success, a.headers, a.body);
        }
        (status, filter.take_actions())
    }));
    slot.busy.set(false);
    match ran {
        Ok((status, actions)) => {
            actions.run(envoy);
            status
        }
        Err(_) => {
            log::error!("apigw-edge: a panic in {what} was caught; the stream is answered 500");
            internal_error(envoy);
            on_panic
        }
    }
}

fn headers_status(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => abi::HEADERS_CONTINUE,
        Flow::Pause => abi::HEADERS_STOP_ITERATION,
    }
}

fn body_status(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => abi::BODY_CONTINUE,
        Flow::Pause => abi::BODY_STOP_AND_BUFFER,
    }
}

fn trailers_status(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => abi::TRAILERS_CONTINUE,
        Flow::Pause => abi::TRAILERS_STOP,
    }
}

/// The stream's body size so far: what Envoy buffered and what just arrived.
fn body_size(envoy: FilterEnvoyPtr, buffered: u32, received: u32) -> usize {
    let Some(cb) = abi::callbacks() else { return 0 };
    // SAFETY: plain values cross.
    unsafe {
        (cb.get_body_size)(envoy, buffered).saturating_add((cb.get_body_size)(envoy, received))
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    stream_hook(
        envoy,
        module,
        "the request headers",
        abi::HEADERS_STOP_ITERATION,
        |f| headers_status(f.request_headers(end_of_stream)),
    )
}

/// A body hook: the stream's step for the body held so far (`buffered` and `received`
/// are the body kinds of the request or the response).
fn body_hook(
    (envoy, module): (FilterEnvoyPtr, *const c_void),
    what: &str,
    (buffered, received): (u32, u32),
    on_panic: u32,
    step: impl FnOnce(&mut crate::stream::Stream<super::filter::NativeHost>, usize) -> Flow,
) -> u32 {
    stream_hook(envoy, module, what, on_panic, |f| {
        let Some(s) = f.stream() else {
            return abi::BODY_CONTINUE;
        };
        body_status(step(s, body_size(envoy, buffered, received)))
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    body_hook(
        (envoy, module),
        "the request body",
        (abi::BODY_BUFFERED_REQUEST, abi::BODY_RECEIVED_REQUEST),
        abi::BODY_STOP_AND_BUFFER,
        |s, size| s.on_request_body(size, end_of_stream),
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
) -> u32 {
    stream_hook(
        envoy,
        module,
        "the request trailers",
        abi::TRAILERS_STOP,
        |f| {
            f.stream().map_or(abi::TRAILERS_CONTINUE, |s| {
                trailers_status(s.on_request_trailers())
            })
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    stream_hook(
        envoy,
        module,
        "the response headers",
        abi::HEADERS_CONTINUE,
        |f| {
            f.stream().map_or(abi::HEADERS_CONTINUE, |s| {
                headers_status(s.on_response_headers(end_of_stream))
            })
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    body_hook(
        (envoy, module),
        "the response body",
        (abi::BODY_BUFFERED_RESPONSE, abi::BODY_RECEIVED_RESPONSE),
        abi::BODY_CONTINUE,
        |s, size| s.on_response_body(size, end_of_stream),
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
) -> u32 {
    stream_hook(
        envoy,
        module,
        "the response trailers",
        abi::TRAILERS_CONTINUE,
        |f| {
            f.stream().map_or(abi::TRAILERS_CONTINUE, |s| {
                trailers_status(s.on_response_trailers())
            })
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) {
    // SAFETY: Envoy keeps the answer valid during this hook, for the counts it gives.
    let (headers, body) = unsafe { callout_answer(headers, headers_size, chunks, chunks_size) };
    let answer = Answer {
        id: callout_id,
        success: result == abi::CALLOUT_SUCCESS,
        headers,
        body,
    };
    // SAFETY: Envoy passes the pointer filter_new returned, on the stream's thread.
    if let Some(slot) = unsafe { slot(module) } {
        if slot.busy.get() {
            // Answered inside the hook that made the call: handed over when it is done.
            slot.deferred.borrow_mut().push(answer);
            return;
        }
    }
    stream_hook(envoy, module, "a call's answer", 0, move |f| {
        f.callout_done(answer.id, answer.success, answer.headers, answer.body);
        0
    });
}

/// The configuration behind `config`.
///
/// # Safety
/// `config` must be a pointer config_new returned that Envoy has not destroyed yet.
unsafe fn config<'a>(config: *const c_void) -> Option<&'a NativeConfig> {
    // SAFETY: the caller's promise.
    unsafe { config.cast::<NativeConfig>().as_ref() }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    envoy: ConfigEnvoyPtr,
    cfg: *const c_void,
    _event: u64,
) {
    guarded("the key set refresh", (), || {
        // SAFETY: Envoy passes the pointer config_new returned, on the main thread.
        if let Some(cfg) = unsafe { config(cfg) } {
            if let Some(keys) = &cfg.keys {
                keys.tick(envoy, cfg);
            }
        }
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    envoy: ConfigEnvoyPtr,
    cfg: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) {
    guarded("a key set's answer", (), || {
        // SAFETY: Envoy passes the pointer config_new returned, on the main thread.
        let Some(cfg) = (unsafe { config(cfg) }) else {
            return;
        };
        let Some(keys) = &cfg.keys else { return };
        // SAFETY: Envoy keeps the answer valid during this hook, for the counts it gives.
        let (headers, body) = unsafe { callout_answer(headers, headers_size, chunks, chunks_size) };
        let status = (result == abi::CALLOUT_SUCCESS)
            .then(|| crate::stream::answer_head(headers).0)
            .flatten();
        keys.fetched(envoy, cfg, callout_id, status, &body);
    });
}
