//! The stages one gateway serves, and which of them takes a request.
//!
//! Owns: compiling each variant of a deployment (every stage, every canary; see
//! [`crate::config::variants`]) into its own [`Gateway`], with errors reported at the
//! fields the user wrote, and choosing a request's variant: the stage whose custom domain
//! and base path match the request (a domain-bound mapping before a domain-less one, the
//! longest base path first; execute-api stages by their first path segment), then, on a
//! stage with a canary, the canary when the roll the glue drew is within its share. A
//! request no stage takes goes to the first, whose routing answers it. Must not: call the
//! host, read clocks or draw random numbers (the roll is passed in).

use std::rc::Rc;

use crate::config::{variants, CanaryRole, FilterConfig, GatewayConfig, Variant};
use crate::error::ConfigError;
use crate::gateway::Gateway;
use crate::openapi::{self, Parsed};

/// A roll is drawn from `0..ROLLS` (one per request on stages with a canary).
pub const ROLLS: u32 = 1_000_000;

#[derive(Debug)]
struct Entry {
    gateway: Rc<Gateway>,
    /// The custom domain of the stage's mapping, lower case.
    domain: Option<String>,
    canary: CanaryRole,
    label: String,
    /// The export it serves, as the file names it (`None`: the top-level one).
    export: Option<String>,
}

/// Every variant of a deployment, compiled.
#[derive(Debug)]
pub struct StageSet {
    entries: Vec<Entry>,
    /// The access log files, in order: variant lines go under
    /// [`crate::access_log::state_name`] of their file's index.
    access_logs: Vec<String>,
    /// The longest integration timeout of any variant: the forwarding route's own.
    longest_timeout_ms: u64,
}

/// A compiled set plus the warnings compilation produced.
#[derive(Debug)]
pub struct CompiledSet {
    pub set: StageSet,
    pub warnings: Vec<ConfigError>,
}

impl StageSet {
    /// Compiles a configuration as the CLI holds it (exports as JSON trees).
    pub fn compile(cfg: &FilterConfig) -> Result<CompiledSet, Vec<ConfigError>> {
        Self::compile_with(&cfg.deployment, |path| cfg.export(path).map(openapi::parse))
    }

    /// Compiles a configuration as the filter reads it (exports as text).
    pub fn compile_texts(cfg: &GatewayConfig) -> Result<CompiledSet, Vec<ConfigError>> {
        Self::compile_with(&cfg.deployment, |path| {
            openapi::parse_text(cfg.export_text(path)?)
        })
    }

    fn compile_with(
        d: &crate::config::Deployment,
        export: impl Fn(Option<&str>) -> Result<Parsed, ConfigError>,
    ) -> Result<CompiledSet, Vec<ConfigError>> {
        let variants = variants(d)?;
        let mut errors: Vec<ConfigError> = Vec::new();
        let mut warnings: Vec<ConfigError> = Vec::new();
        let mut entries = Vec::with_capacity(variants.len());
        let mut access_logs: Vec<String> = Vec::new();
        for v in &variants {
            let Variant {
                deployment, domain, ..
            } = v;
            let parsed = match export(v.export.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    push_new(&mut errors, v.relocate(e));
                    continue;
                }
            };
            match Gateway::compile_parsed(deployment, parsed) {
                Ok(mut c) => {
                    for w in c.warnings {
                        push_new(&mut warnings, v.relocate(w));
                    }
                    if let Some(a) = &deployment.access_log_settings {
                        let i = match access_logs.iter().position(|p| *p == a.path) {
                            Some(i) => i,
                            None => {
                                access_logs.push(a.path.clone());
                                access_logs.len() - 1
                            }
                        };
                        c.gateway
                            .set_access_log_state(crate::access_log::state_name(i));
                    }
                    entries.push(Entry {
                        gateway: Rc::new(c.gateway),
                        domain: domain.as_deref().map(str::to_ascii_lowercase),
                        canary: deployment.canary_role,
                        label: v.label(),
                        export: v.export.clone(),
                    });
                }
                Err(es) => {
                    for e in es {
                        push_new(&mut errors, v.relocate(e));
                    }
                }
            }
        }
        if errors.is_empty() {
            let longest_timeout_ms = entries
                .iter()
                .map(|e| e.gateway.max_integration_timeout_ms())
                .max()
                .unwrap_or(0);
            Ok(CompiledSet {
                set: StageSet {
                    entries,
                    access_logs,
                    longest_timeout_ms,
                },
                warnings,
            })
        } else {
            Err(errors)
        }
    }

    /// The access log files the variants write to, in the order of their state names.
    pub fn access_log_paths(&self) -> &[String] {
        &self.access_logs
    }

    /// The longest integration timeout of any variant, in milliseconds: the rendered
    /// forwarding route's timeout, which a forwarded request with that timeout need not
    /// repeat in a header.
    pub fn longest_timeout_ms(&self) -> u64 {
        self.longest_timeout_ms
    }

    /// How many variants (stages and canaries) there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty (never, once compiled).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Each variant's gateway, in order.
    pub fn gateways(&self) -> impl Iterator<Item = &Rc<Gateway>> {
        self.entries.iter().map(|e| &e.gateway)
    }

    /// The gateway of variant `i`.
    pub fn gateway(&self, i: usize) -> Option<&Rc<Gateway>> {
        self.entries.get(i).map(|e| &e.gateway)
    }

    /// Variant `i`'s gateway, taken out of the set.
    pub fn into_gateway(self, i: usize) -> Option<Gateway> {
        let entry = self.entries.into_iter().nth(i)?;
        Rc::try_unwrap(entry.gateway).ok()
    }

    /// Variant `i`'s name for logs and stats (`prod`, `prod.canary`).
    pub fn label(&self, i: usize) -> &str {
        self.entries.get(i).map_or("", |e| e.label.as_str())
    }

    /// The variants' names, in order.
    pub fn labels(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.label.as_str()).collect()
    }

    /// Whether variant `i` is a canary that shares the stage before it's cache.
    pub fn shares_stage_cache(&self, i: usize) -> bool {
        matches!(
            self.entries.get(i).map(|e| e.canary),
            Some(CanaryRole::Canary { .. })
        ) && self
            .entries
            .get(i)
            .is_some_and(|e| e.gateway.stage_cache().is_some())
    }

    /// Whether choosing a variant needs a roll (some stage has a canary).
    pub fn rolls(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.canary, CanaryRole::Canary { .. }))
    }

    /// The stage variant `name` (not its canary).
    pub fn stage(&self, name: &str) -> Option<&Rc<Gateway>> {
        self.gateway(self.stage_index(name)?)
    }

    /// The index of stage `name`'s variant (not its canary).
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| {
            e.gateway.stage_name() == name && !matches!(e.canary, CanaryRole::Canary { .. })
        })
    }

    /// The export variant `i` serves, as the file names it (`None`: the top-level one).
    pub fn export_path(&self, i: usize) -> Option<&str> {
        self.entries.get(i).and_then(|e| e.export.as_deref())
    }

    /// The names of the stages, in order.
    pub fn stage_names(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| !matches!(e.canary, CanaryRole::Canary { .. }))
            .map(|e| e.gateway.stage_name())
            .collect()
    }

    /// Loads each variant's credentials (see [`Gateway::load_credentials`]); before the
    /// gateways are shared.
    pub fn load_credentials(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for e in &mut self.entries {
            let Some(g) = Rc::get_mut(&mut e.gateway) else {
                return Err(ConfigError::new(
                    "configuration",
                    "credentials are loaded before the gateway serves",
                ));
            };
            g.load_credentials(lookup)?;
        }
        Ok(())
    }

    /// The variant that serves a request to `authority` (the `Host`) and `path`, given a
    /// roll drawn from `0..ROLLS` (only read on stages with a canary).
    pub fn pick(&self, authority: &str, path: &str, roll: u32) -> usize {
        if self.entries.len() < 2 {
            return 0;
        }
        let path = path.split('?').next().unwrap_or_default();
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |(h, _)| h);
        let mut best: Option<((bool, usize), usize)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if matches!(e.canary, CanaryRole::Canary { .. }) {
                continue;
            }
            let bound = match &e.domain {
                Some(d) if !d.eq_ignore_ascii_case(host) => continue,
                Some(_) => true,
                None => false,
            };
            let Some(taken) = e.gateway.base_path_match(path) else {
                continue;
            };
            let score = (bound, taken);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, i));
            }
        }
        let i = best.map_or(0, |(_, i)| i);
        match self.entries.get(i + 1).map(|e| e.canary) {
            Some(CanaryRole::Canary { per_million }) if roll < per_million => i + 1,
            _ => i,
        }
    }
}

/// Adds `e` unless the same error is already there (every variant compiles the shared
/// settings again).
fn push_new(list: &mut Vec<ConfigError>, e: ConfigError) {
    if !list
        .iter()
        .any(|x| x.location == e.location && x.message == e.message)
    {
        list.push(e);
    }
}

#[cfg(test)]
mod tests;
