//! The root context: compiles the configuration once per VM and creates request contexts.
//! A plugin is either the gateway (serves the API; owns this worker's cache store) or the
//! control listener (operator actions such as a stage cache flush).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};

use super::cells::HostCells;
use super::control::ControlRequest;
use super::http::{Request, Stores};
use super::metrics::Metrics;
use crate::authorizer::cache::AuthCache;
use crate::cache::ResponseCache;
use crate::config::{parse_plugin_config, GatewayConfig, PluginConfig};
use crate::control::ControlConfig;
use crate::gateway::{Gateway, TokenCache};
use crate::jwt::ring::KeyRing;
use crate::stage_set::StageSet;

/// How often the root context looks at the JWKS key ring (adopting what other workers
/// fetched, and fetching what is due).
const JWKS_TICK: Duration = Duration::from_millis(500);
/// The same while some JWKS has never been fetched, so that the first keys arrive (or
/// another worker's are adopted) soon after start-up.
const JWKS_START_TICK: Duration = Duration::from_millis(100);

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

    /// A roll in `0..ROLLS` for choosing a canary.
    pub fn roll(&self) -> u32 {
        u32::try_from(self.next() % u64::from(crate::stage_set::ROLLS)).unwrap_or(0)
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
        self.metrics.jwks_fetch(result.is_err());
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
                    self.metrics.jwks_fetch(true);
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
        let mut stores: Vec<Stores> = Vec::with_capacity(set.len());
        let mut plans: Vec<&str> = Vec::new();
        let mut fetches = false;
        for (i, gateway) in set.gateways().enumerate() {
            // A canary with `useStageCache` reads and fills its stage's store.
            let shared = match (set.shares_stage_cache(i), i.checked_sub(1)) {
                (true, Some(stage)) => stores.get(stage).and_then(|s| s.cache.clone()),
                _ => None,
            };
            let cache = shared.or_else(|| {
                gateway
                    .stage_cache()
                    .map(|c| Rc::new(RefCell::new(ResponseCache::new(c.capacity_bytes))))
            });
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
            stores.push(Stores {
                cache,
                auth: Rc::new(RefCell::new(AuthCache::new(
                    crate::authorizer::cache::DEFAULT_CAPACITY_BYTES,
                ))),
                keys: Rc::new(RefCell::new(KeyRing::new(gateway.jwks_sources().len()))),
                tokens: Rc::new(RefCell::new(TokenCache::new(
                    crate::gateway::TOKEN_CACHE_BYTES,
                ))),
                certs: Rc::new(RefCell::new(crate::client_cert::CertCache::new(
                    crate::client_cert::CERT_CACHE_BYTES,
                ))),
            });
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
            ids: Rc::new(Ids::seeded()),
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
