//! One stream: the host calls the core's [`Stream`] asks for, made with Envoy's
//! dynamic-module callbacks, and the stream's answers to Envoy's hooks.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::abi::{
    self, Callbacks, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, ModuleBuffer, ModuleHeader,
};
use super::config::{self, NativeConfig, Role};
use crate::cache::CacheEvent;
use crate::connection::{self, Connection};
use crate::gateway::CallKind;
use crate::http::{header_edits, Header, HeaderEdit, Reply, UpstreamAnswer, UpstreamCall};
use crate::shared::SharedCells;
use crate::stats::{Catalogue, Kind, Op, Sink};
use crate::stream::{answer_head, Flow, Stream, StreamHost};
use crate::usage::rls;

/// Milliseconds since the Unix epoch by the system clock (0 if it is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The request's body kinds: what Envoy buffered, what just arrived.
const REQUEST_BODY: (u32, u32) = (abi::BODY_BUFFERED_REQUEST, abi::BODY_RECEIVED_REQUEST);
/// The response's body kinds, likewise.
const RESPONSE_BODY: (u32, u32) = (abi::BODY_BUFFERED_RESPONSE, abi::BODY_RECEIVED_RESPONSE);

/// Envoy's calls for one stream.
pub struct NativeHost {
    envoy: FilterEnvoyPtr,
    cb: &'static Callbacks,
    cfg: Arc<NativeConfig>,
    /// The call in flight and its kind (a rate-limit answer is read as gRPC).
    calling: Cell<Option<(u64, CallKind)>>,
    /// What to do once the running hook has let go of the stream.
    after: RefCell<Actions>,
}

/// Host actions that may call the stream's own hooks again (a local reply passes through
/// the stream's response hooks; letting the request go on may end in one), so they wait
/// until the hook that asked for them has let go of the stream.
#[derive(Default)]
pub struct Actions {
    reply: Option<Reply>,
    resume: bool,
}

impl Actions {
    pub fn run(self, envoy: FilterEnvoyPtr) {
        let Some(cb) = abi::callbacks() else { return };
        if let Some(reply) = &self.reply {
            send(cb, envoy, reply);
        }
        if self.resume {
            // SAFETY: a plain value crosses.
            unsafe { (cb.continue_decoding)(envoy) };
        }
    }
}

impl NativeHost {
    fn headers(&self, kind: u32) -> Vec<Header> {
        self.header_view(kind).into_iter().map(owned).collect()
    }

    /// The header map as text borrowed from Envoy (copied only where it is not UTF-8).
    /// Valid until the end of the hook and until the map is changed: a caller that edits
    /// the map copies what it still needs first.
    fn header_view(&self, kind: u32) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
        // SAFETY: a plain value crosses.
        let n = unsafe { (self.cb.get_headers_size)(self.envoy, kind) };
        let empty = EnvoyHeader {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        };
        let mut raw = vec![empty; n];
        // SAFETY: `raw` has room for the `n` headers Envoy reported.
        if n == 0 || !unsafe { (self.cb.get_headers)(self.envoy, kind, raw.as_mut_ptr()) } {
            return Vec::new();
        }
        // SAFETY: both callers use the view and drop it within the hook that read it, and
        // `replace_headers` copies the names it needs before changing the map.
        raw.iter().map(|h| unsafe { header_of(h) }).collect()
    }

    /// Up to `limit` bytes of a body: what Envoy buffered, then what just arrived.
    fn body(&self, (buffered, received): (u32, u32), limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for kind in [buffered, received] {
            for chunk in self.chunks(kind) {
                // SAFETY: Envoy keeps the chunks valid until the end of this hook.
                let bytes = unsafe { chunk.bytes() };
                let room = limit.saturating_sub(out.len());
                out.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
            }
        }
        out
    }

    fn chunks(&self, kind: u32) -> Vec<EnvoyBuffer> {
        // SAFETY: a plain value crosses.
        let n = unsafe { (self.cb.get_body_chunks_size)(self.envoy, kind) };
        let mut chunks = vec![EnvoyBuffer::NULL; n];
        // SAFETY: `chunks` has room for the `n` chunks Envoy reported.
        if n == 0 || !unsafe { (self.cb.get_body_chunks)(self.envoy, kind, chunks.as_mut_ptr()) } {
            return Vec::new();
        }
        chunks
    }

    /// Replaces a whole body of `held` bytes (what Envoy buffered and what just arrived)
    /// with `data`. A body that holds nothing is not drained (most `GET`s).
    fn replace_body(&self, (buffered, received): (u32, u32), held: usize, data: &[u8]) -> bool {
        // SAFETY: plain values and a buffer valid during the call (Envoy copies it).
        unsafe {
            if held > 0 {
                let had_buffer = (self.cb.drain_body)(self.envoy, buffered, usize::MAX);
                let had_received = (self.cb.drain_body)(self.envoy, received, usize::MAX);
                if data.is_empty() {
                    return had_buffer || had_received;
                }
            } else if data.is_empty() {
                return true;
            }
            // A message that came without a body gets one in the buffer (Envoy adds it as
            // its data).
            (self.cb.append_body)(self.envoy, buffered, ModuleBuffer::of(data))
                || (self.cb.append_body)(self.envoy, received, ModuleBuffer::of(data))
        }
    }

    /// Makes a header map hold exactly `pairs` (a name repeated for several values),
    /// carrying out the core's [`header_edits`]: only the names whose values change are
    /// touched, since every call looks the name up in Envoy's map again. A removal Envoy
    /// refuses does not fail the replacement (the name was not there).
    fn replace_headers(&self, kind: u32, pairs: &[(&str, &str)]) -> bool {
        let current = self.header_view(kind);
        let edits = header_edits(&current, pairs);
        // A removed name is read from Envoy's map, which the edits change: copied first.
        let removed: Vec<String> = edits
            .iter()
            .filter_map(|e| match e {
                HeaderEdit::Remove(name) => Some((*name).to_string()),
                _ => None,
            })
            .collect();
        let mut ok = true;
        for name in &removed {
            self.set(kind, name, None);
        }
        for edit in edits {
            match edit {
                HeaderEdit::Remove(_) => {}
                HeaderEdit::Set(name, value) => ok &= self.set(kind, name, Some(value)),
                // SAFETY: both buffers are valid during the call; Envoy copies them.
                HeaderEdit::Add(name, value) => {
                    ok &= unsafe {
                        (self.cb.add_header)(
                            self.envoy,
                            kind,
                            ModuleBuffer::of(name.as_bytes()),
                            ModuleBuffer::of(value.as_bytes()),
                        )
                    }
                }
            }
        }
        ok
    }

    fn set(&self, kind: u32, name: &str, value: Option<&str>) -> bool {
        let value = value.map_or(
            ModuleBuffer {
                ptr: std::ptr::null(),
                length: 0,
            },
            |v| ModuleBuffer::of(v.as_bytes()),
        );
        // SAFETY: both buffers are valid during the call; Envoy copies them.
        unsafe { (self.cb.set_header)(self.envoy, kind, ModuleBuffer::of(name.as_bytes()), value) }
    }

    fn attribute_text(&self, id: u32) -> Option<String> {
        let mut out = EnvoyBuffer::NULL;
        // SAFETY: `out` is a valid out-pointer; the bytes are copied at once.
        unsafe {
            if !(self.cb.get_attribute_string)(self.envoy, id, &mut out) {
                return None;
            }
            Some(String::from_utf8_lossy(out.bytes()).into_owned())
        }
    }
}

fn owned((k, v): (Cow<'_, str>, Cow<'_, str>)) -> Header {
    (k.into_owned(), v.into_owned())
}

/// One header Envoy reported, as text borrowed from Envoy's bytes.
///
/// # Safety
/// The header's bytes must stay valid for `'a`: Envoy keeps them until the end of the hook
/// that reported them, or until the map they belong to changes.
unsafe fn header_of<'a>(h: &EnvoyHeader) -> (Cow<'a, str>, Cow<'a, str>) {
    let text = |ptr, len| {
        // SAFETY: the caller's promise.
        let bytes = unsafe { EnvoyBuffer { ptr, length: len }.bytes() };
        crate::http::header_text_of(bytes)
    };
    (
        text(h.key_ptr, h.key_length),
        text(h.value_ptr, h.value_length),
    )
}

impl StreamHost for NativeHost {
    fn request_headers(&self) -> Vec<Header> {
        self.headers(abi::HEADERS_REQUEST)
    }

    fn connection(&self) -> Connection {
        let mut port = 0u64;
        // SAFETY: `port` is a valid out-pointer.
        let has_port = unsafe {
            (self.cb.get_attribute_int)(self.envoy, abi::ATTRIBUTE_DESTINATION_PORT, &mut port)
        };
        Connection {
            protocol: self
                .attribute_text(abi::ATTRIBUTE_REQUEST_PROTOCOL)
                .unwrap_or_else(|| "HTTP/1.1".into()),
            source_ip: self
                .attribute_text(abi::ATTRIBUTE_SOURCE_ADDRESS)
                .map(|a| connection::ip_of(&a))
                .unwrap_or_default(),
            local_port: has_port.then(|| u16::try_from(port).ok()).flatten(),
        }
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        self.body(REQUEST_BODY, size)
    }

    fn response_headers(&self) -> Vec<Header> {
        self.headers(abi::HEADERS_RESPONSE)
    }

    fn response_made_by_host(&self) -> Option<String> {
        self.attribute_text(abi::ATTRIBUTE_RESPONSE_CODE_DETAILS)
            .filter(|d| d != "via_upstream" && !d.is_empty())
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        self.body(RESPONSE_BODY, size)
    }

    fn send_reply(&self, reply: &Reply) {
        self.after.borrow_mut().reply = Some(reply.clone());
    }

    fn set_request_headers(&self, headers: &[(&str, &str)]) -> bool {
        let ok = self.replace_headers(abi::HEADERS_REQUEST, headers);
        // The route was chosen for the client's request; the router must choose again for
        // the integration request (its cluster header).
        // SAFETY: a plain value crosses.
        unsafe { (self.cb.clear_route_cache)(self.envoy) };
        ok
    }

    fn set_request_body(&self, held: usize, body: &[u8]) -> bool {
        self.replace_body(REQUEST_BODY, held, body)
    }

    fn set_response_headers(&self, headers: &[(&str, &str)]) -> bool {
        self.replace_headers(abi::HEADERS_RESPONSE, headers)
    }

    fn set_response_header(&self, name: &str, value: &str) -> bool {
        self.set(abi::HEADERS_RESPONSE, name, Some(value))
    }

    fn set_response_body(&self, held: usize, body: &[u8]) -> bool {
        self.replace_body(RESPONSE_BODY, held, body)
    }

    fn resume_request(&self) -> bool {
        self.after.borrow_mut().resume = true;
        true
    }

    fn dispatch(&self, kind: CallKind, call: &UpstreamCall) -> Result<u64, String> {
        let framed;
        let (headers, body) = if kind == CallKind::RateLimit {
            framed = rls::grpc_http_request(&call.cluster, &call.body);
            (&framed.0, framed.1.as_slice())
        } else {
            (&call.headers, call.body.as_slice())
        };
        let mut raw: Vec<ModuleHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHeader::of(k, v))
            .collect();
        let mut id = 0u64;
        // SAFETY: every buffer and header is valid during the call (Envoy copies them);
        // `id` is a valid out-pointer.
        let result = unsafe {
            (self.cb.http_callout)(
                self.envoy,
                &mut id,
                ModuleBuffer::of(call.cluster.as_bytes()),
                raw.as_mut_ptr(),
                raw.len(),
                ModuleBuffer::of(body),
                call.timeout_ms,
            )
        };
        if result != abi::CALLOUT_INIT_SUCCESS {
            return Err(format!("callout refused ({result})"));
        }
        self.calling.set(Some((id, kind)));
        Ok(id)
    }

    fn set_state(&self, name: &str, value: &str) -> bool {
        // SAFETY: both buffers are valid during the call; Envoy copies them.
        unsafe {
            (self.cb.set_filter_state_bytes)(
                self.envoy,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        }
    }

    fn cells(&self) -> &dyn SharedCells {
        config::cells()
    }

    /// A callout costs Envoy less than the request sent on in place: the request's and the
    /// answer's headers are changed one call at a time, and both bodies held. Counted per
    /// request, a `GET` to Lambda 299,095 instructions dispatched against 338,403 forwarded,
    /// a `POST` 324,702 against 363,111, an `http_proxy` `GET` 312,385 against 341,424.
    fn forwarding(&self) -> crate::config::Forwarding {
        crate::config::Forwarding::default_for(true)
    }

    fn stats(&self) -> (&Catalogue, &dyn Sink) {
        (&self.cfg.stats.catalogue, self)
    }
}

impl Sink for NativeHost {
    fn apply(&self, op: Op) {
        let (i, value) = match op {
            Op::Add(_, 0) => return,
            Op::Add(i, n) => (i, n),
            Op::Record(i, v) => (i, i64::try_from(v).unwrap_or(i64::MAX)),
        };
        let stats = &self.cfg.stats;
        let (Some(Some(id)), Some((_, kind))) = (stats.ids.get(i), stats.catalogue.defs().get(i))
        else {
            return;
        };
        let call = match (kind, value < 0) {
            (Kind::Counter, _) => self.cb.increment_counter,
            (Kind::Gauge, false) => self.cb.increment_gauge,
            (Kind::Gauge, true) => self.cb.decrement_gauge,
            (Kind::Histogram, _) => self.cb.record_histogram,
        };
        // SAFETY: plain values cross; no labels.
        unsafe {
            call(
                self.envoy,
                *id,
                std::ptr::null_mut(),
                0,
                value.unsigned_abs(),
            )
        };
    }
}

/// Answers the client with a reply of the module's own. A reply without a body goes out
/// as bare response headers: Envoy's local replies drop `Content-Type` when the body is
/// empty, and API Gateway keeps it.
fn send(cb: &Callbacks, envoy: FilterEnvoyPtr, reply: &Reply) {
    let status = reply.status.to_string();
    let mut headers: Vec<ModuleHeader> = Vec::with_capacity(reply.headers.len() + 2);
    if reply.body.is_empty() {
        headers.push(ModuleHeader::of(":status", &status));
        headers.push(ModuleHeader::of("content-length", "0"));
    }
    headers.extend(
        reply
            .headers
            .iter()
            .filter(|(k, _)| !reply.body.is_empty() || !k.eq_ignore_ascii_case("content-length"))
            .map(|(k, v)| ModuleHeader::of(k, v)),
    );
    // SAFETY: every buffer and header is valid during the call; Envoy copies them.
    unsafe {
        if reply.body.is_empty() {
            (cb.send_response_headers)(envoy, headers.as_mut_ptr(), headers.len(), true);
            return;
        }
        (cb.send_response)(
            envoy,
            u32::from(reply.status),
            headers.as_mut_ptr(),
            headers.len(),
            ModuleBuffer::of(&reply.body),
            ModuleBuffer::of(b"apigw_edge"),
        )
    };
}

/// What the module keeps for one stream.
pub enum NativeFilter {
    Gateway(Box<Stream<NativeHost>>),
    /// A request to the control listener, answered at its headers.
    Control(NativeHost),
}

impl NativeFilter {
    pub fn new(cfg: Arc<NativeConfig>, envoy: FilterEnvoyPtr) -> Option<NativeFilter> {
        let cb = abi::callbacks()?;
        let control = matches!(cfg.role, Role::Control(_));
        let worker = if control {
            None
        } else {
            Some(config::worker(&cfg)?)
        };
        let host = NativeHost {
            envoy,
            cb,
            cfg,
            calling: Cell::new(None),
            after: RefCell::new(Actions::default()),
        };
        let Some(worker) = worker else {
            return Some(NativeFilter::Control(host));
        };
        if host.cfg.keys.is_some() {
            super::keys::worker_tick(&host.cfg, &worker);
        }
        let stream = Stream::new(
            host,
            worker.set.clone(),
            worker.stores.clone(),
            worker.ids.clone(),
        )?;
        Some(NativeFilter::Gateway(Box::new(stream)))
    }

    pub fn request_headers(&mut self, end_of_stream: bool) -> Flow {
        match self {
            NativeFilter::Gateway(s) => s.on_request_headers(end_of_stream),
            NativeFilter::Control(host) => {
                control(host);
                Flow::Pause
            }
        }
    }

    pub fn stream(&mut self) -> Option<&mut Stream<NativeHost>> {
        match self {
            NativeFilter::Gateway(s) => Some(s),
            NativeFilter::Control(_) => None,
        }
    }

    /// The host actions the last hook left for after it.
    pub fn take_actions(&mut self) -> Actions {
        let host = match self {
            NativeFilter::Gateway(s) => s.host(),
            NativeFilter::Control(host) => host,
        };
        host.after.take()
    }

    /// A callout finished: its answer, read as the kind of call it was.
    pub fn callout_done(&mut self, id: u64, success: bool, headers: Vec<Header>, body: Vec<u8>) {
        let Some(stream) = self.stream() else { return };
        let kind = stream
            .host()
            .calling
            .take()
            .filter(|(pending, _)| *pending == id)
            .map(|(_, kind)| kind);
        let (status, headers) = answer_head(headers);
        let answer = match (success, kind) {
            (false, _) => UpstreamAnswer {
                host_reply: Some("the call was reset".into()),
                ..UpstreamAnswer::default()
            },
            (true, Some(CallKind::RateLimit)) => {
                match rls::grpc_http_answer(status, &headers, &body) {
                    Ok(message) => UpstreamAnswer {
                        status: Some(200),
                        body: message,
                        ..UpstreamAnswer::default()
                    },
                    Err(why) => UpstreamAnswer {
                        host_reply: Some(why),
                        ..UpstreamAnswer::default()
                    },
                }
            }
            (true, _) => {
                let mut headers = headers;
                // Envoy's async client adds its own timing header; forwarded answers do
                // not carry it, and the answers agree.
                headers.retain(|(k, _)| k != "x-envoy-upstream-service-time");
                UpstreamAnswer {
                    host_reply: None,
                    status,
                    headers,
                    body,
                }
            }
        };
        stream.on_call_answer(id, &answer);
    }
}

/// Answers a control listener request from the core's control handler.
fn control(host: &NativeHost) {
    let Role::Control(control) = &host.cfg.role else {
        return;
    };
    let headers = host.request_headers();
    let pseudo = |name: &str| crate::http::header(&headers, name).unwrap_or_default();
    let (reply, log) = crate::control::handle(
        control,
        pseudo(":method"),
        pseudo(":path"),
        config::cells(),
        now_ms(),
    );
    if let Some(line) = log {
        log::info!("{line}");
        if reply.status == 200 && pseudo(":path").starts_with("/cache") {
            host.apply(host.cfg.stats.catalogue.cache(CacheEvent::Flush));
        }
    }
    host.send_reply(&reply);
}

/// The headers and body chunks a callout's answer came with, copied.
///
/// # Safety
/// The pointers must be valid for the counts given (Envoy's guarantee during the hook), or
/// null.
pub unsafe fn callout_answer(
    headers: *const EnvoyHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) -> (Vec<Header>, Vec<u8>) {
    let headers = if headers.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(headers, headers_size) }
    };
    let chunks = if chunks.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(chunks, chunks_size) }
    };
    let mut body = Vec::new();
    for c in chunks {
        // SAFETY: the caller's promise.
        body.extend_from_slice(unsafe { c.bytes() });
    }
    // SAFETY: the caller's promise; the texts are copied at once.
    let headers = headers.iter().map(|h| owned(unsafe { header_of(h) }));
    (headers.collect(), body)
}
