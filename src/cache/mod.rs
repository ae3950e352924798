//! The stage response cache, as API Gateway's stage cache behaves.
//!
//! Owns: compiling the deployment's `cache` settings and the export's `cacheKeyParameters`
//! into per-method rules ([`RouteCache`]) once; deciding per request whether to look up,
//! refresh (`Cache-Control: max-age=0` from a caller allowed to invalidate) or refuse
//! (`FAIL_WITH_403`); and naming and ordering the shared-data cells that carry invalidation
//! generations and the stage's change epoch across workers. Submodules own key derivation
//! ([`key`]) and the per-worker byte-bounded LRU ([`store`]). Must not: touch the host or
//! read clocks: the glue reads shared data through [`crate::shared::SharedCells`] and passes
//! `now` in.

pub mod key;
pub mod store;

use std::collections::BTreeMap;

pub use key::{KeyParam, KeySource};
pub use store::{Generations, Lookup, ResponseCache, Stamp, Stored};

use crate::apikeys::ApiKeys;
use crate::config::{CacheSettings, MethodCacheSettings, UnauthorizedStrategy};
use crate::error::ConfigError;
use crate::http::header;
use crate::openapi::{resolve_method_key, Method, MethodKey, Operation};
use crate::shared::{self, CellError, SharedCells};

/// API Gateway's largest cache TTL.
pub const MAX_TTL_SECONDS: u32 = 3600;
/// Largest per-worker capacity accepted, in MiB.
pub const MAX_CAPACITY_MIB: u32 = 16 * 1024;
/// Something the stage cache did, for its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    Hit,
    Miss,
    Invalidate,
    Flush,
    /// Shared data failed; the request bypassed the cache.
    Error,
}

/// Invalidation slots per stage: the bounded key space in shared data (plus one flush cell).
pub const SLOTS: u32 = 1024;
/// Opt-in response header saying what the cache did.
pub const DEBUG_HEADER: &str = "X-Apigw-Edge-Cache";
/// Sent under `SUCCEED_WITH_RESPONSE_HEADER` when an invalidation was not allowed.
pub const WARNING: (&str, &str) = (
    "Warning",
    "199 apigw-edge \"Cache-Control: max-age=0 ignored: caller is not authorized to invalidate the cache\"",
);

/// The stage cache: capacity, who may invalidate, where the generations live.
#[derive(Debug, Clone)]
pub struct StageCache {
    /// Bytes each worker's store may hold.
    pub capacity_bytes: usize,
    pub debug_header: bool,
    invalidators: Vec<String>,
    prefix: String,
    /// The stage flush cell's name, built once.
    flush_cell: String,
    /// The stage epoch cell's name, built once.
    epoch_cell: String,
}

/// The cache rule of one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCache {
    pub ttl_ms: u64,
    pub require_authorization: bool,
    pub strategy: UnauthorizedStrategy,
    pub params: Vec<KeyParam>,
}

/// What the cache does for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serve a stored answer if there is a current one; store a fresh one otherwise.
    Lookup,
    /// Invalidate the key on every worker, fetch fresh, store the answer.
    Refresh,
}

/// A cached method's plan for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePlan {
    pub key: String,
    pub slot: u32,
    pub ttl_ms: u64,
    pub mode: Mode,
    /// Add [`WARNING`] to the reply: an invalidation was asked for and ignored.
    pub warn: bool,
}

/// The decision for a request to a cached method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Use(CachePlan),
    /// `FAIL_WITH_403`: an unauthorized caller asked to invalidate.
    Forbidden,
}

/// The shared-data prefix of a stage's cache cells.
pub fn shared_prefix(api_id: &str, stage: &str) -> String {
    format!("apigw-edge/{api_id}/{stage}/cache/")
}

/// The shared-data cell of the stage flush generation.
pub fn flush_cell(prefix: &str) -> String {
    format!("{prefix}flush")
}

/// The shared-data cell of the stage's change epoch: moved after every flush and every slot
/// invalidation, so that a lookup that finds it unchanged since an entry was stored knows
/// nothing was invalidated without reading the entry's generations.
pub fn epoch_cell(prefix: &str) -> String {
    format!("{prefix}epoch")
}

/// Flushes a stage's cache on every worker (the control listener's action): moves the flush
/// generation, then the epoch. Returns the new flush generation.
pub fn flush(cells: &dyn SharedCells, prefix: &str) -> Result<u64, CellError> {
    let generation = shared::increment(cells, &flush_cell(prefix))?;
    shared::increment(cells, &epoch_cell(prefix))?;
    Ok(generation)
}

/// The invalidation slot of a key (FNV-1a), in `0..SLOTS`.
pub fn slot_of(key: &str) -> u32 {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (h % u64::from(SLOTS)) as u32
}

/// Whether a request asks to invalidate: a `Cache-Control` directive `max-age=0`.
pub fn wants_invalidation(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cache-control"))
        .flat_map(|(_, v)| v.split(','))
        .any(|d| {
            d.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("max-age") && value.trim().trim_matches('"') == "0"
            })
        })
}

/// One `methodSettings` field: the method's own value, else `*/*`'s (API Gateway's rule:
/// `*/*` never overrides what a method sets itself).
fn resolve<T>(
    own: Option<&MethodCacheSettings>,
    wildcard: &MethodCacheSettings,
    field: impl Fn(&MethodCacheSettings) -> Option<T>,
) -> Option<T> {
    own.and_then(&field).or_else(|| field(wildcard))
}

fn ttl_ms(seconds: u32) -> u64 {
    u64::from(seconds) * 1000
}

impl StageCache {
    /// Compiles the stage cache and each operation's rule (`None`: not cached). Key
    /// parameters are checked even when caching is off, so turning it on cannot surprise.
    pub fn compile(
        settings: Option<&CacheSettings>,
        api_keys: &ApiKeys,
        api_id: &str,
        stage: &str,
        operations: &[Operation],
        errors: &mut Vec<ConfigError>,
    ) -> (Option<StageCache>, Vec<Option<RouteCache>>) {
        let params: Vec<Vec<KeyParam>> = operations
            .iter()
            .map(|op| {
                let names = key::path_param_names(&op.resource);
                op.cache_key_parameters
                    .iter()
                    .enumerate()
                    .filter_map(|(i, text)| {
                        KeyParam::parse(text, &names)
                            .map_err(|m| {
                                errors.push(ConfigError::new(
                                    format!(
                                        "{}.x-amazon-apigateway-integration.cacheKeyParameters[{i}]",
                                        op.location
                                    ),
                                    m,
                                ))
                            })
                            .ok()
                    })
                    .collect()
            })
            .collect();
        let Some(s) = settings else {
            return (None, vec![None; operations.len()]);
        };
        if s.cache_ttl_in_seconds > MAX_TTL_SECONDS {
            errors.push(ConfigError::new(
                "deployment.cache.cacheTtlInSeconds",
                format!("at most {MAX_TTL_SECONDS} (0 disables caching)"),
            ));
        }
        if s.capacity_mib == 0 || s.capacity_mib > MAX_CAPACITY_MIB {
            errors.push(ConfigError::new(
                "deployment.cache.capacityMiB",
                format!("expected 1 to {MAX_CAPACITY_MIB} (MiB per Envoy worker)"),
            ));
        }
        for (i, id) in s.invalidators.iter().enumerate() {
            if !api_keys.contains_id(id) {
                errors.push(ConfigError::new(
                    format!("deployment.cache.invalidators[{i}]"),
                    format!("no API key with id `{id}` in deployment.apiKeys"),
                ));
            }
        }
        let mut wildcard = MethodCacheSettings::default();
        let mut specific: BTreeMap<usize, &MethodCacheSettings> = BTreeMap::new();
        for (k, m) in &s.method_settings {
            let at = format!("deployment.cache.methodSettings.{k}");
            if m.cache_ttl_in_seconds.is_some_and(|t| t > MAX_TTL_SECONDS) {
                errors.push(ConfigError::new(
                    format!("{at}.cacheTtlInSeconds"),
                    format!("at most {MAX_TTL_SECONDS} (0 disables caching)"),
                ));
            }
            match resolve_method_key(operations, k) {
                Err(msg) => errors.push(ConfigError::new(at, msg)),
                Ok(MethodKey::All) => wildcard = m.clone(),
                Ok(MethodKey::One(i)) => {
                    specific.insert(i, m);
                }
            }
        }
        let routes = operations
            .iter()
            .zip(params)
            .enumerate()
            .map(|(i, (op, params))| {
                let own = specific.get(&i).copied();
                let enabled = resolve(own, &wildcard, |m| m.caching_enabled)
                    .unwrap_or(op.method == Method::Get);
                let ttl = resolve(own, &wildcard, |m| m.cache_ttl_in_seconds)
                    .unwrap_or(s.cache_ttl_in_seconds);
                (s.enabled && enabled && ttl > 0).then(|| RouteCache {
                    ttl_ms: ttl_ms(ttl),
                    require_authorization: resolve(own, &wildcard, |m| {
                        m.require_authorization_for_cache_control
                    })
                    .unwrap_or(true),
                    strategy: resolve(own, &wildcard, |m| {
                        m.unauthorized_cache_control_header_strategy
                    })
                    .unwrap_or_default(),
                    params,
                })
            })
            .collect();
        let stage_cache = s.enabled.then(|| {
            let prefix = shared_prefix(api_id, stage);
            StageCache {
                capacity_bytes: usize::try_from(u64::from(s.capacity_mib) << 20)
                    .unwrap_or(usize::MAX),
                debug_header: s.debug_header,
                invalidators: s.invalidators.clone(),
                flush_cell: flush_cell(&prefix),
                epoch_cell: epoch_cell(&prefix),
                prefix,
            }
        });
        (stage_cache, routes)
    }

    /// Decides what the cache does for one request to a cached method.
    pub fn plan(&self, route: &RouteCache, src: &KeySource<'_>, api_keys: &ApiKeys) -> Decision {
        let key = key::derive(&route.params, src);
        let slot = slot_of(&key);
        let mut plan = CachePlan {
            key,
            slot,
            ttl_ms: route.ttl_ms,
            mode: Mode::Lookup,
            warn: false,
        };
        if !wants_invalidation(src.headers) {
            return Decision::Use(plan);
        }
        let authorized = !route.require_authorization
            || header(src.headers, "x-api-key")
                .and_then(|v| api_keys.identify(v))
                .is_some_and(|k| self.invalidators.contains(&k.id));
        if authorized {
            plan.mode = Mode::Refresh;
            return Decision::Use(plan);
        }
        match route.strategy {
            UnauthorizedStrategy::FailWith403 => Decision::Forbidden,
            UnauthorizedStrategy::SucceedWithResponseHeader => {
                plan.warn = true;
                Decision::Use(plan)
            }
            UnauthorizedStrategy::SucceedWithoutResponseHeader => Decision::Use(plan),
        }
    }

    fn slot_cell(&self, slot: u32) -> String {
        format!("{}slot/{slot}", self.prefix)
    }

    /// The current generations of a slot, read from shared data.
    pub fn generations(
        &self,
        cells: &dyn SharedCells,
        slot: u32,
    ) -> Result<Generations, CellError> {
        Ok(Generations {
            flush: shared::read(cells, &self.flush_cell)?,
            slot: shared::read(cells, &self.slot_cell(slot))?,
        })
    }

    /// Looks a planned key up in a worker's store. Reads the epoch first, the generations
    /// only when the stored entry's epoch is not the current one or when an answer will have
    /// to be fetched and stored (`Fetch` carries the stamp to store it under). The order
    /// matters: an invalidation moves its slot before the epoch, so a stamp whose epoch was
    /// read before its generations can never vouch for generations older than itself.
    pub fn lookup(
        &self,
        cells: &dyn SharedCells,
        store: &mut ResponseCache,
        plan: &CachePlan,
        now_ms: u64,
    ) -> Result<Found, CellError> {
        let epoch = shared::read(cells, &self.epoch_cell)?;
        let mut read = None;
        let found = store.get(&plan.key, now_ms, epoch, || {
            let g = self.generations(cells, plan.slot)?;
            read = Some(g);
            Ok(g)
        })?;
        let freed = match found {
            Lookup::Hit(reply) => return Ok(Found::Hit(reply)),
            Lookup::Stale(freed) => Some(freed),
            Lookup::Miss => None,
        };
        let generations = match read {
            Some(g) => g,
            None => self.generations(cells, plan.slot)?,
        };
        Ok(Found::Fetch {
            under: Stamp { epoch, generations },
            freed,
        })
    }

    /// Invalidates a slot on every worker (the slot first, then the epoch); returns the stamp
    /// to store the fresh answer under.
    pub fn invalidate(&self, cells: &dyn SharedCells, slot: u32) -> Result<Stamp, CellError> {
        let epoch = shared::read(cells, &self.epoch_cell)?;
        let slot_generation = shared::increment(cells, &self.slot_cell(slot))?;
        let flush = shared::read(cells, &self.flush_cell)?;
        shared::increment(cells, &self.epoch_cell)?;
        Ok(Stamp {
            epoch,
            generations: Generations {
                flush,
                slot: slot_generation,
            },
        })
    }
}

/// What a lookup leaves the request to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A current stored answer.
    Hit(crate::http::Reply),
    /// Fetch from the integration and store the answer under `under`; `freed` bytes of a
    /// stale entry were dropped.
    Fetch { under: Stamp, freed: Option<usize> },
}

#[cfg(test)]
mod tests;
