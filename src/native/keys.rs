//! Keeps the Cognito and JWT authorizers' key sets fresh: what the wasm build's root context
//! does on its tick. A small thread wakes Envoy's main thread every period (Envoy's
//! configuration scheduler); there the module asks for the key sets that are due with
//! callouts of the configuration and stores what comes back in the shared cells, where
//! every worker's key ring adopts it.
//!
//! Owns: the ticking and the callouts. Must not: read or judge key sets (the core's
//! [`crate::jwt::ring::KeyRing`] does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::abi::{self, ConfigEnvoyPtr, ModuleBuffer, ModuleHeader};
use super::config::{self, NativeConfig};
use super::filter::now_ms;
use crate::stats::{Kind, Op, Sink};

/// How often the key rings are looked at: soon after start-up until every key set has
/// been fetched, then at this pace.
const START_TICK_MS: u64 = 100;
const TICK_MS: u64 = 500;

/// Fetches workers asked for (configuration id, variant, source): a worker whose ring is
/// due (a token named an unknown `kid`) takes the lease as in the wasm build, and the main
/// thread, which alone can make a configuration's callouts, fetches for it.
static WANTED: Mutex<Vec<(u64, usize, usize)>> = Mutex::new(Vec::new());
/// At most this many fetches wait (each is one per source and lease).
const MAX_WANTED: usize = 1024;

/// On a worker, at most every [`START_TICK_MS`]: adopts the key sets the main thread
/// stored, and hands the fetches its ring is due for to the main thread.
pub fn worker_tick(cfg: &NativeConfig, worker: &config::Worker) {
    let now = now_ms();
    if now < worker.keys_ticked.get().saturating_add(START_TICK_MS) {
        return;
    }
    worker.keys_ticked.set(now);
    for (variant, (gateway, stores)) in worker.set.gateways().zip(worker.stores.iter()).enumerate()
    {
        let sources = gateway.jwks_sources();
        if sources.is_empty() {
            continue;
        }
        let (due, log) = stores.keys.borrow_mut().due(sources, config::cells(), now);
        for line in log {
            log::warn!("{line}");
        }
        if due.is_empty() {
            continue;
        }
        if let Ok(mut wanted) = WANTED.lock() {
            for i in due {
                let entry = (cfg.id, variant, i);
                if wanted.len() < MAX_WANTED && !wanted.contains(&entry) {
                    wanted.push(entry);
                }
            }
        }
    }
}

/// The ticking thread of one configuration, and what its callouts are for.
pub struct Refresher {
    scheduler: usize,
    stop: Arc<AtomicBool>,
    period_ms: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    /// Callouts in flight: id to variant and key set source.
    fetching: Mutex<HashMap<u64, (usize, usize)>>,
}

impl Refresher {
    /// Starts ticking for a configuration whose authorizers fetch key sets.
    pub fn start(envoy: ConfigEnvoyPtr) -> Option<Refresher> {
        let cb = abi::callbacks()?;
        // SAFETY: a plain value crosses; the scheduler is deleted in `Drop`.
        let scheduler = unsafe { (cb.config_scheduler_new)(envoy) };
        if scheduler.is_null() {
            log::warn!("no scheduler for the JWKS refresh; key sets are fetched by no one");
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let period_ms = Arc::new(AtomicU64::new(START_TICK_MS));
        let scheduler = scheduler as usize;
        let thread = {
            let (stop, period_ms) = (stop.clone(), period_ms.clone());
            std::thread::Builder::new()
                .name("apigw-edge-jwks".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::park_timeout(Duration::from_millis(
                            period_ms.load(Ordering::Relaxed),
                        ));
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        // SAFETY: the scheduler lives until `Drop` has joined this thread;
                        // committing is safe from any thread.
                        unsafe { (cb.config_scheduler_commit)(scheduler as *mut _, 0) };
                    }
                })
                .ok()
        };
        Some(Refresher {
            scheduler,
            stop,
            period_ms,
            thread,
            fetching: Mutex::new(HashMap::new()),
        })
    }

    /// On the main thread: fetches the key sets that are due.
    pub fn tick(&self, envoy: ConfigEnvoyPtr, cfg: &NativeConfig) {
        let (Some(cb), Some(worker)) = (abi::callbacks(), config::worker(cfg)) else {
            return;
        };
        let mut complete = true;
        for (variant, (gateway, stores)) in
            worker.set.gateways().zip(worker.stores.iter()).enumerate()
        {
            let sources = gateway.jwks_sources();
            if sources.is_empty() {
                continue;
            }
            let (mut due, log) = stores
                .keys
                .borrow_mut()
                .due(sources, config::cells(), now_ms());
            for line in log {
                log::warn!("{line}");
            }
            // What workers asked for (their leases are taken).
            if let Ok(mut wanted) = WANTED.lock() {
                wanted.retain(|&(id, v, i)| {
                    let mine = id == cfg.id && v == variant;
                    if mine && !due.contains(&i) {
                        due.push(i);
                    }
                    !mine
                });
            }
            for i in due {
                let Some(s) = sources.get(i) else { continue };
                let mut headers = [
                    ModuleHeader::of(":method", "GET"),
                    ModuleHeader::of(":path", &s.path),
                    ModuleHeader::of(":authority", &s.authority),
                    ModuleHeader::of("accept", "application/json"),
                    ModuleHeader::of("user-agent", "apigw-edge"),
                ];
                let mut id = 0u64;
                // SAFETY: every buffer is valid during the call (Envoy copies them); `id`
                // is a valid out-pointer.
                let result = unsafe {
                    (cb.config_http_callout)(
                        envoy,
                        &mut id,
                        ModuleBuffer::of(s.cluster.as_bytes()),
                        headers.as_mut_ptr(),
                        headers.len(),
                        ModuleBuffer::of(&[]),
                        crate::jwt::FETCH_TIMEOUT_MS,
                    )
                };
                if result == abi::CALLOUT_INIT_SUCCESS {
                    if let Ok(mut f) = self.fetching.lock() {
                        f.insert(id, (variant, i));
                    }
                    continue;
                }
                let line = stores.keys.borrow_mut().fetched(
                    sources,
                    config::cells(),
                    i,
                    now_ms(),
                    None,
                    &[],
                );
                count(envoy, cfg, true);
                log::warn!(
                    "JWKS fetch through cluster `{}` could not start ({result}): {}",
                    s.cluster,
                    line.unwrap_or_else(|e| e)
                );
            }
            complete &= stores.keys.borrow().complete();
        }
        let period = if complete { TICK_MS } else { START_TICK_MS };
        self.period_ms.store(period, Ordering::Relaxed);
    }

    /// On the main thread: a key set's answer came.
    pub fn fetched(
        &self,
        envoy: ConfigEnvoyPtr,
        cfg: &NativeConfig,
        id: u64,
        status: Option<u16>,
        body: &[u8],
    ) {
        let Some((variant, source)) = self.fetching.lock().ok().and_then(|mut f| f.remove(&id))
        else {
            return;
        };
        let Some(worker) = config::worker(cfg) else {
            return;
        };
        let (Some(gateway), Some(stores)) =
            (worker.set.gateway(variant), worker.stores.get(variant))
        else {
            return;
        };
        let limit = crate::jwt::keys::MAX_JWKS_BYTES + 1;
        let body = body.get(..limit.min(body.len())).unwrap_or_default();
        let result = stores.keys.borrow_mut().fetched(
            gateway.jwks_sources(),
            config::cells(),
            source,
            now_ms(),
            status,
            body,
        );
        count(envoy, cfg, result.is_err());
        match result {
            Ok(line) => log::info!("{line}"),
            Err(line) => log::warn!("{line}"),
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        if let Some(cb) = abi::callbacks() {
            // SAFETY: the scheduler came from scheduler_new; its thread has stopped.
            unsafe { (cb.config_scheduler_delete)(self.scheduler as *mut _) };
        }
    }
}

/// Counts one JWKS fetch (from the configuration: no stream is involved).
fn count(envoy: ConfigEnvoyPtr, cfg: &NativeConfig, failed: bool) {
    let sink = ConfigStats { envoy, cfg };
    crate::stats::apply(&sink, cfg.stats.catalogue.jwks_fetch(failed));
}

struct ConfigStats<'a> {
    envoy: ConfigEnvoyPtr,
    cfg: &'a NativeConfig,
}

impl Sink for ConfigStats<'_> {
    fn apply(&self, op: Op) {
        let Some(cb) = abi::callbacks() else { return };
        let Op::Add(i, n @ 1..) = op else {
            return;
        };
        let (Some(Some(id)), Some((_, Kind::Counter))) = (
            self.cfg.stats.ids.get(i),
            self.cfg.stats.catalogue.defs().get(i),
        ) else {
            return;
        };
        // SAFETY: plain values cross; no labels.
        unsafe {
            (cb.config_increment_counter)(
                self.envoy,
                *id,
                std::ptr::null_mut(),
                0,
                n.unsigned_abs(),
            )
        };
    }
}
