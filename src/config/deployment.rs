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
    /// Stage name: alphanumerics, `-` and `_`, at most 128 characters. A file that
    /// declares `stages` leaves it out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stage: String,
    /// Several stages served by one gateway, each with its own settings (see
    /// [`StageSettings`]); the top-level fields are what every stage starts from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSettings>,
    /// A canary release on the stage: a share of its traffic served by another
    /// deployment with stage-variable overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_settings: Option<CanarySettings>,
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
    /// Where the Lambda Invoke API is (not needed without Lambda integrations).
    #[serde(default)]
    pub lambda: Lambda,
    /// Listener address of the rendered Envoy configuration (loopback by default).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Envoy admin address of the rendered configuration.
    #[serde(default = "default_admin")]
    pub admin: String,
    #[serde(default)]
    pub limits: Limits,
    /// API keys callers may present in `x-api-key`, stored as SHA-256 hashes of their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
    /// The stage response cache; absent means off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSettings>,
    /// Methods that require an API key in addition to those the export marks
    /// (`/resource/path/METHOD` or `*/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_key_required: Vec<String>,
    /// Usage plans: which keys may call, how fast and how often.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage_plans: Vec<UsagePlan>,
    /// Stage throttling: a default per method plus per-method overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<StageThrottle>,
    /// Behaviour of usage-plan and throttle checks.
    #[serde(default)]
    pub usage: UsageSettings,
    /// A CORS policy the gateway applies itself (modelled on HTTP APIs' corsConfiguration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsSettings>,
    /// Loopback address of the control listener (stage cache flush); absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// The API's resource policy, and the network facts its conditions read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<ResourcePolicySettings>,
    /// Callers of IAM-authorised methods (`AWS_IAM`): their keys and permissions.
    #[serde(default, skip_serializing_if = "IamSettings::is_empty")]
    pub iam: IamSettings,
    /// Cognito user pool and JWT authorizers: key sources, clock skew, generic issuers.
    #[serde(default, skip_serializing_if = "JwtSettings::is_empty")]
    pub jwt: JwtSettings,
    /// TLS on the listener (a custom domain's certificate) and, with a truststore, mutual
    /// TLS: callers must present a certificate the truststore vouches for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// The certificate the gateway presents to HTTPS backends (API Gateway's client
    /// certificate of a stage), so they can tell its calls from anyone else's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<CertificateFiles>,
    /// The backends of `http` and `http_proxy` integrations.
    #[serde(default)]
    pub http: HttpBackends,
    /// The AWS services of `aws` integrations other than Lambda.
    #[serde(default)]
    pub aws: AwsServices,
    /// How integration requests leave Envoy: in place of the client's request through
    /// Envoy's router where the request allows it, or always as a second exchange. Unset,
    /// each build takes the way that costs it less ([`Forwarding::default_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,
    /// API Gateway's "full request and response logs" (`dataTraceEnabled`): each request's
    /// method request, calls, answers and method response logged at `info`.
    #[serde(default)]
    pub data_trace_enabled: bool,
    /// API Gateway's access logging: a line per request in `format`, written by Envoy's
    /// access logger to `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_settings: Option<AccessLogSettings>,
    /// Settings used only when rendering and running Envoy.
    #[serde(default)]
    pub envoy: EnvoySettings,
    /// Which side of a canary release this deployment serves (set when a file is expanded
    /// into its stages, never read from one).
    #[serde(skip)]
    pub canary_role: super::stages::CanaryRole,
}

/// One stage of a multi-stage file. Fields left out are the top-level ones; stage
/// variables are merged (the stage's win).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StageSettings {
    /// Stage name: alphanumerics, `-` and `_`, at most 128 characters.
    pub name: String,
    /// The export this stage serves (a stage points at its own deployment), relative to
    /// the deployment file; absent: the top-level `openapi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_variables: BTreeMap<String, String>,
    /// A base path mapping for the stage (`/v1`, or `/`); absent: `/{name}/...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    /// The custom domain of the base path mapping (`api.example.com`): requests whose
    /// `Host` is another name are not this stage's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<StageThrottle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_settings: Option<AccessLogSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_trace_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_settings: Option<CanarySettings>,
}

/// A stage's canary release (API Gateway's `canarySettings`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanarySettings {
    /// Share of the stage's requests the canary serves, 0.0 to 100.0.
    pub percent_traffic: f64,
    /// The export the canary serves, relative to the deployment file; absent: the stage's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    /// Stage variables the canary changes or adds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_variable_overrides: BTreeMap<String, String>,
    /// The canary reads and fills the stage's cache; otherwise it is not cached.
    #[serde(default)]
    pub use_stage_cache: bool,
}

/// A stage's access logging (`accessLogSettings`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessLogSettings {
    /// API Gateway's format: text with `$context` variables, one line, logging
    /// `$context.requestId` or `$context.extendedRequestId`.
    pub format: String,
    /// Where the lines go (a file Envoy appends to); standard output by default.
    #[serde(default = "default_access_log_path")]
    pub path: String,
}

fn default_access_log_path() -> String {
    "/dev/stdout".into()
}

/// The `http` section: how Envoy reaches the backends of HTTP integrations (one cluster per
/// scheme, host and port of their URIs).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpBackends {
    /// PEM bundle of the CAs trusted for `https://` backends; absent: the system bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Connect timeout of each backend cluster.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u32,
    /// Circuit breaker of each backend cluster: calls in flight at most.
    #[serde(default = "default_max_requests")]
    pub max_requests: u32,
}

impl Default for HttpBackends {
    fn default() -> Self {
        HttpBackends {
            ca_file: None,
            connect_timeout_ms: default_connect_timeout(),
            max_requests: default_max_requests(),
        }
    }
}

/// The `aws` section: how the gateway reaches AWS services other than Lambda (SQS, SNS, S3,
/// Kinesis, DynamoDB, ...) for `aws` integrations. Calls are signed with the credentials of
/// `lambda.credentials`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsServices {
    /// Endpoint per service (`sqs: http://127.0.0.1:5000`): emulators, VPC endpoints.
    /// Absent: `https://{service}.{region}.amazonaws.com`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, String>,
    /// Who signs; absent: `ENVOY` for `https://` endpoints, `NONE` for `http://` ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<SigningMode>,
    /// PEM bundle of the CAs trusted for `https://` endpoints; absent: the system bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// The `iam` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IamSettings {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<IamCaller>,
}

impl IamSettings {
    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }
}

/// One IAM identity that may sign requests. The secret never appears in configuration:
/// only the name of the environment variable that holds it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IamCaller {
    pub access_key_id: String,
    pub secret_access_key_env: String,
    /// For temporary credentials: the variable holding the session token they must send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_env: Option<String>,
    /// `arn:aws:iam::ACCOUNT:user/NAME` (or a role session's ARN).
    pub arn: String,
    /// `requestContext.identity.user` / `caller` (default: the ARN's last part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The caller's identity policy (statements without `Principal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<serde_json::Value>,
}

/// The `tls` section. Paths are relative to the deployment file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerTls {
    /// The server certificate chain (PEM), leaf first.
    pub certificate_file: String,
    /// Its private key (PEM).
    pub private_key_file: String,
    /// CA certificates (PEM) that issue client certificates; present means mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truststore: Option<String>,
}

/// A certificate and its key, as PEM files (relative to the deployment file).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateFiles {
    pub certificate_file: String,
    pub private_key_file: String,
}

/// The `resourcePolicy` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourcePolicySettings {
    /// A policy document; replaces the export's `x-amazon-apigateway-policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<serde_json::Value>,
    /// `aws:SourceVpc` and `aws:SourceVpce` of every request (where this gateway runs, for
    /// policies written for a private API); absent keys match no positive condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_vpc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_vpce: Option<String>,
}

/// The `jwt` section: how Cognito and JWT authorizers get their keys, and authorizers for
/// any OIDC issuer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtSettings {
    /// Seconds of clock difference tolerated for `exp` and `nbf` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_seconds: Option<u64>,
    /// Seconds between two fetches of a JWKS (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_seconds: Option<u64>,
    /// Shortest seconds between two fetches; a token with an unknown `kid` triggers one
    /// no sooner (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_refresh_seconds: Option<u64>,
    /// Per Cognito user pool id: where its keys are and what issuer its tokens carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, JwtPool>,
    /// JWT authorizers by name: overrides of the export's `jwt` schemes, or new ones
    /// attached to methods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorizers: BTreeMap<String, JwtIssuer>,
}

impl JwtSettings {
    pub fn is_empty(&self) -> bool {
        self == &JwtSettings::default()
    }
}

/// Where a Cognito user pool's keys are (for emulators and private networks).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtPool {
    /// The `iss` its tokens carry (default `https://cognito-idp.REGION.amazonaws.com/POOL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The JWKS URL (default the issuer's `/.well-known/jwks.json` at Cognito).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// CA bundle for an HTTPS JWKS URL (default the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// A JWT authorizer for any OIDC issuer.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtIssuer {
    /// The `iss` tokens must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted `aud` or `client_id` values (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// The JWKS URL (default `ISSUER/.well-known/jwks.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The header holding the token (default `Authorization`; `Bearer ` is optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_source: Option<String>,
    /// Methods it guards (`/resource/path/METHOD` or `*/*`) and the scopes each requires
    /// (any one of them; an empty list requires none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub methods: BTreeMap<String, Vec<String>>,
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

/// The Lambda Invoke API endpoint, how function ARNs map onto it, and how calls are
/// signed and carried.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Lambda {
    /// `http://host:port` (local emulators) or `https://lambda.<region>.amazonaws.com`;
    /// empty when no integration needs it.
    #[serde(default)]
    pub endpoint: String,
    /// Optional mapping keyed by function ARN, `name:qualifier` or name.
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionTarget>,
    /// Signing region; absent: taken from the endpoint's host name, else `api.region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Who signs calls: Envoy's `aws_request_signing` filter, this filter, or nobody.
    /// Absent: `ENVOY` for `https://` endpoints, `NONE` for `http://` ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<SigningMode>,
    /// Where the signer finds credentials.
    #[serde(default)]
    pub credentials: CredentialSettings,
    /// TLS to `https://` endpoints.
    #[serde(default)]
    pub tls: LambdaTls,
    /// HTTP/2 to the Lambda endpoints (one connection multiplexes calls); HTTP/1.1 with
    /// keep-alive otherwise.
    #[serde(default)]
    pub http2: bool,
    /// Connect timeout of the Lambda clusters.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u32,
    /// Circuit breaker of each Lambda cluster: calls in flight at most.
    #[serde(default = "default_max_requests")]
    pub max_requests: u32,
}

impl Default for Lambda {
    /// No Invoke API: for APIs without Lambda integrations.
    fn default() -> Self {
        Lambda {
            endpoint: String::new(),
            functions: BTreeMap::new(),
            region: None,
            signing: None,
            credentials: CredentialSettings::default(),
            tls: LambdaTls::default(),
            http2: false,
            connect_timeout_ms: default_connect_timeout(),
            max_requests: default_max_requests(),
        }
    }
}

/// Who signs the calls to Lambda with AWS Signature Version 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SigningMode {
    /// Envoy's `envoy.filters.http.aws_request_signing`, as an upstream filter of each
    /// Lambda cluster (Envoy's credential chain and refresh).
    Envoy,
    /// The wasm filter itself, with credentials from environment variables.
    Filter,
    /// Unsigned (local emulators, or a signing proxy in between).
    None,
}

/// Where credentials come from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialSettings {
    /// `ENVOY` signing only: `DEFAULT_CHAIN` (environment, credentials file, web identity,
    /// ECS and EC2 metadata, refreshed by Envoy) or `ENVIRONMENT` (variables only).
    #[serde(default)]
    pub provider: CredentialProvider,
    /// `FILTER` signing: names of the environment variables Envoy passes into the wasm VM.
    #[serde(default = "default_access_key_env")]
    pub access_key_id_env: String,
    #[serde(default = "default_secret_key_env")]
    pub secret_access_key_env: String,
    #[serde(default = "default_session_token_env")]
    pub session_token_env: String,
}

impl Default for CredentialSettings {
    fn default() -> Self {
        CredentialSettings {
            provider: CredentialProvider::default(),
            access_key_id_env: default_access_key_env(),
            secret_access_key_env: default_secret_key_env(),
            session_token_env: default_session_token_env(),
        }
    }
}

/// How the filter sends an integration request (see [`Deployment::forwarding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Forwarding {
    /// The request itself is rewritten into the integration request and sent by Envoy's
    /// router; its answer is rewritten into the reply on the way back. Used when the
    /// integration request's body can take the client's body's place (the client sent a
    /// body, or neither has one); otherwise the call is dispatched.
    Router,
    /// Every integration request is a second HTTP exchange the filter dispatches, and the
    /// filter answers the client itself.
    Dispatch,
}

impl Forwarding {
    /// The way a build sends integration requests when the deployment does not say: the
    /// one that costs Envoy less in that build. From proxy-wasm the two cost about the same
    /// (forwarding a little faster timed, a few percent dearer counted), and forwarding
    /// keeps the call in Envoy's router and access log; from a dynamic module,
    /// dispatching costs 8-12 % fewer instructions per request, since changing the
    /// request's and the answer's headers in place takes one host call per header.
    pub fn default_for(native: bool) -> Forwarding {
        if native {
            Forwarding::Dispatch
        } else {
            Forwarding::Router
        }
    }
}

/// Envoy's credential sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CredentialProvider {
    #[default]
    DefaultChain,
    Environment,
}

/// TLS settings of the Lambda clusters.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LambdaTls {
    /// PEM bundle of the CAs to trust (a private CA); absent: the system bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Where one function is invoked: a new name, or the full form.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum FunctionTarget {
    Name(String),
    Full(FunctionSpec),
}

/// A function reached by name through an Invoke API, or through its function URL.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FunctionSpec {
    /// Function name, with an optional `:qualifier` (Invoke API targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Another Invoke API for this function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The function's URL (`https://<id>.lambda-url.<region>.on.aws`): requests are
    /// forwarded to it as HTTP instead of through the Invoke API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The function URL's `AuthType`: `AWS_IAM` (signed) or `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<UrlAuthType>,
    /// `1.0` (the REST API proxy event, default) or `2.0` (the function URL event, built
    /// by the gateway for functions reached through an Invoke API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format_version: Option<String>,
}

/// A function URL's `AuthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum UrlAuthType {
    #[serde(rename = "AWS_IAM")]
    AwsIam,
    #[serde(rename = "NONE")]
    None,
}

/// Request limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Limits {
    /// Largest request body in bytes; larger bodies get 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    /// Largest answer an HTTP backend may give; a larger one is refused with 500.
    #[serde(default = "default_max_response")]
    pub max_response_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// API Gateway's payload limit, 10 MB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;

fn default_max_response() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// One API key. The value itself never appears in configuration: only its SHA-256.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKey {
    /// Stable identifier (`apiKeyId` in events, referenced by cache invalidators).
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Lower-case hex SHA-256 of the key value (`apigw-edge key hash VALUE`).
    pub value_sha256: String,
}

/// Stage cache settings, modelled on API Gateway's stage cache and `methodSettings`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheSettings {
    /// `cacheClusterEnabled`: the stage cache is on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Bytes each Envoy worker may hold, in MiB.
    #[serde(default = "default_cache_mib", rename = "capacityMiB")]
    pub capacity_mib: u32,
    /// Default time to live (0 disables caching; at most 3600).
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_in_seconds: u32,
    /// API key ids allowed to invalidate entries with `Cache-Control: max-age=0`.
    #[serde(default)]
    pub invalidators: Vec<String>,
    /// Adds `X-Apigw-Edge-Cache: HIT | MISS | REFRESH` to cached methods' responses.
    #[serde(default)]
    pub debug_header: bool,
    /// Per-method overrides keyed `/resource/path/METHOD` (or `~1resource~1path/METHOD`)
    /// and `*/*` for every method.
    #[serde(default)]
    pub method_settings: BTreeMap<String, MethodCacheSettings>,
}

/// One `methodSettings` entry; unset fields fall back to `*/*`, then to the defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MethodCacheSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_in_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_authorization_for_cache_control: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthorized_cache_control_header_strategy: Option<UnauthorizedStrategy>,
}

/// What happens to `Cache-Control: max-age=0` from a caller not allowed to invalidate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum UnauthorizedStrategy {
    #[serde(rename = "FAIL_WITH_403")]
    FailWith403,
    #[default]
    #[serde(rename = "SUCCEED_WITH_RESPONSE_HEADER")]
    SucceedWithResponseHeader,
    #[serde(rename = "SUCCEED_WITHOUT_RESPONSE_HEADER")]
    SucceedWithoutResponseHeader,
}

/// A token bucket: `rateLimit` requests per second on average, `burstLimit` at once.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Throttle {
    pub rate_limit: f64,
    pub burst_limit: u64,
}

/// A usage plan's request quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuotaSettings {
    pub limit: u64,
    /// Requests subtracted from the limit in the first period.
    #[serde(default)]
    pub offset: u64,
    pub period: QuotaPeriod,
}

/// Quota periods; boundaries are UTC (weeks start on Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QuotaPeriod {
    Day,
    Week,
    Month,
}

/// One usage plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsagePlan {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Stages the plan applies to; absent means every stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<String>>,
    /// Ids of the API keys in the plan.
    pub api_keys: Vec<String>,
    /// Per-key throttle for every method of the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// Per-key, per-method throttles keyed `/resource/path/METHOD`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub method_throttle: BTreeMap<String, Throttle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSettings>,
}

/// Stage-level throttling (API Gateway's `methodSettings` throttling).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StageThrottle {
    /// Default rate for each method (each method has its own bucket); with `burstLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_limit: Option<u64>,
    /// Per-method overrides keyed `/resource/path/METHOD`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub method_settings: BTreeMap<String, Throttle>,
}

/// What to do when the shared state behind throttles and quotas cannot be read or written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckFailure {
    /// Refuse the request (500), log why.
    #[default]
    Deny,
    /// Serve the request without limits, log why (API Gateway's behaviour).
    Allow,
}

/// Settings of the usage checks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageSettings {
    #[serde(default)]
    pub on_check_failure: CheckFailure,
    /// Adds `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` and (on 429)
    /// `Retry-After`. API Gateway sends none of them.
    #[serde(default)]
    pub rate_limit_headers: bool,
    /// Count throttles and quotas in a rate-limit service shared by a fleet of gateways
    /// (Envoy's `RateLimitService` gRPC protocol) instead of in this Envoy's shared data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_service: Option<RateLimitService>,
}

/// Where the fleet's rate-limit service is (`usage.rateLimitService`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitService {
    /// `host:port` of its gRPC listener (plain HTTP/2).
    pub address: String,
    /// The rate-limit domain (Limitador's namespace) the limits are defined in.
    #[serde(default = "default_rls_domain")]
    pub domain: String,
    /// How long a check may take; a later answer counts as a failed check
    /// (`onCheckFailure`).
    #[serde(default = "default_rls_timeout")]
    pub timeout_ms: u32,
    /// Connect timeout of its cluster.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u32,
}

fn default_rls_domain() -> String {
    "apigw-edge".into()
}

fn default_rls_timeout() -> u32 {
    100
}

/// A CORS policy, as HTTP APIs' `corsConfiguration`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CorsSettings {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    #[serde(default)]
    pub allow_credentials: bool,
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
    /// Time a client has to send its request headers after connecting.
    #[serde(default = "default_request_headers_timeout")]
    pub request_headers_timeout_ms: u32,
    /// Time a client has to send its whole request (headers and body).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u32,
    /// A request with no activity for this long is ended; must exceed every integration
    /// timeout, since a request waiting for its integration shows none.
    #[serde(default = "default_stream_idle_timeout")]
    pub stream_idle_timeout_ms: u32,
    /// A client connection with no request for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u32,
    /// Requests served on one client connection before it is closed (0: no limit).
    #[serde(default = "default_max_requests_per_connection")]
    pub max_requests_per_connection: u32,
    /// Client connections the whole process holds at once; more are refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    /// Heap Envoy may use: at 90 % it frees what it can, at 95 % it refuses new requests
    /// with 503 until memory is back under the limit.
    #[serde(default = "default_max_heap_mib", rename = "maxHeapMiB")]
    pub max_heap_mib: u32,
    /// Proxies in front of Envoy whose `X-Forwarded-For` entries are trusted: the caller's
    /// address (`sourceIp`, `aws:SourceIp`) is then the entry that many hops from the right
    /// instead of the TCP peer. 0: the TCP peer.
    #[serde(default)]
    pub xff_num_trusted_hops: u32,
    /// Envoy sets `x-apigw-edge-connection` to the request's protocol, peer address and
    /// local port, overwriting whatever a client sent: the gateway then reads them from
    /// there instead of asking the host (three calls per request). Rendered configurations
    /// write the header (an early header mutation, or a filter in front of the gateway's
    /// behind trusted proxies) and turn this on; set it yourself only in an Envoy
    /// configuration of your own that does the same.
    #[serde(default)]
    pub connection_header: bool,
}

impl Default for EnvoySettings {
    fn default() -> Self {
        EnvoySettings {
            concurrency: default_concurrency(),
            log_level: default_log_level(),
            request_headers_timeout_ms: default_request_headers_timeout(),
            request_timeout_ms: default_request_timeout(),
            stream_idle_timeout_ms: default_stream_idle_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            max_requests_per_connection: default_max_requests_per_connection(),
            max_connections: default_max_connections(),
            max_heap_mib: default_max_heap_mib(),
            xff_num_trusted_hops: 0,
            connection_header: false,
        }
    }
}

fn default_request_headers_timeout() -> u32 {
    10_000
}
fn default_request_timeout() -> u32 {
    60_000
}
fn default_stream_idle_timeout() -> u32 {
    60_000
}
fn default_idle_timeout() -> u32 {
    60_000
}
fn default_max_requests_per_connection() -> u32 {
    10_000
}
fn default_max_connections() -> u64 {
    10_000
}
fn default_max_heap_mib() -> u32 {
    1024
}

fn default_connect_timeout() -> u32 {
    2000
}
fn default_max_requests() -> u32 {
    4096
}
fn default_access_key_env() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_key_env() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}
fn default_session_token_env() -> String {
    "AWS_SESSION_TOKEN".into()
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
fn default_true() -> bool {
    true
}
fn default_cache_mib() -> u32 {
    64
}
fn default_cache_ttl() -> u32 {
    300
}
fn default_concurrency() -> u32 {
    1
}
fn default_log_level() -> String {
    "info".into()
}
