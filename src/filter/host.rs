//! Small, fallible readers of host state.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use crate::http::Reply;

/// Milliseconds since the Unix epoch by the host clock (0 if the host cannot say).
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A property as UTF-8 text.
pub fn property_text(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok().flatten()?;
    String::from_utf8(bytes).ok()
}

/// An integer property (Envoy encodes them as 8 little-endian bytes).
pub fn property_u64(path: &[&str]) -> Option<u64> {
    let bytes = hostcalls::get_property(path.to_vec()).ok().flatten()?;
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(arr))
}

/// Stores `value` in the request's state under `name` (Envoy: filter state
/// `wasm.<name>`, readable by access loggers); `false` when the host refuses.
pub fn set_state(name: &str, value: &str) -> bool {
    hostcalls::set_property(vec![name], Some(value.as_bytes())).is_ok()
}

/// A header map as text, whatever bytes the client or upstream sent (see
/// [`crate::http::header_text`]). The SDK's own map readers convert with `unwrap` and would
/// abort the VM on a value that is not UTF-8; this reads the host's bytes instead. An
/// unavailable map reads as empty.
pub fn headers(map: MapType) -> Vec<(String, String)> {
    let Some(bytes) = raw::header_map(map) else {
        return Vec::new();
    };
    crate::http::decode_header_map(&bytes).unwrap_or_else(|| {
        log::error!(
            "the host returned a malformed header map ({} bytes)",
            bytes.len()
        );
        Vec::new()
    })
}

/// Sets a header of a map the host holds (replacing any value); `false` when the host
/// refuses. The SDK's own setter aborts the VM on an unexpected status.
pub fn set_header(map: MapType, name: &str, value: &str) -> bool {
    raw::replace_header(map, name, value)
}

/// Replaces a whole header map the host holds (pseudo-headers included); `false` when the
/// host refuses.
pub fn set_headers(map: MapType, pairs: &[(&str, &str)]) -> bool {
    raw::set_header_map(map, &serialize_pairs(pairs))
}

/// Replaces the first `size` bytes of a body the host holds with `data`; `false` when the
/// host refuses (no body is held).
pub fn set_buffer(kind: BufferType, size: usize, data: &[u8]) -> bool {
    raw::set_buffer(kind, size, data)
}

/// Lets a request the filter paused go on (to Envoy's router); `false` when the host refuses.
pub fn resume_request() -> bool {
    raw::continue_request()
}

/// A header map in the host's wire form: count, then each name and value length, then the
/// NUL-terminated names and values.
fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// The raw host calls: the serialized header map, with ownership of the host's buffer;
/// setting one header or a whole map, a body, and continuing a request. The SDK's own
/// wrappers abort the VM on any status but `Ok`.
#[allow(unsafe_code)]
mod raw {
    use proxy_wasm::types::{BufferType, MapType, Status, StreamType};

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: MapType,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> Status;
        fn proxy_replace_header_map_value(
            map_type: MapType,
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> Status;
        fn proxy_set_header_map_pairs(
            map_type: MapType,
            map_data: *const u8,
            map_size: usize,
        ) -> Status;
        fn proxy_set_buffer_bytes(
            buffer_type: BufferType,
            start: usize,
            size: usize,
            buffer_data: *const u8,
            buffer_size: usize,
        ) -> Status;
        fn proxy_continue_stream(stream_type: StreamType) -> Status;
    }

    pub fn set_header_map(map: MapType, serialized: &[u8]) -> bool {
        // SAFETY: the pointer is valid for its length during the call; the host copies.
        let status =
            unsafe { proxy_set_header_map_pairs(map, serialized.as_ptr(), serialized.len()) };
        status == Status::Ok
    }

    pub fn set_buffer(kind: BufferType, size: usize, data: &[u8]) -> bool {
        // SAFETY: the pointer is valid for its length during the call; the host copies.
        let status = unsafe { proxy_set_buffer_bytes(kind, 0, size, data.as_ptr(), data.len()) };
        status == Status::Ok
    }

    pub fn continue_request() -> bool {
        // SAFETY: no pointers are passed.
        unsafe { proxy_continue_stream(StreamType::HttpRequest) == Status::Ok }
    }

    pub fn replace_header(map: MapType, name: &str, value: &str) -> bool {
        // SAFETY: both pointers are valid for their lengths for the duration of the call; the
        // host copies the bytes.
        let status = unsafe {
            proxy_replace_header_map_value(
                map,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        };
        status == Status::Ok
    }

    pub fn header_map(map: MapType) -> Option<Vec<u8>> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: both out-pointers are valid for writes for the duration of the call.
        let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
        if status != Status::Ok || data.is_null() {
            return None;
        }
        // SAFETY: on success the host wrote `size` bytes into a buffer it obtained from this
        // module's `proxy_on_memory_allocate` (a boxed `[u8]` of exactly `size` bytes, the
        // SDK's allocator) and handed its ownership to the caller, as the SDK's own readers
        // assume; length and capacity are both `size`.
        Some(unsafe { Vec::from_raw_parts(data, size, size) })
    }
}

pub fn buffer(kind: BufferType, size: usize) -> Vec<u8> {
    hostcalls::get_buffer(kind, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Sends a reply to the client; a host refusal is logged (there is nobody else to tell).
pub fn send_reply(reply: &Reply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Err(status) =
        hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body))
    {
        log::error!("could not send the response: {status:?}");
    }
}
