//! One request to the control listener: answered at once from the core's [`control::handle`].

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use super::cells::HostCells;
use super::host;
use super::metrics::Metrics;
use crate::cache::CacheEvent;
use crate::control::{self, ControlConfig};
use crate::http::header;
use crate::stats::Sink;

pub struct ControlRequest {
    cfg: Rc<ControlConfig>,
    metrics: Metrics,
}

impl ControlRequest {
    pub fn new(cfg: Rc<ControlConfig>, metrics: Metrics) -> Self {
        ControlRequest { cfg, metrics }
    }
}

impl Context for ControlRequest {}

impl HttpContext for ControlRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers = host::headers(MapType::HttpRequestHeaders);
        let pseudo = |name: &str| header(&headers, name).unwrap_or_default();
        let (reply, log) = control::handle(
            &self.cfg,
            pseudo(":method"),
            pseudo(":path"),
            &HostCells,
            host::now_ms(),
        );
        if let Some(line) = log {
            log::info!("{line}");
            if reply.status == 200 && pseudo(":path").starts_with("/cache") {
                self.metrics
                    .apply(self.metrics.catalogue().cache(CacheEvent::Flush));
            }
        }
        host::send_reply(&reply);
        Action::Pause
    }
}
