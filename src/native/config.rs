//! One filter configuration Envoy loaded: read and checked once on the main thread, then
//! compiled once per worker thread on its first request (the compiled pipeline and its
//! stores are single-threaded, as in a wasm VM). The cells every worker shares, and the
//! stats' ids, are the process's.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::abi::{self, ConfigEnvoyPtr, ModuleBuffer};
use crate::config::{parse_plugin_config, GatewayConfig, PluginConfig};
use crate::control::ControlConfig;
use crate::ids::Ids;
use crate::shared::locked;
use crate::stage_set::StageSet;
use crate::stats::{Catalogue, Kind};
use crate::stream::Stores;

/// Keys the shared cells hold at most (counters, buckets, cache generations, key sets).
const MAX_SHARED_KEYS: usize = 1 << 20;

/// The process's shared cells: every configuration and worker reads and writes the same
/// ones (as every wasm VM of one `vm_id` shares Envoy's shared data).
pub fn cells() -> &'static locked::Cells {
    static CELLS: OnceLock<locked::Cells> = OnceLock::new();
    CELLS.get_or_init(|| locked::Cells::new(MAX_SHARED_KEYS))
}

/// Ids of the configurations Envoy holds; a worker drops its compiled copy of any other.
static LIVE: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub enum Role {
    Gateway(Box<GatewayConfig>),
    Control(ControlConfig),
}

/// The stats of one configuration: the core's catalogue and Envoy's id for each entry.
pub struct Stats {
    pub catalogue: Catalogue,
    pub ids: Vec<Option<usize>>,
}

pub struct NativeConfig {
    pub id: u64,
    pub role: Role,
    pub stats: Stats,
    /// Fetches the authorizers' key sets (when some authorizer verifies tokens).
    pub keys: Option<super::keys::Refresher>,
}

impl NativeConfig {
    /// Reads and checks `bytes` (the filter's `filter_config`); every problem is logged and
    /// the configuration refused (`None`), as the wasm filter refuses it.
    pub fn load(envoy: ConfigEnvoyPtr, bytes: &[u8]) -> Option<NativeConfig> {
        let role = match parse_plugin_config(bytes) {
            Ok(PluginConfig::Gateway(cfg)) => Role::Gateway(cfg),
            Ok(PluginConfig::Control(cfg)) => {
                log::info!(
                    "apigw-edge {} (native): control listener for stage `{}`",
                    env!("CARGO_PKG_VERSION"),
                    cfg.stage
                );
                Role::Control(cfg)
            }
            Err(e) => {
                log::error!("invalid configuration: {e}");
                return None;
            }
        };
        let mut fetches = false;
        let catalogue = match &role {
            Role::Gateway(cfg) => {
                // Compiled here once to refuse a bad configuration now; each worker
                // compiles its own copy.
                let set = compile(cfg, true)?;
                fetches = set.gateways().any(|g| !g.jwks_sources().is_empty());
                let plans = plan_ids(&set);
                let plans: Vec<&str> = plans.iter().map(String::as_str).collect();
                let variants = if set.len() > 1 {
                    set.labels()
                } else {
                    Vec::new()
                };
                Catalogue::new(&plans, &variants)
            }
            Role::Control(_) => Catalogue::new(&[], &[]),
        };
        let ids = catalogue
            .defs()
            .iter()
            .map(|(name, kind)| define(envoy, name, *kind))
            .collect();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = LIVE.lock() {
            live.push(id);
        }
        Some(NativeConfig {
            id,
            role,
            stats: Stats { catalogue, ids },
            keys: if fetches {
                super::keys::Refresher::start(envoy)
            } else {
                None
            },
        })
    }
}

impl Drop for NativeConfig {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|&id| id != self.id);
        }
    }
}

/// The usage plan ids of every variant, each once, in order.
fn plan_ids(set: &StageSet) -> Vec<String> {
    let mut plans: Vec<String> = Vec::new();
    for g in set.gateways() {
        for p in g.plan_ids() {
            if !plans.iter().any(|q| q == p) {
                plans.push(p.to_string());
            }
        }
    }
    plans
}

fn define(envoy: ConfigEnvoyPtr, name: &str, kind: Kind) -> Option<usize> {
    let cb = abi::callbacks()?;
    let define = match kind {
        Kind::Counter => cb.define_counter,
        Kind::Gauge => cb.define_gauge,
        Kind::Histogram => cb.define_histogram,
    };
    let mut id = 0usize;
    // SAFETY: the name is valid for the call (Envoy copies it); no labels; `id` is a valid
    // out-pointer.
    let result = unsafe {
        define(
            envoy,
            ModuleBuffer::of(name.as_bytes()),
            std::ptr::null_mut(),
            0,
            &mut id,
        )
    };
    if result != abi::METRICS_SUCCESS {
        log::warn!("could not define metric {name} ({result})");
        return None;
    }
    Some(id)
}

/// Compiles a gateway configuration, logging every error; `announce` logs what it serves.
fn compile(cfg: &GatewayConfig, announce: bool) -> Option<StageSet> {
    let compiled = match StageSet::compile_texts(cfg) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                log::error!("invalid configuration: {e}");
            }
            return None;
        }
    };
    let mut set = compiled.set;
    if let Err(e) = set.load_credentials(&|name| std::env::var(name).ok()) {
        log::error!("invalid configuration: {e}");
        return None;
    }
    if announce {
        for w in &compiled.warnings {
            log::warn!("{w}");
        }
        for (i, gateway) in set.gateways().enumerate() {
            log::info!(
                "apigw-edge {} (native): serving stage `{}` through {}",
                env!("CARGO_PKG_VERSION"),
                set.label(i),
                gateway.clusters().join(", "),
            );
        }
    }
    Some(set)
}

/// One worker's compiled copy of a gateway configuration and its stores.
pub struct Worker {
    pub set: Rc<StageSet>,
    pub stores: Rc<Vec<Stores>>,
    pub ids: Rc<Ids>,
    /// When this worker last looked at its key rings (see [`super::keys::worker_tick`]).
    pub keys_ticked: std::cell::Cell<u64>,
}

thread_local! {
    static WORKERS: RefCell<Vec<(u64, Rc<Worker>)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's copy of `cfg`'s gateway, compiled on first use.
pub fn worker(cfg: &NativeConfig) -> Option<Rc<Worker>> {
    let Role::Gateway(gateway) = &cfg.role else {
        return None;
    };
    if let Some(w) = WORKERS.with(|w| {
        w.borrow()
            .iter()
            .find(|(id, _)| *id == cfg.id)
            .map(|(_, w)| w.clone())
    }) {
        return Some(w);
    }
    let set = compile(gateway, false)?;
    let stores = Stores::for_set(&set);
    let worker = Rc::new(Worker {
        set: Rc::new(set),
        stores: Rc::new(stores),
        ids: Rc::new(Ids::seeded(seed())),
        keys_ticked: std::cell::Cell::new(0),
    });
    let live: Vec<u64> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    WORKERS.with(|w| {
        let mut w = w.borrow_mut();
        // Copies of configurations Envoy has dropped go with the next new one.
        w.retain(|(id, _)| live.contains(id));
        w.push((cfg.id, worker.clone()));
    });
    Some(worker)
}

fn seed() -> u64 {
    let mut seed = [0u8; 8];
    if getrandom::fill(&mut seed).is_err() {
        log::warn!("no randomness; request ids are seeded from the clock");
        return super::filter::now_ms();
    }
    u64::from_le_bytes(seed)
}
