//! The benchmark's reference filters, with none of the gateway's logic.
//!
//! - Configuration empty: lets every request through untouched (row B3, the fixed cost of a
//!   wasm VM in the request path).
//! - Configuration `dispatch`: answers every request itself with the body of one
//!   `dispatch_http_call` to the `lambda` cluster, sending a fixed 1.4 KB payload (row BD,
//!   the floor of any proxy-wasm design that calls Lambda for each request).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { dispatch: false }) });
}}

struct Root {
    dispatch: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.dispatch = config.starts_with(b"dispatch");
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.dispatch {
            Some(Box::new(Dispatch))
        } else {
            Some(Box::new(Pass))
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Pass;

impl Context for Pass {}

impl HttpContext for Pass {}

/// A payload the size of a Lambda proxy event.
const PAYLOAD: [u8; 1400] = [b' '; 1400];

struct Dispatch;

impl Context for Dispatch {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _t: usize) {
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let _ = hostcalls::send_http_response(
            200,
            vec![("content-type", "application/json")],
            Some(&body),
        );
    }
}

impl HttpContext for Dispatch {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let sent = hostcalls::dispatch_http_call(
            "lambda",
            vec![
                (":method", "POST"),
                (":path", "/2015-03-31/functions/hello/invocations"),
                (":authority", "lambda"),
                ("content-type", "application/json"),
            ],
            Some(&PAYLOAD),
            vec![],
            Duration::from_secs(29),
        );
        if sent.is_err() {
            let _ = hostcalls::send_http_response(500, vec![], None);
        }
        Action::Pause
    }
}
