//! Serde structs of the deployment file. Every struct rejects unknown fields; defaults live
//! here and are documented in the README's deployment-file reference.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Largest request body accepted by default: API Gateway's 10 MB payload limit.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// A deployment: which export, which stage, where Lambda is.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Deployment {
    /// Path of the OpenAPI export (JSON or YAML), relative to the deployment file.
    pub openapi: String,
    /// Stage name: alphanumerics, `-` and `_`, at most 128 characters.
    pub stage: String,
    /// Stage variables: `${stageVariables.x}` in integration URIs, `stageVariables` in events.
    #[serde(default)]
    pub stage_variables: BTreeMap<String, String>,
    /// Custom-domain base path mapping (`/v1`, or `/` for the empty mapping). Absent: the
    /// execute-api style, where the first path segment is the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    /// Identity of the API as events report it.
    #[serde(default)]
    pub api: Api,
    /// Where the Lambda Invoke API is.
    pub lambda: Lambda,
    /// Listener address of the rendered Envoy configuration (loopback by default).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Envoy admin address of the rendered configuration.
    #[serde(default = "default_admin")]
    pub admin: String,
    #[serde(default)]
    pub limits: Limits,
    /// Settings used only when rendering and running Envoy.
    #[serde(default)]
    pub envoy: EnvoySettings,
}

/// Identity of the API in `requestContext`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Api {
    #[serde(default = "default_api_id")]
    pub id: String,
    #[serde(default = "default_account")]
    pub account_id: String,
    #[serde(default = "default_region")]
    pub region: String,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            id: default_api_id(),
            account_id: default_account(),
            region: default_region(),
        }
    }
}

/// The Lambda Invoke API endpoint and how function ARNs map onto it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Lambda {
    /// `http://host:port` (local emulators) or `https://lambda.<region>.amazonaws.com`.
    pub endpoint: String,
    /// Optional mapping keyed by function ARN, `name:qualifier` or name.
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionTarget>,
}

/// Where one function is invoked: a new name, or a name plus its own endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum FunctionTarget {
    Name(String),
    #[serde(rename_all = "camelCase")]
    Full {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
    },
}

/// Request limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Largest request body in bytes; larger bodies get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Envoy process settings for `render` and `run`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvoySettings {
    /// Worker threads (one wasm VM each).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Envoy log level (`trace` … `off`).
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

impl Default for EnvoySettings {
    fn default() -> Self {
        EnvoySettings {
            concurrency: default_concurrency(),
            log_level: default_log_level(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_admin() -> String {
    "127.0.0.1:9901".into()
}
fn default_api_id() -> String {
    "local".into()
}
fn default_account() -> String {
    "123456789012".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_max_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_concurrency() -> u32 {
    1
}
fn default_log_level() -> String {
    "info".into()
}
