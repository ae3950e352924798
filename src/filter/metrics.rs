//! Envoy stats of the filter: the core's [`Catalogue`] defined once per VM with the host.
//!
//! Envoy lists them under the `wasmcustom.` prefix, e.g.
//! `wasmcustom.apigw_edge.requests.2xx`.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::stats::{Catalogue, Kind, Op, Sink};

#[derive(Debug, Clone)]
pub struct Metrics {
    catalogue: Rc<Catalogue>,
    /// The host's id of each catalogue entry (`None` when the host refused to define it).
    ids: Rc<Vec<Option<u32>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            catalogue: Rc::new(Catalogue::new(&[], &[])),
            ids: Rc::new(Vec::new()),
        }
    }
}

impl Metrics {
    /// Defines every stat; `plans` are the usage plan ids and `variants` the names of the
    /// stages and canaries when there are several (each gets its own counters).
    pub fn define(plans: &[&str], variants: &[&str]) -> Self {
        let catalogue = Catalogue::new(plans, variants);
        let ids = catalogue
            .defs()
            .iter()
            .map(|(name, kind)| {
                let kind = match kind {
                    Kind::Counter => MetricType::Counter,
                    Kind::Gauge => MetricType::Gauge,
                    Kind::Histogram => MetricType::Histogram,
                };
                let id = hostcalls::define_metric(kind, name).ok();
                if id.is_none() {
                    log::warn!("could not define metric {name}");
                }
                id
            })
            .collect();
        Metrics {
            catalogue: Rc::new(catalogue),
            ids: Rc::new(ids),
        }
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }
}

impl Sink for Metrics {
    fn apply(&self, op: Op) {
        let (i, result) = match op {
            Op::Add(_, 0) => return,
            Op::Add(i, n) => (i, self.id(i).map(|id| hostcalls::increment_metric(id, n))),
            Op::Record(i, v) => (i, self.id(i).map(|id| hostcalls::record_metric(id, v))),
        };
        if let Some(Err(status)) = result {
            log::debug!("the host refused to update stat {i}: {status:?}");
        }
    }
}

impl Metrics {
    fn id(&self, i: usize) -> Option<u32> {
        self.ids.get(i).copied().flatten()
    }
}
