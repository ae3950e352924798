//! The root context: compiles the configuration once per VM and creates request contexts.
//! A plugin is either the gateway (serves the API; owns this worker's cache store) or the
//! control listener (operator actions such as a stage cache flush).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};

use super::cells::HostCells;
use super::control::ControlRequest;
use super::http::Request;
use super::metrics::Metrics;
use crate::config::{parse_plugin_config, GatewayConfig, PluginConfig};
use crate::control::ControlConfig;
use crate::gateway::Gateway;
use crate::ids::Ids;
use crate::stage_set::StageSet;
use crate::stats;
use crate::stream::Stores;

/// How often the root context looks at the JWKS key ring (adopting what other workers
/// fetched, and fetching what is due).
const JWKS_TICK: Duration = Duration::from_millis(500);
/// The same while some JWKS has never been fetched, so that the first keys arrive (or
/// another worker's are adopted) soon after start-up.
const JWKS_START_TICK: Duration = Duration::from_millis(100);

/// This VM's request id source, seeded from the host's randomness.
fn seeded_ids() -> Ids {
    let mut seed = [0u8; 8];
    if getrandom::fill(&mut seed).is_err() {
        log::warn!("no host randomness; request ids are seeded from the clock");
        seed = super::host::now_ms().to_le_bytes();
    }
    Ids::seeded(u64::from_le_bytes(seed))
}

/// What this plugin instance does.
enum Role {
    Gateway {
        /// Every stage and canary served.
        set: Rc<StageSet>,
        ids: Rc<Ids>,
        /// This worker's stage cache and authorizer result stores, one set per variant.
        stores: Rc<Vec<Stores>>,
    },
    Control(Rc<ControlConfig>),
}

#[derive(Default)]
pub struct Root {
    role: Option<Role>,
    metrics: Metrics,
    /// JWKS fetches in flight: call token to variant and source index.
    fetching: HashMap<u32, (usize, usize)>,
    /// The tick period asked of the host.
    tick: Option<Duration>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some((variant, source)) = self.fetching.remove(&token_id) else {
            return;
        };
        let Some(Role::Gateway { set, stores, .. }) = &self.role else {
            return;
        };
        let (Some(gateway), Some(stores)) = (set.gateway(variant), stores.get(variant)) else {
            return;
        };
        let status = super::host::headers(MapType::HttpCallResponseHeaders)
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| v.parse::<u16>().ok());
        // Read at most one byte past the limit: the key set reader refuses it.
        let limit = crate::jwt::keys::MAX_JWKS_BYTES + 1;
        let body = super::host::buffer(BufferType::HttpCallResponseBody, body_size.min(limit));
        let result = stores.keys.borrow_mut().fetched(
            gateway.jwks_sources(),
            &HostCells,
            source,
            super::host::now_ms(),
            status,
            &body,
        );
        stats::apply(
            &self.metrics,
            self.metrics.catalogue().jwks_fetch(result.is_err()),
        );
        match result {
            Ok(line) => log::info!("{line}"),
            Err(line) => log::warn!("{line}"),
        }
    }
}

impl Root {
    /// Adopts key sets other workers fetched and fetches the ones due.
    /// Looks at the key ring every tick: faster until every JWKS has been fetched.
    fn set_tick(&mut self, period: Duration) {
        if self.tick != Some(period) && hostcalls::set_tick_period(period).is_ok() {
            self.tick = Some(period);
        }
    }

    fn refresh_keys(&mut self) {
        let complete = self.fetch_due_keys();
        self.set_tick(if complete { JWKS_TICK } else { JWKS_START_TICK });
    }

    /// Fetches what is due; returns whether every source has keys.
    fn fetch_due_keys(&mut self) -> bool {
        let Some(Role::Gateway { set, stores, .. }) = &self.role else {
            return true;
        };
        let (set, stores) = (set.clone(), stores.clone());
        let mut complete = true;
        for (variant, (gateway, stores)) in set.gateways().zip(stores.iter()).enumerate() {
            complete &= self.fetch_due_keys_of(variant, gateway, stores);
        }
        complete
    }

    /// [`Root::fetch_due_keys`] for one variant's sources.
    fn fetch_due_keys_of(&mut self, variant: usize, gateway: &Gateway, stores: &Stores) -> bool {
        let sources = gateway.jwks_sources();
        if sources.is_empty() {
            return true;
        }
        let (due, log) = stores
            .keys
            .borrow_mut()
            .due(sources, &HostCells, super::host::now_ms());
        for line in log {
            log::warn!("{line}");
        }
        for i in due {
            let Some(s) = sources.get(i) else {
                continue;
            };
            let headers = vec![
                (":method", "GET"),
                (":path", s.path.as_str()),
                (":authority", s.authority.as_str()),
                ("accept", "application/json"),
                ("user-agent", "apigw-edge"),
            ];
            match hostcalls::dispatch_http_call(
                &s.cluster,
                headers,
                None,
                vec![],
                Duration::from_millis(crate::jwt::FETCH_TIMEOUT_MS),
            ) {
                Ok(token) => {
                    self.fetching.insert(token, (variant, i));
                }
                Err(status) => {
                    let line = stores.keys.borrow_mut().fetched(
                        sources,
                        &HostCells,
                        i,
                        super::host::now_ms(),
                        None,
                        &[],
                    );
                    stats::apply(&self.metrics, self.metrics.catalogue().jwks_fetch(true));
                    log::warn!(
                        "JWKS fetch through cluster `{}` could not start ({status:?}): {}",
                        s.cluster,
                        line.unwrap_or_else(|e| e)
                    );
                }
            }
        }
        let complete = stores.keys.borrow().complete();
        complete
    }
}

impl Root {
    fn configure_gateway(&mut self, cfg: GatewayConfig) -> bool {
        let started = super::host::now_ms();
        let compiled = StageSet::compile_texts(&cfg);
        // The exports' text is not needed once compiled.
        drop(cfg);
        let compiled = match compiled {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors {
                    log::error!("invalid configuration: {e}");
                }
                return false;
            }
        };
        for w in &compiled.warnings {
            log::warn!("{w}");
        }
        let mut set = compiled.set;
        // In-filter signing reads its credentials from the VM's environment
        // (`vm_config.environment_variables`), once per VM.
        if let Err(e) = set.load_credentials(&|name| std::env::var(name).ok()) {
            log::error!("invalid configuration: {e}");
            return false;
        }
        let stores = Stores::for_set(&set);
        let mut plans: Vec<&str> = Vec::new();
        let mut fetches = false;
        for (i, gateway) in set.gateways().enumerate() {
            log::info!(
                "apigw-edge {}: serving stage `{}` (compiled in {} ms) through {}{}",
                env!("CARGO_PKG_VERSION"),
                set.label(i),
                super::host::now_ms().saturating_sub(started),
                gateway.clusters().join(", "),
                gateway.stage_cache().map_or(String::new(), |c| format!(
                    "; stage cache {} MiB per worker",
                    c.capacity_bytes >> 20
                ))
            );
            for p in gateway.plan_ids() {
                if !plans.contains(&p) {
                    plans.push(p);
                }
            }
            fetches |= !gateway.jwks_sources().is_empty();
        }
        let variants = if set.len() > 1 {
            set.labels()
        } else {
            Vec::new()
        };
        self.metrics = Metrics::define(&plans, &variants);
        if fetches {
            self.set_tick(JWKS_START_TICK);
        }
        self.role = Some(Role::Gateway {
            set: Rc::new(set),
            ids: Rc::new(seeded_ids()),
            stores: Rc::new(stores),
        });
        true
    }
}

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
        let parsed = parse_plugin_config(&bytes);
        // The configuration text is not needed once read; free it before compiling.
        drop(bytes);
        let ok = match parsed {
            Ok(PluginConfig::Gateway(cfg)) => self.configure_gateway(*cfg),
            Ok(PluginConfig::Control(cfg)) => {
                log::info!(
                    "apigw-edge {}: control listener for stage `{}`",
                    env!("CARGO_PKG_VERSION"),
                    cfg.stage
                );
                self.metrics = Metrics::define(&[], &[]);
                self.role = Some(Role::Control(Rc::new(cfg)));
                true
            }
            Err(e) => {
                log::error!("invalid configuration: {e}");
                false
            }
        };
        ok
    }

    fn on_tick(&mut self) {
        self.refresh_keys();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match self.role.as_ref()? {
            Role::Gateway { set, ids, stores } => Some(Box::new(Request::new(
                set.clone(),
                stores.clone(),
                self.metrics.clone(),
                ids.clone(),
            )?)),
            Role::Control(cfg) => Some(Box::new(ControlRequest::new(
                cfg.clone(),
                self.metrics.clone(),
            ))),
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
