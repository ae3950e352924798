//! The deployment file and the filter configuration that carries it.
//!
//! Owns: the deployment-file schema (serde, unknown fields rejected), its field-level
//! validation, and the filter configuration envelope `{"deployment": …, "openapi": …}` that
//! the CLI renders into Envoy and the filter parses in `on_configure`. Errors name the field
//! (`deployment.lambda.endpoint: …`) so Envoy's log and `apigw-edge validate` say the same.
//! Must not: read files (the CLI does) or look at the OpenAPI export (see [`crate::openapi`]).

mod deployment;
mod stages;

pub use deployment::{
    AccessLogSettings, Api, ApiKey, AwsServices, CacheSettings, CanarySettings, CertificateFiles,
    CheckFailure, CorsSettings, CredentialProvider, CredentialSettings, Deployment, EnvoySettings,
    Forwarding, FunctionSpec, FunctionTarget, HttpBackends, JwtIssuer, JwtPool, JwtSettings,
    Lambda, LambdaTls, Limits, ListenerTls, MethodCacheSettings, QuotaPeriod, QuotaSettings,
    RateLimitService, ResourcePolicySettings, SigningMode, StageSettings, StageThrottle, Throttle,
    UnauthorizedStrategy, UrlAuthType, UsagePlan, UsageSettings, DEFAULT_MAX_BODY_BYTES,
};

pub use stages::{variants, CanaryRole, Variant};

use serde_json::Value;

use crate::control::ControlConfig;
use crate::error::ConfigError;

/// The two roles of the filter: serving the API, or the control listener.
#[derive(Debug)]
pub enum PluginConfig {
    Gateway(Box<GatewayConfig>),
    Control(ControlConfig),
}

/// A gateway's plugin configuration as the filter reads it: the deployment, and the text of
/// each export it serves (read path by path when each variant is compiled, see
/// [`crate::openapi::parse_text`], never as one JSON tree).
#[derive(Debug)]
pub struct GatewayConfig {
    pub deployment: Deployment,
    /// The top-level export.
    pub openapi: String,
    /// Exports of stages and canaries that serve their own, by the path the file names.
    pub exports: std::collections::BTreeMap<String, String>,
}

impl GatewayConfig {
    /// The text of the export `path` names (`None`: the top-level one).
    pub fn export_text(&self, path: Option<&str>) -> Result<&str, ConfigError> {
        match path {
            None => Ok(&self.openapi),
            Some(p) => self.exports.get(p).map(String::as_str).ok_or_else(|| {
                ConfigError::new(
                    format!("configuration.exports.{p}"),
                    "missing: the deployment names this export",
                )
            }),
        }
    }
}

/// Parses a plugin configuration of either role: `{"control": {...}}` is the control
/// listener, anything else must be a gateway configuration.
pub fn parse_plugin_config(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope {
        control: Value,
    }
    if let Ok(Envelope { control }) = serde_json::from_slice::<Envelope>(bytes) {
        return serde_path_to_error::deserialize(control)
            .map(PluginConfig::Control)
            .map_err(|e| {
                ConfigError::new(
                    format!("configuration.control.{}", e.path()),
                    e.into_inner().to_string(),
                )
            });
    }
    parse_gateway_config(bytes).map(|c| PluginConfig::Gateway(Box::new(c)))
}

/// Parses a gateway configuration without building a tree of the export.
pub fn parse_gateway_config(bytes: &[u8]) -> Result<GatewayConfig, ConfigError> {
    use serde_json::value::RawValue;
    let map: std::collections::BTreeMap<String, &RawValue> = serde_json::from_slice(bytes)
        .map_err(|e| {
            ConfigError::new(
                "configuration",
                format!(
                    "not valid JSON, or not an object with \"deployment\" and \"openapi\": {e}"
                ),
            )
        })?;
    let (deployment, openapi, exports) = envelope(map)?;
    let deployment: Value = serde_json::from_str(deployment.get())
        .map_err(|e| ConfigError::new("configuration.deployment", e.to_string()))?;
    let exports = match exports {
        None => Default::default(),
        Some(raw) => {
            let map: std::collections::BTreeMap<String, &RawValue> =
                serde_json::from_str(raw.get()).map_err(|e| {
                    ConfigError::new("configuration.exports", format!("expected an object: {e}"))
                })?;
            map.into_iter()
                .map(|(k, v)| (k, v.get().to_string()))
                .collect()
        }
    };
    Ok(GatewayConfig {
        deployment: parse_deployment(deployment)?,
        openapi: openapi.get().to_string(),
        exports,
    })
}

/// The members of the envelope: `deployment`, `openapi` and, when stages serve exports
/// of their own, `exports`; any other member is an error.
fn envelope<V>(
    mut map: std::collections::BTreeMap<String, V>,
) -> Result<(V, V, Option<V>), ConfigError> {
    if let Some(extra) = map
        .keys()
        .find(|k| !["deployment", "openapi", "exports"].contains(&k.as_str()))
    {
        return Err(ConfigError::new(
            format!("configuration.{extra}"),
            "unknown field, expected `deployment`, `openapi` or `exports`",
        ));
    }
    let deployment = map
        .remove("deployment")
        .ok_or_else(|| ConfigError::new("configuration.deployment", "missing field"))?;
    let openapi = map
        .remove("openapi")
        .ok_or_else(|| ConfigError::new("configuration.openapi", "missing field"))?;
    Ok((deployment, openapi, map.remove("exports")))
}

/// What the filter receives as its plugin configuration.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub deployment: Deployment,
    pub openapi: Value,
    /// Exports of stages and canaries that serve their own, by the path the file names.
    pub exports: std::collections::BTreeMap<String, Value>,
}

/// Parses a deployment from a JSON value (the CLI converts YAML to JSON first), reporting the
/// path of the offending field.
pub fn parse_deployment(value: Value) -> Result<Deployment, ConfigError> {
    let deployment: Deployment = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let location = if path == "." {
            "deployment".to_string()
        } else {
            format!("deployment.{path}")
        };
        ConfigError::new(location, e.into_inner().to_string())
    })?;
    Ok(deployment)
}

/// Parses the filter's plugin configuration.
pub fn parse_filter_config(bytes: &[u8]) -> Result<FilterConfig, ConfigError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ConfigError::new("configuration", format!("not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ConfigError::new(
            "configuration",
            "expected a JSON object with \"deployment\" and \"openapi\"",
        ));
    };
    let (deployment, openapi, exports) = envelope(map.into_iter().collect())?;
    let exports = match exports {
        None => Default::default(),
        Some(Value::Object(m)) => m.into_iter().collect(),
        Some(_) => {
            return Err(ConfigError::new(
                "configuration.exports",
                "expected an object of exports by path",
            ))
        }
    };
    Ok(FilterConfig {
        deployment: parse_deployment(deployment)?,
        openapi,
        exports,
    })
}

impl FilterConfig {
    /// The JSON the filter expects, as rendered into Envoy's configuration: the export in
    /// its slim form ([`crate::openapi::slim`]).
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({ "deployment": self.deployment, "openapi": crate::openapi::slim(&self.openapi) });
        if let (false, Some(obj)) = (self.exports.is_empty(), v.as_object_mut()) {
            let exports: serde_json::Map<String, Value> = self
                .exports
                .iter()
                .map(|(k, doc)| (k.clone(), crate::openapi::slim(doc)))
                .collect();
            obj.insert("exports".into(), Value::Object(exports));
        }
        v
    }

    /// A configuration of one stage that serves the top-level export.
    pub fn single(deployment: Deployment, openapi: Value) -> Self {
        FilterConfig {
            deployment,
            openapi,
            exports: Default::default(),
        }
    }

    /// The export `path` names (`None`: the top-level one).
    pub fn export(&self, path: Option<&str>) -> Result<&Value, ConfigError> {
        match path {
            None => Ok(&self.openapi),
            Some(p) => self.exports.get(p).ok_or_else(|| {
                ConfigError::new(
                    format!("configuration.exports.{p}"),
                    "missing: the deployment names this export",
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"openapi": "api.json", "stage": "prod", "lambda": {"endpoint": "http://127.0.0.1:9000"}})
    }

    #[test]
    fn minimal_deployment_gets_defaults() {
        let d = parse_deployment(minimal()).unwrap();
        assert_eq!(d.stage, "prod");
        assert_eq!(d.listen, "127.0.0.1:8080");
        assert_eq!(d.api.id, "local");
        assert!(d.base_path.is_none());
        assert_eq!(d.limits.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn unknown_fields_are_named() {
        for (patch, location) in [
            (json!({"stagez": "x"}), "deployment.stagez"),
            (
                json!({"lambda": {"endpoint": "http://x:1", "timeout": 3}}),
                "deployment.lambda.timeout",
            ),
            (
                json!({"api": {"id": "a", "acount": "1"}}),
                "deployment.api.acount",
            ),
        ] {
            let mut v = minimal();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let err = parse_deployment(v).unwrap_err();
            assert_eq!(err.location, location, "{err}");
            assert!(err.message.contains("unknown field"), "{err}");
        }
    }

    #[test]
    fn wrong_types_are_named() {
        let mut v = minimal();
        v["stageVariables"] = json!({"fn": 3});
        let err = parse_deployment(v).unwrap_err();
        assert_eq!(err.location, "deployment.stageVariables.fn");
    }

    #[test]
    fn control_role_is_recognised() {
        let c = parse_plugin_config(br#"{"control": {"apiId": "a", "stage": "s"}}"#).unwrap();
        assert!(matches!(c, PluginConfig::Control(c) if c.stage == "s"));
        let err = parse_plugin_config(br#"{"control": {"apiId": "a", "stage": "s", "x": 1}}"#)
            .unwrap_err();
        assert!(err.location.starts_with("configuration.control"), "{err}");
        let err = parse_plugin_config(br#"{"openapi": {}}"#).unwrap_err();
        assert_eq!(err.location, "configuration.deployment");
    }

    #[test]
    fn stage_exports_travel_in_the_envelope() {
        let mut cfg =
            FilterConfig::single(parse_deployment(minimal()).unwrap(), json!({"paths": {}}));
        cfg.exports
            .insert("old.json".into(), json!({"paths": {"/a": {}}}));
        let bytes = serde_json::to_vec(&cfg.to_json()).unwrap();
        let back = parse_filter_config(&bytes).unwrap();
        assert_eq!(back.exports.len(), 1);
        let read = parse_gateway_config(&bytes).unwrap();
        assert!(read.export_text(Some("old.json")).unwrap().contains("/a"));
        assert!(read.export_text(None).unwrap().contains("paths"));
        let err = read.export_text(Some("new.json")).unwrap_err();
        assert_eq!(err.location, "configuration.exports.new.json");
        // A single-stage configuration has no `exports` member.
        let single =
            FilterConfig::single(parse_deployment(minimal()).unwrap(), json!({"paths": {}}));
        assert!(single.to_json().get("exports").is_none());
    }

    #[test]
    fn envelope_rejects_extra_and_missing_keys() {
        let err = parse_filter_config(br#"{"deployment": {}, "openapi": {}, "x": 1}"#).unwrap_err();
        assert_eq!(err.location, "configuration.x");
        let err =
            parse_filter_config(br#"{"deployment": {}, "openapi": {}, "exports": 1}"#).unwrap_err();
        assert_eq!(err.location, "configuration.exports");
        let err =
            parse_gateway_config(br#"{"deployment": {}, "openapi": {}, "x": 1}"#).unwrap_err();
        assert_eq!(err.location, "configuration.x");
        let err = parse_filter_config(br#"{"openapi": {}}"#).unwrap_err();
        assert_eq!(err.location, "configuration.deployment");
        let err = parse_filter_config(b"not json").unwrap_err();
        assert_eq!(err.location, "configuration");
    }
}
