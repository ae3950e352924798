//! Envoy stats of the filter, defined once per VM.
//!
//! Envoy lists them under the `wasmcustom.` prefix, e.g.
//! `wasmcustom.apigw_edge.requests.2xx`.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

#[derive(Debug, Default, Clone, Copy)]
pub struct Metrics {
    responses_2xx: Option<u32>,
    responses_4xx: Option<u32>,
    responses_5xx: Option<u32>,
    integration_errors: Option<u32>,
    integration_latency_ms: Option<u32>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    let id = hostcalls::define_metric(kind, name).ok();
    if id.is_none() {
        log::warn!("could not define metric {name}");
    }
    id
}

impl Metrics {
    pub fn define() -> Self {
        Metrics {
            responses_2xx: define(MetricType::Counter, "apigw_edge.requests.2xx"),
            responses_4xx: define(MetricType::Counter, "apigw_edge.requests.4xx"),
            responses_5xx: define(MetricType::Counter, "apigw_edge.requests.5xx"),
            integration_errors: define(MetricType::Counter, "apigw_edge.integration.errors"),
            integration_latency_ms: define(
                MetricType::Histogram,
                "apigw_edge.integration.latency_ms",
            ),
        }
    }

    /// Counts one finished request by the class of its status.
    pub fn response(&self, status: u16) {
        let id = match status / 100 {
            2 => self.responses_2xx,
            4 => self.responses_4xx,
            5 => self.responses_5xx,
            _ => None,
        };
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    /// Records one Invoke round trip.
    pub fn integration(&self, latency_ms: u64, failed: bool) {
        if let Some(id) = self.integration_latency_ms {
            let _ = hostcalls::record_metric(id, latency_ms);
        }
        if failed {
            if let Some(id) = self.integration_errors {
                let _ = hostcalls::increment_metric(id, 1);
            }
        }
    }
}
