//! The root context: compiles the configuration once per VM and creates request contexts.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::http::Request;
use super::metrics::Metrics;
use crate::config::parse_filter_config;
use crate::gateway::Gateway;

/// Per-VM source of request ids: a SplitMix64 stream seeded from the host's randomness.
#[derive(Debug)]
pub struct Ids {
    state: Cell<u64>,
}

impl Ids {
    fn seeded() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            log::warn!("no host randomness; request ids are seeded from the clock");
            seed = super::host::now_ms().to_le_bytes();
        }
        Ids {
            state: Cell::new(u64::from_le_bytes(seed)),
        }
    }

    fn next(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random (version 4) UUID.
    pub fn uuid(&self) -> String {
        let a = self.next();
        let b = self.next();
        let hi = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
        let lo = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

#[derive(Default)]
pub struct Root {
    gateway: Option<Rc<Gateway>>,
    metrics: Metrics,
    ids: Option<Rc<Ids>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        true
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let cfg = match parse_filter_config(&bytes) {
            Ok(cfg) => cfg,
            Err(e) => {
                log::error!("invalid configuration: {e}");
                return false;
            }
        };
        match Gateway::compile(&cfg) {
            Ok(compiled) => {
                for w in &compiled.warnings {
                    log::warn!("{w}");
                }
                log::info!(
                    "apigw-edge {}: serving stage `{}` through {}",
                    env!("CARGO_PKG_VERSION"),
                    cfg.deployment.stage,
                    compiled.gateway.clusters().join(", ")
                );
                self.gateway = Some(Rc::new(compiled.gateway));
                self.metrics = Metrics::define();
                self.ids = Some(Rc::new(Ids::seeded()));
                true
            }
            Err(errors) => {
                for e in &errors {
                    log::error!("invalid configuration: {e}");
                }
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let gateway = self.gateway.clone()?;
        let ids = self.ids.clone()?;
        Some(Box::new(Request::new(gateway, self.metrics, ids)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
