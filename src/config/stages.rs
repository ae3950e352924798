//! Several stages, and canaries, in one deployment file.
//!
//! Owns: expanding a deployment into one single-stage deployment per stage and per canary
//! ([`Variant`]), the checks that only make sense across stages (names, base path mappings,
//! canary shares), and where a variant's own settings are written in the file, so that an
//! error found while compiling a variant names the field the user wrote
//! (`deployment.stages[1].cache.capacityMiB`). A file without `stages` is one variant, as
//! it always was. Must not: compile a variant, read files or look at requests.

use std::collections::BTreeSet;

use super::{CanarySettings, Deployment};
use crate::error::ConfigError;

/// Which side of a canary release a variant serves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum CanaryRole {
    /// The stage has no canary.
    #[default]
    None,
    /// The stage's own deployment, on a stage with a canary.
    Base,
    /// The canary, serving `per_million` of the stage's requests.
    Canary { per_million: u32 },
}

/// One stage, or one stage's canary, as a deployment of its own.
#[derive(Debug, Clone)]
pub struct Variant {
    /// A deployment with one stage and no canary ([`Deployment::canary_role`] says which
    /// side it is).
    pub deployment: Deployment,
    /// The export it serves, as the file names it; `None`: the top-level `openapi`.
    pub export: Option<String>,
    /// The custom domain of its base path mapping.
    pub domain: Option<String>,
    /// Locations of the variant's own settings: an error at the first is reported at the
    /// second.
    moved: Vec<(String, String)>,
}

impl Variant {
    /// Reports `e` at the field the user wrote.
    pub fn relocate(&self, mut e: ConfigError) -> ConfigError {
        for (from, to) in &self.moved {
            if let Some(rest) = e.location.strip_prefix(from.as_str()) {
                if rest.is_empty() || rest.starts_with('.') || rest.starts_with('[') {
                    e.location = format!("{to}{rest}");
                    return e;
                }
            }
        }
        if let (Some(path), true) = (&self.export, e.location.starts_with("openapi")) {
            e.message = format!("{} (export {path})", e.message);
        }
        e
    }

    /// A short name for logs and stats: `prod`, or `prod.canary`.
    pub fn label(&self) -> String {
        match self.deployment.canary_role {
            CanaryRole::Canary { .. } => format!("{}.canary", self.deployment.stage),
            _ => self.deployment.stage.clone(),
        }
    }
}

/// Largest share a canary can take, in millionths.
const MILLION: f64 = 1_000_000.0;

/// The variants a deployment serves, in the order requests look for their stage: each
/// stage, followed by its canary when it has one.
pub fn variants(d: &Deployment) -> Result<Vec<Variant>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    if d.stages.is_empty() {
        if d.stage.is_empty() {
            errors.push(ConfigError::new(
                "deployment.stage",
                "missing field (or give `stages`)",
            ));
        }
        let mut only = d.clone();
        only.canary_settings = None;
        push_stage(
            &mut out,
            Variant {
                deployment: only,
                export: None,
                domain: None,
                moved: Vec::new(),
            },
            d.canary_settings.as_ref(),
            "deployment.canarySettings",
            &mut errors,
        );
        return if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        };
    }
    if !d.stage.is_empty() {
        errors.push(ConfigError::new(
            "deployment.stage",
            "give `stage` or `stages`, not both",
        ));
    }
    if d.canary_settings.is_some() {
        errors.push(ConfigError::new(
            "deployment.canarySettings",
            "with `stages`, each stage has its own canarySettings",
        ));
    }
    if d.base_path.is_some() {
        errors.push(ConfigError::new(
            "deployment.basePath",
            "with `stages`, each stage has its own basePath",
        ));
    }
    let mut names = BTreeSet::new();
    let mut mappings = BTreeSet::new();
    for (i, s) in d.stages.iter().enumerate() {
        let at = format!("deployment.stages[{i}]");
        if !names.insert(s.name.as_str()) {
            errors.push(ConfigError::new(
                format!("{at}.name"),
                format!("stage `{}` is declared twice", s.name),
            ));
        }
        let mapping = (
            s.domain_name.as_deref().map(str::to_ascii_lowercase),
            s.base_path
                .as_deref()
                .map(|p| p.trim_end_matches('/').to_string()),
        );
        if mapping.1.is_some() && !mappings.insert(mapping.clone()) {
            errors.push(ConfigError::new(
                format!("{at}.basePath"),
                "another stage has the same domainName and basePath",
            ));
        }
        if s.domain_name.is_some() && s.base_path.is_none() {
            errors.push(ConfigError::new(
                format!("{at}.domainName"),
                "a custom domain needs a basePath (`/` for the empty mapping)",
            ));
        }
        let mut own = d.clone();
        own.stages = Vec::new();
        own.canary_settings = None;
        own.stage = s.name.clone();
        own.base_path = s.base_path.clone();
        let mut moved = vec![
            ("deployment.stage".to_string(), format!("{at}.name")),
            ("deployment.basePath".to_string(), format!("{at}.basePath")),
        ];
        for (k, v) in &s.stage_variables {
            own.stage_variables.insert(k.clone(), v.clone());
            moved.push((
                format!("deployment.stageVariables.{k}"),
                format!("{at}.stageVariables.{k}"),
            ));
        }
        if let Some(c) = &s.cache {
            own.cache = Some(c.clone());
            moved.push(("deployment.cache".into(), format!("{at}.cache")));
        }
        if let Some(t) = &s.throttle {
            own.throttle = Some(t.clone());
            moved.push(("deployment.throttle".into(), format!("{at}.throttle")));
        }
        if let Some(a) = &s.access_log_settings {
            own.access_log_settings = Some(a.clone());
            moved.push((
                "deployment.accessLogSettings".into(),
                format!("{at}.accessLogSettings"),
            ));
        }
        if let Some(t) = s.data_trace_enabled {
            own.data_trace_enabled = t;
        }
        push_stage(
            &mut out,
            Variant {
                deployment: own,
                export: s.openapi.clone(),
                domain: s.domain_name.clone(),
                moved,
            },
            s.canary_settings.as_ref(),
            &format!("{at}.canarySettings"),
            &mut errors,
        );
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Adds a stage and, when it has one, its canary.
fn push_stage(
    out: &mut Vec<Variant>,
    mut stage: Variant,
    canary: Option<&CanarySettings>,
    at: &str,
    errors: &mut Vec<ConfigError>,
) {
    let Some(c) = canary else {
        out.push(stage);
        return;
    };
    if !(0.0..=100.0).contains(&c.percent_traffic) {
        errors.push(ConfigError::new(
            format!("{at}.percentTraffic"),
            "expected a share from 0.0 to 100.0",
        ));
    }
    stage.deployment.canary_role = CanaryRole::Base;
    let mut canary = stage.clone();
    // In range after the check above; the cast saturates otherwise.
    let per_million = (c.percent_traffic.clamp(0.0, 100.0) / 100.0 * MILLION).round() as u32;
    canary.deployment.canary_role = CanaryRole::Canary { per_million };
    for (k, v) in &c.stage_variable_overrides {
        canary
            .deployment
            .stage_variables
            .insert(k.clone(), v.clone());
        canary.moved.insert(
            0,
            (
                format!("deployment.stageVariables.{k}"),
                format!("{at}.stageVariableOverrides.{k}"),
            ),
        );
    }
    if !c.use_stage_cache {
        canary.deployment.cache = None;
    }
    if let Some(path) = &c.openapi {
        canary.export = Some(path.clone());
    }
    out.push(stage);
    out.push(canary);
}

#[cfg(test)]
mod tests;
