//! The part of Envoy's dynamic-module ABI (`source/extensions/dynamic_modules/abi/abi.h`,
//! ABI v0.2.0 in Envoy 1.40) this module uses: the types it passes, and the callbacks Envoy
//! implements, looked up by name when the module loads.
//!
//! Owns: the C layouts and a table of the callbacks' addresses. Must not: hold any logic.
//! A callback the running Envoy lacks fails the load with its name ([`Callbacks::resolve`]),
//! instead of a crash at the first call.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr};
use std::sync::OnceLock;

/// The ABI version this module is written against (Envoy 1.40's).
pub const ABI_VERSION: &CStr = c"v0.2.0";
/// The Envoy release the rendered configurations and the tests pin.
pub const ENVOY_VERSION: &str = "1.40";

/// Bytes Envoy owns, valid during the callback that handed them over.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes (empty for a null buffer).
    ///
    /// # Safety
    /// `ptr` must be valid for `length` bytes for the lifetime the caller picks (Envoy's
    /// guarantee: until the end of the current callback).
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.length == 0 {
            return &[];
        }
        // SAFETY: the caller's promise above.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) }
    }
}

/// Bytes the module owns, lent to Envoy for one call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> Self {
        ModuleBuffer {
            ptr: bytes.as_ptr().cast::<c_char>(),
            length: bytes.len(),
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl ModuleHeader {
    pub fn of(key: &str, value: &str) -> Self {
        ModuleHeader {
            key_ptr: key.as_ptr().cast::<c_char>(),
            key_length: key.len(),
            value_ptr: value.as_ptr().cast::<c_char>(),
            value_length: value.len(),
        }
    }
}

pub type FilterEnvoyPtr = *mut c_void;
pub type ConfigEnvoyPtr = *mut c_void;

// C enums, as the `int` they are passed as.
pub const HEADERS_REQUEST: u32 = 0;
pub const HEADERS_RESPONSE: u32 = 2;
pub const BODY_RECEIVED_REQUEST: u32 = 0;
pub const BODY_BUFFERED_REQUEST: u32 = 1;
pub const BODY_RECEIVED_RESPONSE: u32 = 2;
pub const BODY_BUFFERED_RESPONSE: u32 = 3;
pub const LOG_TRACE: u32 = 0;
pub const LOG_DEBUG: u32 = 1;
pub const LOG_INFO: u32 = 2;
pub const LOG_WARN: u32 = 3;
pub const LOG_ERROR: u32 = 4;
pub const CALLOUT_INIT_SUCCESS: u32 = 0;
pub const CALLOUT_SUCCESS: u32 = 0;
pub const METRICS_SUCCESS: u32 = 0;
pub const ATTRIBUTE_REQUEST_PROTOCOL: u32 = 10;
pub const ATTRIBUTE_RESPONSE_CODE_DETAILS: u32 = 16;
pub const ATTRIBUTE_SOURCE_ADDRESS: u32 = 24;
pub const ATTRIBUTE_DESTINATION_PORT: u32 = 27;
/// `on_http_filter_request_headers`/`response_headers` statuses.
pub const HEADERS_CONTINUE: u32 = 0;
pub const HEADERS_STOP_ITERATION: u32 = 1;
/// `on_http_filter_request_body`/`response_body` statuses.
pub const BODY_CONTINUE: u32 = 0;
pub const BODY_STOP_AND_BUFFER: u32 = 1;
/// `on_http_filter_request_trailers`/`response_trailers` statuses.
pub const TRAILERS_CONTINUE: u32 = 0;
pub const TRAILERS_STOP: u32 = 1;

type Metric = unsafe extern "C" fn(FilterEnvoyPtr, usize, *mut ModuleBuffer, usize, u64) -> u32;

macro_rules! callbacks {
    ($($field:ident : $ty:ty = $name:literal;)*) => {
        /// Envoy's callbacks, by the address its symbol table gives for each name.
        pub struct Callbacks {
            $(pub $field: $ty,)*
        }

        impl Callbacks {
            /// Looks every callback up in the running program; names the first one it
            /// lacks (an Envoy this module was not built for).
            pub fn resolve() -> Result<Callbacks, &'static str> {
                Ok(Callbacks {
                    $($field: {
                        let address = lookup(concat!($name, "\0"));
                        if address.is_null() {
                            return Err($name);
                        }
                        // SAFETY: the symbol has the C signature abi.h gives it, which
                        // `$ty` spells out.
                        unsafe { std::mem::transmute::<*mut c_void, $ty>(address) }
                    },)*
                })
            }
        }
    };
}

callbacks! {
    log: unsafe extern "C" fn(u32, ModuleBuffer) = "envoy_dynamic_module_callback_log";
    log_enabled: unsafe extern "C" fn(u32) -> bool = "envoy_dynamic_module_callback_log_enabled";
    define_counter: unsafe extern "C" fn(ConfigEnvoyPtr, ModuleBuffer, *mut ModuleBuffer, usize, *mut usize) -> u32
        = "envoy_dynamic_module_callback_http_filter_config_define_counter";
    define_gauge: unsafe extern "C" fn(ConfigEnvoyPtr, ModuleBuffer, *mut ModuleBuffer, usize, *mut usize) -> u32
        = "envoy_dynamic_module_callback_http_filter_config_define_gauge";
    define_histogram: unsafe extern "C" fn(ConfigEnvoyPtr, ModuleBuffer, *mut ModuleBuffer, usize, *mut usize) -> u32
        = "envoy_dynamic_module_callback_http_filter_config_define_histogram";
    increment_counter: Metric = "envoy_dynamic_module_callback_http_filter_increment_counter";
    increment_gauge: Metric = "envoy_dynamic_module_callback_http_filter_increment_gauge";
    decrement_gauge: Metric = "envoy_dynamic_module_callback_http_filter_decrement_gauge";
    record_histogram: Metric = "envoy_dynamic_module_callback_http_filter_record_histogram_value";
    get_headers_size: unsafe extern "C" fn(FilterEnvoyPtr, u32) -> usize
        = "envoy_dynamic_module_callback_http_get_headers_size";
    get_headers: unsafe extern "C" fn(FilterEnvoyPtr, u32, *mut EnvoyHeader) -> bool
        = "envoy_dynamic_module_callback_http_get_headers";
    add_header: unsafe extern "C" fn(FilterEnvoyPtr, u32, ModuleBuffer, ModuleBuffer) -> bool
        = "envoy_dynamic_module_callback_http_add_header";
    set_header: unsafe extern "C" fn(FilterEnvoyPtr, u32, ModuleBuffer, ModuleBuffer) -> bool
        = "envoy_dynamic_module_callback_http_set_header";
    send_response: unsafe extern "C" fn(FilterEnvoyPtr, u32, *mut ModuleHeader, usize, ModuleBuffer, ModuleBuffer)
        = "envoy_dynamic_module_callback_http_send_response";
    send_response_headers: unsafe extern "C" fn(FilterEnvoyPtr, *mut ModuleHeader, usize, bool)
        = "envoy_dynamic_module_callback_http_send_response_headers";
    get_body_size: unsafe extern "C" fn(FilterEnvoyPtr, u32) -> usize
        = "envoy_dynamic_module_callback_http_get_body_size";
    get_body_chunks_size: unsafe extern "C" fn(FilterEnvoyPtr, u32) -> usize
        = "envoy_dynamic_module_callback_http_get_body_chunks_size";
    get_body_chunks: unsafe extern "C" fn(FilterEnvoyPtr, u32, *mut EnvoyBuffer) -> bool
        = "envoy_dynamic_module_callback_http_get_body_chunks";
    append_body: unsafe extern "C" fn(FilterEnvoyPtr, u32, ModuleBuffer) -> bool
        = "envoy_dynamic_module_callback_http_append_body";
    drain_body: unsafe extern "C" fn(FilterEnvoyPtr, u32, usize) -> bool
        = "envoy_dynamic_module_callback_http_drain_body";
    set_filter_state_bytes: unsafe extern "C" fn(FilterEnvoyPtr, ModuleBuffer, ModuleBuffer) -> bool
        = "envoy_dynamic_module_callback_http_set_filter_state_bytes";
    get_attribute_string: unsafe extern "C" fn(FilterEnvoyPtr, u32, *mut EnvoyBuffer) -> bool
        = "envoy_dynamic_module_callback_http_filter_get_attribute_string";
    get_attribute_int: unsafe extern "C" fn(FilterEnvoyPtr, u32, *mut u64) -> bool
        = "envoy_dynamic_module_callback_http_filter_get_attribute_int";
    http_callout: unsafe extern "C" fn(FilterEnvoyPtr, *mut u64, ModuleBuffer, *mut ModuleHeader, usize, ModuleBuffer, u64) -> u32
        = "envoy_dynamic_module_callback_http_filter_http_callout";
    clear_route_cache: unsafe extern "C" fn(FilterEnvoyPtr)
        = "envoy_dynamic_module_callback_http_clear_route_cache";
    continue_decoding: unsafe extern "C" fn(FilterEnvoyPtr)
        = "envoy_dynamic_module_callback_http_filter_continue_decoding";
    config_increment_counter: unsafe extern "C" fn(ConfigEnvoyPtr, usize, *mut ModuleBuffer, usize, u64) -> u32
        = "envoy_dynamic_module_callback_http_filter_config_increment_counter";
    config_scheduler_new: unsafe extern "C" fn(ConfigEnvoyPtr) -> *mut c_void
        = "envoy_dynamic_module_callback_http_filter_config_scheduler_new";
    config_scheduler_commit: unsafe extern "C" fn(*mut c_void, u64)
        = "envoy_dynamic_module_callback_http_filter_config_scheduler_commit";
    config_scheduler_delete: unsafe extern "C" fn(*mut c_void)
        = "envoy_dynamic_module_callback_http_filter_config_scheduler_delete";
    config_http_callout: unsafe extern "C" fn(ConfigEnvoyPtr, *mut u64, ModuleBuffer, *mut ModuleHeader, usize, ModuleBuffer, u64) -> u32
        = "envoy_dynamic_module_callback_http_filter_config_http_callout";
}

static CALLBACKS: OnceLock<Callbacks> = OnceLock::new();

/// Resolves the callbacks once (at program init); the name of a missing one otherwise.
pub fn init() -> Result<(), &'static str> {
    if CALLBACKS.get().is_some() {
        return Ok(());
    }
    let table = Callbacks::resolve()?;
    let _ = CALLBACKS.set(table);
    Ok(())
}

/// The resolved callbacks (`None` only before a successful [`init`], which Envoy runs
/// before any other hook).
pub fn callbacks() -> Option<&'static Callbacks> {
    CALLBACKS.get()
}

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// The address of `name` (NUL-terminated) among the symbols the process exports.
fn lookup(name: &str) -> *mut c_void {
    // RTLD_DEFAULT is the null handle on glibc and musl.
    // SAFETY: `name` is NUL-terminated (the macro appends the NUL).
    unsafe { dlsym(std::ptr::null_mut(), name.as_ptr().cast::<c_char>()) }
}
