//! Reading an API Gateway OpenAPI export (Swagger 2.0 or OpenAPI 3.0) into operations.
//!
//! Owns: walking `paths`, recognising methods (including `x-amazon-apigateway-any-method`),
//! reading `x-amazon-apigateway-integration` and `x-amazon-apigateway-binary-media-types`,
//! and reporting problems with their location in the export
//! (`openapi.paths./pets/{id}.get.x-amazon-apigateway-integration.uri`). Must not: validate
//! path syntax (see [`crate::router`]) or resolve functions (see [`crate::lambda::arn`]).

use serde_json::Value;

use crate::error::ConfigError;

/// An HTTP method as API Gateway deploys them; `Any` is `x-amazon-apigateway-any-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Delete,
    Get,
    Head,
    Options,
    Patch,
    Post,
    Put,
    Any,
}

impl Method {
    /// The seven concrete methods `ANY` stands for.
    pub const CONCRETE: [Method; 7] = [
        Method::Delete,
        Method::Get,
        Method::Head,
        Method::Options,
        Method::Patch,
        Method::Post,
        Method::Put,
    ];

    /// Parses an HTTP request method (upper case, as on the wire).
    pub fn from_request(m: &str) -> Option<Method> {
        Some(match m {
            "DELETE" => Method::Delete,
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            _ => return None,
        })
    }

    fn from_openapi_key(k: &str) -> Option<Method> {
        Some(match k {
            "delete" => Method::Delete,
            "get" => Method::Get,
            "head" => Method::Head,
            "options" => Method::Options,
            "patch" => Method::Patch,
            "post" => Method::Post,
            "put" => Method::Put,
            "x-amazon-apigateway-any-method" => Method::Any,
            _ => return None,
        })
    }

    /// Upper-case name (`ANY` for the any-method).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Delete => "DELETE",
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Any => "ANY",
        }
    }
}

/// The integration behind one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integration {
    /// `aws_proxy`: Lambda proxy integration, event payload 1.0.
    AwsProxy {
        /// The integration `uri` as exported.
        uri: String,
        timeout_ms: u64,
    },
    /// `aws` with a Lambda function URI: the non-proxy ("custom") Lambda integration, mapped
    /// by templates (compiled by [`crate::mapping`]).
    Aws {
        uri: String,
        timeout_ms: u64,
        /// The whole `x-amazon-apigateway-integration` object.
        spec: Value,
    },
    /// `http_proxy`, `http`, or `aws` with a service other than Lambda: a request to an HTTP
    /// endpoint (compiled by [`crate::http_integration`]).
    Http {
        kind: HttpKind,
        uri: String,
        http_method: String,
        timeout_ms: u64,
        /// The whole `x-amazon-apigateway-integration` object.
        spec: Value,
    },
    /// `mock`: answered by the gateway from its templates (compiled by [`crate::mock`]).
    Mock(Value),
    /// A type this gateway does not serve yet; requests to it get a 500 and a log line.
    Unsupported { kind: String },
    /// An integration API Gateway imports but fails at every call (500 and a log line):
    /// a Lambda integration whose `httpMethod` is not POST, or a mapping to a header the
    /// gateway may not send.
    Failing { reason: String },
}

/// The integrations that are requests to an HTTP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpKind {
    /// `http_proxy`: the client's request and the backend's answer pass through.
    Proxy,
    /// `http`: mapped by templates and parameter mappings.
    Http,
    /// `aws` with a service other than Lambda (`arn:aws:apigateway:{region}:{service}:...`):
    /// an `http` integration to that service ([`crate::aws_service`]).
    AwsService,
}

/// One deployed (resource, method) pair.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Resource path template, e.g. `/pets/{petId}`.
    pub resource: String,
    pub method: Method,
    pub integration: Integration,
    /// The integration's `cacheKeyParameters`, as written (checked by [`crate::cache`]).
    pub cache_key_parameters: Vec<String>,
    /// The operation's `security` requires an API key (`x-api-key` header scheme).
    pub api_key_required: bool,
    /// The security scheme that authenticates callers, when the operation's `security`
    /// names one other than an API key: a Lambda authorizer (see [`Export::authorizers`])
    /// or a scheme this gateway does not support, which compilation refuses.
    pub authorizer: Option<String>,
    /// The scopes the operation's `security` lists for that scheme (Cognito and JWT
    /// authorizers' `authorizationScopes`).
    pub authorization_scopes: Vec<String>,
    /// Status codes of the method responses (`responses`), when the export lists them.
    pub method_responses: Option<Vec<u16>>,
    /// Parameters and body models the method declares, and its request validator.
    pub request: crate::validation::MethodRequest,
    /// Location of the operation in the export, for messages.
    pub location: String,
}

/// What the gateway needs from an export.
#[derive(Debug, Clone, Default)]
pub struct Export {
    pub operations: Vec<Operation>,
    /// Lambda authorizers declared in the security schemes, by scheme name.
    pub authorizers: Vec<crate::authorizer::Spec>,
    /// Cognito user pool and JWT authorizers declared in the security schemes.
    pub token_authorizers: Vec<crate::jwt::config::Scheme>,
    /// Schemes that require IAM signatures (`x-amazon-apigateway-authtype: awsSigv4`).
    pub iam_schemes: Vec<String>,
    /// Security schemes that authenticate in a way this gateway does not support yet
    /// (Cognito user pools, IAM), by name, with what they are.
    pub unsupported_schemes: Vec<(String, String)>,
    /// `x-amazon-apigateway-api-key-source` is `AUTHORIZER`: keys come from the
    /// authorizer's `usageIdentifierKey` instead of the `x-api-key` header.
    pub api_key_from_authorizer: bool,
    /// `x-amazon-apigateway-binary-media-types`.
    pub binary_media_types: Vec<String>,
    /// `x-amazon-apigateway-gateway-responses`, compiled by [`crate::gateway_responses`].
    pub gateway_responses: Option<Value>,
    /// `x-amazon-apigateway-policy`, compiled by [`crate::resource_policy`].
    pub policy: Option<Value>,
    /// Request validators and the models they check bodies against.
    pub validation: crate::validation::ApiValidation,
}

/// What a `/resource/path/METHOD` key (API Gateway's `methodSettings` form) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKey {
    /// `*/*`: every method.
    All,
    /// One operation, by index.
    One(usize),
}

/// Resolves a method key: `/pets/GET`, `~1pets~1{id}/GET` (slashes escaped as `~1`),
/// `//GET` for the root resource, `*/*` for all. A key naming no deployed method is an error.
pub fn resolve_method_key(operations: &[Operation], key: &str) -> Result<MethodKey, String> {
    if key == "*/*" {
        return Ok(MethodKey::All);
    }
    let (path, method) = key
        .rsplit_once('/')
        .ok_or("expected `/resource/path/METHOD` or `*/*`")?;
    let path = path.replace("~1", "/");
    let path = match path.as_str() {
        "" | "/" => "/".to_string(),
        p if p.starts_with('/') => p.trim_end_matches('/').to_string(),
        _ => return Err("expected `/resource/path/METHOD` or `*/*`".into()),
    };
    let method = method.to_ascii_uppercase();
    operations
        .iter()
        .position(|op| op.resource == path && op.method.as_str() == method)
        .map(MethodKey::One)
        .ok_or_else(|| format!("the export has no {method} method on `{path}`"))
}

/// The canonical `/resource/path/METHOD` of an operation.
pub fn method_key(op: &Operation) -> String {
    let resource = if op.resource == "/" {
        "/"
    } else {
        op.resource.as_str()
    };
    format!("{resource}/{}", op.method.as_str())
}

/// Default and bounds of `timeoutInMillis`.
pub const DEFAULT_TIMEOUT_MS: u64 = 29_000;
const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 50..=900_000;

/// Result of reading an export: what was understood, errors that make it unusable, and
/// warnings about parts that are served with reduced function.
#[derive(Debug, Default)]
pub struct Parsed {
    pub export: Export,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
    /// A digest of the document (FNV-1a of a canonical serialisation), to derive ids from.
    pub digest: u64,
}

/// Reads an export.
pub fn parse(doc: &Value) -> Parsed {
    let mut reader = Reader::new(doc);
    match doc.get("paths").and_then(Value::as_object) {
        Some(paths) => {
            for (path, item) in paths {
                reader.path_item(path, item);
            }
        }
        None => reader.missing_paths(),
    }
    reader.finish()
}

/// Reads an export from its JSON text one path item at a time, so that no tree of the
/// whole document is ever built (a 5 MB export would take about 20 times its size as a
/// tree, in every worker's VM, for good: wasm memory never shrinks). Reads the same as
/// [`parse`] of the parsed text, digest included.
pub fn parse_text(text: &str) -> Result<Parsed, ConfigError> {
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;
    let not_json =
        |e: serde_json::Error| ConfigError::new("openapi", format!("not valid JSON: {e}"));
    let top: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(not_json)?;
    let mut head = serde_json::Map::new();
    let mut paths = None;
    for (key, raw) in top {
        if key == "paths" {
            paths = Some(raw);
        } else {
            head.insert(key, serde_json::from_str(raw.get()).map_err(not_json)?);
        }
    }
    let head = Value::Object(head);
    let mut reader = Reader::new(&head);
    let items: Option<BTreeMap<String, &RawValue>> = match paths {
        Some(raw) => serde_json::from_str(raw.get()).ok(),
        None => None,
    };
    match items {
        Some(items) => {
            for (path, raw) in items {
                let item: Value = serde_json::from_str(raw.get()).map_err(not_json)?;
                reader.path_item(&path, &item);
            }
        }
        None => reader.missing_paths(),
    }
    Ok(reader.finish())
}

/// Top-level members of an export that the gateway reads; [`slim`] keeps only these.
const READ_TOP: [&str; 13] = [
    "definitions",
    "consumes",
    "x-amazon-apigateway-request-validators",
    "x-amazon-apigateway-request-validator",
    "swagger",
    "x-amazon-apigateway-policy",
    "openapi",
    "x-amazon-apigateway-binary-media-types",
    "x-amazon-apigateway-api-key-source",
    "x-amazon-apigateway-gateway-responses",
    "securityDefinitions",
    "security",
    "paths",
];

/// The part of an export the gateway reads: documentation (summaries, descriptions,
/// examples, models, tags, `x-amazon-apigateway-documentation`) removed, each method's
/// `responses` reduced to their status codes. `render` embeds this form in Envoy's
/// configuration, so every worker parses and holds less; [`parse`] reads it exactly as it
/// reads the whole export (a test checks), so anything the reader starts to use must be
/// kept here too.
pub fn slim(doc: &Value) -> Value {
    let Value::Object(top) = doc else {
        return doc.clone();
    };
    let validates = validates(doc);
    let mut out = serde_json::Map::new();
    for (k, v) in top {
        if k == "paths" {
            let paths = match v {
                Value::Object(items) => Value::Object(
                    items
                        .iter()
                        .map(|(path, item)| (path.clone(), slim_item(item, validates)))
                        .collect(),
                ),
                other => other.clone(),
            };
            out.insert(k.clone(), paths);
        } else if k == "components" {
            out.insert(k.clone(), slim_components(v, validates));
        } else if kept_top(k, validates) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// Top-level keys only request validation reads.
const VALIDATION_TOP: [&str; 2] = ["definitions", "consumes"];
/// Operation keys only request validation reads.
const VALIDATION_OP: [&str; 4] = [
    "parameters",
    "requestBody",
    "consumes",
    "x-amazon-apigateway-request-validator",
];

/// Whether the export declares request validators: without them, parameters and models
/// are never read, and [`slim`] drops them (a large export keeps its size down).
fn validates(doc: &Value) -> bool {
    doc.get("x-amazon-apigateway-request-validators").is_some()
}

/// Whether [`slim`] keeps a top-level key.
fn kept_top(key: &str, validates: bool) -> bool {
    READ_TOP.contains(&key) && (validates || !VALIDATION_TOP.contains(&key))
}

/// `components` as [`slim`] keeps it: security schemes, and models when validating.
fn slim_components(v: &Value, validates: bool) -> Value {
    let mut kept = serde_json::Map::new();
    for key in ["securitySchemes", "schemas"] {
        if key == "schemas" && !validates {
            continue;
        }
        if let Some(part) = v.get(key) {
            kept.insert(key.into(), part.clone());
        }
    }
    Value::Object(kept)
}

/// One path item as [`slim`] keeps it.
fn slim_item(item: &Value, validates: bool) -> Value {
    let Value::Object(ops) = item else {
        return item.clone();
    };
    let kept = ops.iter().filter_map(|(key, op)| {
        if key == "parameters" {
            return validates.then(|| (key.clone(), op.clone()));
        }
        Method::from_openapi_key(key)?;
        let Value::Object(fields) = op else {
            return Some((key.clone(), op.clone()));
        };
        let mut slim_op = serde_json::Map::new();
        for (name, value) in fields {
            match name.as_str() {
                "security" | "x-amazon-apigateway-integration" => {
                    slim_op.insert(name.clone(), value.clone());
                }
                n if validates && VALIDATION_OP.contains(&n) => {
                    slim_op.insert(name.clone(), value.clone());
                }
                "responses" => {
                    let codes = match value {
                        Value::Object(r) => Value::Object(
                            r.keys()
                                .map(|c| (c.clone(), serde_json::json!({})))
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    slim_op.insert(name.clone(), codes);
                }
                _ => {}
            }
        }
        Some((key.clone(), Value::Object(slim_op)))
    });
    Value::Object(kept.collect())
}

/// FNV-1a over bytes written to it: a digest of the export in a canonical form, the same
/// whether it was read as a tree or as text.
struct Digest(u64);

impl std::io::Write for Digest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for b in buf {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reading an export: the document's top level first, then each path item.
struct Reader<'a> {
    out: Parsed,
    key_schemes: Vec<String>,
    /// Schemes that authenticate callers (authorizers, and unsupported kinds).
    auth_schemes: Vec<String>,
    top_security: Option<&'a Value>,
    /// The API's `consumes` (Swagger 2.0), default `application/json`.
    consumes: Vec<String>,
    /// The export declares request validators.
    validates: bool,
    digest: Digest,
}

impl<'a> Reader<'a> {
    /// Reads everything outside `paths` (which `head` may or may not hold).
    fn new(head: &'a Value) -> Self {
        let mut out = Parsed::default();
        let doc = head;
        let swagger = doc.get("swagger").and_then(Value::as_str);
        let openapi = doc.get("openapi").and_then(Value::as_str);
        match (swagger, openapi) {
            (Some("2.0"), _) => {}
            (_, Some(v)) if v.starts_with("3.") => {}
            _ => out.errors.push(ConfigError::new(
                "openapi",
                "not an OpenAPI export: expected `swagger: \"2.0\"` or `openapi: \"3.x\"`",
            )),
        }
        match doc.get("x-amazon-apigateway-binary-media-types") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if s.contains('/') => {
                            out.export.binary_media_types.push(s.to_string())
                        }
                        _ => out.errors.push(ConfigError::new(
                            format!("openapi.x-amazon-apigateway-binary-media-types[{i}]"),
                            "expected a media type such as \"image/png\" or \"*/*\"",
                        )),
                    }
                }
            }
            Some(_) => out.errors.push(ConfigError::new(
                "openapi.x-amazon-apigateway-binary-media-types",
                "expected an array of media types",
            )),
        }
        match doc
            .get("x-amazon-apigateway-api-key-source")
            .and_then(Value::as_str)
        {
            None | Some("HEADER") => {}
            Some("AUTHORIZER") => out.export.api_key_from_authorizer = true,
            Some(other) => out.errors.push(ConfigError::new(
                "openapi.x-amazon-apigateway-api-key-source",
                format!("`{other}`: expected HEADER or AUTHORIZER"),
            )),
        }
        out.export.gateway_responses = doc.get("x-amazon-apigateway-gateway-responses").cloned();
        out.export.policy = doc.get("x-amazon-apigateway-policy").cloned();
        out.export.validation = crate::validation::ApiValidation::read(doc);
        let consumes: Vec<String> = match doc.get("consumes").and_then(Value::as_array) {
            Some(c) => c
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect(),
            None => vec!["application/json".to_string()],
        };
        let mut digest = Digest(0xcbf2_9ce4_8422_2325);
        if let Value::Object(top) = doc {
            let validating = validates(doc);
            let read = |k: &str| kept_top(k, validating) || k == "components";
            for (k, v) in top.iter().filter(|(k, _)| read(k) && k.as_str() != "paths") {
                let _ = serde_json::to_writer(&mut digest, k);
                let v = if k == "components" {
                    slim_components(v, validating)
                } else {
                    v.clone()
                };
                let _ = serde_json::to_writer(&mut digest, &v);
            }
        }
        let (schemes_at, schemes) = match doc.get("securityDefinitions") {
            Some(s) => ("openapi.securityDefinitions", Some(s)),
            None => (
                "openapi.components.securitySchemes",
                doc.pointer("/components/securitySchemes"),
            ),
        };
        for (name, scheme) in schemes.and_then(Value::as_object).into_iter().flatten() {
            let at = format!("{schemes_at}.{name}");
            match crate::authorizer::read_scheme(name, scheme, &at) {
                Some(Ok(spec)) => out.export.authorizers.push(spec),
                Some(Err(e)) => out.errors.push(e),
                None => match crate::jwt::config::read_scheme(name, scheme, &at) {
                    Some(Ok(spec)) => out.export.token_authorizers.push(spec),
                    Some(Err(e)) => out.errors.push(e),
                    None => {
                        let authtype = scheme
                            .get("x-amazon-apigateway-authtype")
                            .and_then(Value::as_str)
                            .map(str::to_ascii_lowercase);
                        if authtype.as_deref() == Some("awssigv4") {
                            out.export.iam_schemes.push(name.clone());
                        }
                    }
                },
            }
        }
        let mut auth_schemes: Vec<String> = out
            .export
            .authorizers
            .iter()
            .map(|a| a.name.clone())
            .collect();
        auth_schemes.extend(out.export.token_authorizers.iter().map(|a| a.name.clone()));
        auth_schemes.extend(out.export.iam_schemes.iter().cloned());
        auth_schemes.extend(
            out.export
                .unsupported_schemes
                .iter()
                .map(|(n, _)| n.clone()),
        );
        Reader {
            out,
            key_schemes: api_key_schemes(doc),
            auth_schemes,
            top_security: doc.get("security"),
            consumes,
            validates: validates(doc),
            digest,
        }
    }

    fn missing_paths(&mut self) {
        self.out.errors.push(ConfigError::new(
            "openapi.paths",
            "missing or not an object",
        ));
    }

    fn path_item(&mut self, path: &str, item: &Value) {
        // The digest covers what the gateway reads, so the full export and its slim form
        // (what the filter receives) give the same ids.
        let _ = serde_json::to_writer(&mut self.digest, path);
        let _ = serde_json::to_writer(&mut self.digest, &slim_item(item, self.validates));
        let out = &mut self.out;
        let item_value = item;
        let Some(item) = item.as_object() else {
            out.errors.push(ConfigError::new(
                format!("openapi.paths.{path}"),
                "expected an object of operations",
            ));
            return;
        };
        for (key, op) in item {
            let Some(method) = Method::from_openapi_key(key) else {
                continue;
            };
            let location = format!("openapi.paths.{path}.{key}");
            let integration = read_integration(op, &location);
            let cache_key_parameters = read_cache_key_parameters(op, &location);
            match (integration, cache_key_parameters) {
                (Ok((integration, warning)), Ok(cache_key_parameters)) => {
                    out.warnings.extend(warning);
                    let security = op.get("security").or(self.top_security);
                    out.export.operations.push(Operation {
                        resource: path.to_string(),
                        method,
                        integration,
                        cache_key_parameters,
                        api_key_required: requires_api_key(security, &self.key_schemes),
                        authorizer: named_scheme(security, &self.auth_schemes),
                        authorization_scopes: scopes_of(security, &self.auth_schemes),
                        method_responses: method_responses(op),
                        request: crate::validation::read_method_request(
                            op,
                            item_value,
                            &self.consumes,
                        ),
                        location,
                    });
                }
                (Err(e), _) | (_, Err(e)) => out.errors.push(e),
            }
        }
    }

    fn finish(mut self) -> Parsed {
        self.out.digest = self.digest.0;
        self.out
    }
}

/// Integration request headers API Gateway may not send: a mapping to one imports, and
/// every call of the method fails.
const RESERVED_REQUEST_HEADERS: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "authorization",
    "connection",
    "expect",
    "proxy-authenticate",
    "te",
];

/// The first header an integration's `requestParameters` maps that API Gateway may not send.
fn reserved_header_mapping(integ: &Value) -> Option<String> {
    integ
        .get("requestParameters")
        .and_then(Value::as_object)?
        .keys()
        .filter_map(|k| k.strip_prefix("integration.request.header."))
        .find(|h| RESERVED_REQUEST_HEADERS.contains(&h.to_ascii_lowercase().as_str()))
        .map(str::to_string)
}

/// Names of the security schemes that are API Gateway API keys: `apiKey` in the header
/// `x-api-key`, not a Lambda authorizer (`securityDefinitions` in Swagger 2.0,
/// `components.securitySchemes` in OpenAPI 3).
fn api_key_schemes(doc: &Value) -> Vec<String> {
    let schemes = doc
        .get("securityDefinitions")
        .or_else(|| doc.pointer("/components/securitySchemes"))
        .and_then(Value::as_object);
    schemes
        .into_iter()
        .flatten()
        .filter(|(_, s)| {
            s.get("type").and_then(Value::as_str) == Some("apiKey")
                && s.get("in").and_then(Value::as_str) == Some("header")
                && s.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"))
                && s.get("x-amazon-apigateway-authorizer").is_none()
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether a `security` list names an API key scheme.
fn requires_api_key(security: Option<&Value>, key_schemes: &[String]) -> bool {
    security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .any(|req| req.keys().any(|k| key_schemes.contains(k)))
}

/// The first scheme of `schemes` a `security` list names.
fn named_scheme(security: Option<&Value>, schemes: &[String]) -> Option<String> {
    security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|req| req.keys())
        .find(|k| schemes.contains(k))
        .cloned()
}

/// The scopes listed for the first scheme of `schemes` a `security` list names.
fn scopes_of(security: Option<&Value>, schemes: &[String]) -> Vec<String> {
    security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|req| req.iter())
        .find(|(k, _)| schemes.contains(k))
        .and_then(|(_, v)| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The numeric keys of an operation's `responses`.
fn method_responses(op: &Value) -> Option<Vec<u16>> {
    let responses = op.get("responses")?.as_object()?;
    Some(responses.keys().filter_map(|k| k.parse().ok()).collect())
}

fn read_cache_key_parameters(op: &Value, location: &str) -> Result<Vec<String>, ConfigError> {
    let Some(v) = op
        .get("x-amazon-apigateway-integration")
        .and_then(|i| i.get("cacheKeyParameters"))
    else {
        return Ok(Vec::new());
    };
    v.as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| {
            ConfigError::new(
                format!("{location}.x-amazon-apigateway-integration.cacheKeyParameters"),
                "expected an array of strings such as \"method.request.querystring.type\"",
            )
        })
}

/// `timeoutInMillis`, checked against API Gateway's range.
fn read_timeout(integ: &Value, at: &str) -> Result<u64, ConfigError> {
    match integ.get("timeoutInMillis") {
        None => Ok(DEFAULT_TIMEOUT_MS),
        Some(v) => match v.as_u64() {
            Some(ms) if TIMEOUT_RANGE_MS.contains(&ms) => Ok(ms),
            _ => Err(ConfigError::new(
                format!("{at}.timeoutInMillis"),
                format!(
                    "expected an integer from {} to {}",
                    TIMEOUT_RANGE_MS.start(),
                    TIMEOUT_RANGE_MS.end()
                ),
            )),
        },
    }
}

/// An `http`, `http_proxy` or AWS service (`kind` `aws_service`) integration; one through a
/// VPC link is not served (the gateway reaches backends over its own network).
fn read_http_integration(
    integ: &Value,
    kind: &str,
    at: &str,
) -> Result<(Integration, Option<ConfigError>), ConfigError> {
    let vpc_link = integ
        .get("connectionType")
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case("VPC_LINK"));
    if vpc_link {
        let kind = format!("{kind} through a VPC link");
        let warning = ConfigError::new(
            format!("{at}.connectionType"),
            format!("`{kind}` is not served (point the uri at the backend's own address instead); requests to this method get 500"),
        );
        return Ok((Integration::Unsupported { kind }, Some(warning)));
    }
    let text = |field: &str| {
        integ
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ConfigError::new(format!("{at}.{field}"), "missing or not a string"))
    };
    let (uri, http_method, timeout_ms) =
        (text("uri")?, text("httpMethod")?, read_timeout(integ, at)?);
    let kind = match kind {
        "aws_service" => HttpKind::AwsService,
        "http_proxy" => HttpKind::Proxy,
        _ => HttpKind::Http,
    };
    let integration = Integration::Http {
        kind,
        uri,
        http_method,
        timeout_ms,
        spec: integ.clone(),
    };
    Ok((integration, None))
}

fn read_integration(
    op: &Value,
    location: &str,
) -> Result<(Integration, Option<ConfigError>), ConfigError> {
    let at = format!("{location}.x-amazon-apigateway-integration");
    let integ = op
        .get("x-amazon-apigateway-integration")
        .ok_or_else(|| ConfigError::new(&at, "missing: every method needs an integration"))?;
    let kind = integ
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ConfigError::new(format!("{at}.type"), "missing or not a string"))?
        .to_ascii_lowercase();
    if kind == "mock" {
        return Ok((Integration::Mock(integ.clone()), None));
    }
    if kind == "http" || kind == "http_proxy" {
        return read_http_integration(integ, &kind, &at);
    }
    let lambda_uri = integ
        .get("uri")
        .and_then(Value::as_str)
        .is_some_and(|u| u.contains(":lambda:path/"));
    if kind == "aws" && !lambda_uri {
        return read_http_integration(integ, "aws_service", &at);
    }
    if kind != "aws_proxy" && kind != "aws" {
        let warning = ConfigError::new(
            format!("{at}.type"),
            format!("integration type `{kind}` is not served yet; requests to this method get 500"),
        );
        return Ok((Integration::Unsupported { kind }, Some(warning)));
    }
    // What API Gateway imports but fails at every call: served the same way (500 per
    // call), with a warning instead of refusing the whole configuration.
    let http_method = integ.get("httpMethod").and_then(Value::as_str);
    if !http_method.is_some_and(|m| m.eq_ignore_ascii_case("POST")) {
        let reason = format!(
            "the Lambda integration uses httpMethod {}; Lambda is invoked with POST only",
            http_method.unwrap_or("(none)")
        );
        let warning = ConfigError::new(
            format!("{at}.httpMethod"),
            format!("{reason}: every call of this method answers 500, as in API Gateway"),
        );
        return Ok((Integration::Failing { reason }, Some(warning)));
    }
    if let Some(header) = reserved_header_mapping(integ) {
        let reason = format!(
            "requestParameters maps the reserved header {header} (integration.request.header.{header})"
        );
        let warning = ConfigError::new(
            format!("{at}.requestParameters.integration.request.header.{header}"),
            format!("API Gateway cannot send {header} to an integration: every call of this method answers 500, as in API Gateway"),
        );
        return Ok((Integration::Failing { reason }, Some(warning)));
    }
    let uri = integ
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| ConfigError::new(format!("{at}.uri"), "missing or not a string"))?
        .to_string();
    let timeout_ms = read_timeout(integ, &at)?;
    if kind == "aws" {
        let spec = integ.clone();
        return Ok((
            Integration::Aws {
                uri,
                timeout_ms,
                spec,
            },
            None,
        ));
    }
    Ok((Integration::AwsProxy { uri, timeout_ms }, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proxy(uri: &str) -> Value {
        json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": uri}})
    }

    /// What a reading produced, in a comparable form.
    fn summary(p: &Parsed) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}",
            p.export.operations,
            p.export.binary_media_types,
            p.export.gateway_responses,
            p.errors,
            p.warnings,
            p.digest
        )
    }

    #[test]
    fn the_slim_form_and_the_text_reader_read_as_the_whole_export() {
        let example: Value =
            serde_json::from_str(include_str!("../examples/hello/openapi.json")).unwrap();
        let documented = json!({
            "swagger": "2.0",
            "info": {"title": "t", "description": "long prose"},
            "tags": [{"name": "x"}],
            "x-amazon-apigateway-documentation": {"version": "1"},
            "x-amazon-apigateway-binary-media-types": ["image/png"],
            "x-amazon-apigateway-gateway-responses": {"DEFAULT_4XX": {"statusCode": "400"}},
            "securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}},
            "definitions": {"Pet": {"type": "object"}},
            "paths": {
                "/pets/{id}": {
                    "parameters": [{"name": "id", "in": "path"}],
                    "get": {
                        "summary": "s", "description": "d", "operationId": "o", "tags": ["x"],
                        "security": [{"api_key": []}],
                        "responses": {"200": {"description": "ok", "schema": {"$ref": "#/definitions/Pet"}}, "404": {"description": "no"}},
                        "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": "u", "cacheKeyParameters": ["method.request.path.id"]}
                    }
                },
                "/bad": "not an object"
            }
        });
        // With request validators, the parameters and models they check are kept.
        let mut validating = documented.clone();
        validating["x-amazon-apigateway-request-validators"] =
            json!({"all": {"validateRequestParameters": true}});
        validating["x-amazon-apigateway-request-validator"] = json!("all");
        let kept = slim(&validating);
        assert_eq!(kept["paths"]["/pets/{id}"]["parameters"][0]["name"], "id");
        assert_eq!(kept["definitions"]["Pet"]["type"], "object");
        let dropped = slim(&documented);
        assert!(dropped["paths"]["/pets/{id}"].get("parameters").is_none());
        assert!(dropped.get("definitions").is_none());
        for doc in [example, documented, validating] {
            let whole = summary(&parse(&doc));
            let slim_doc = slim(&doc);
            assert_eq!(summary(&parse(&slim_doc)), whole);
            assert_eq!(summary(&parse_text(&doc.to_string()).unwrap()), whole);
            assert_eq!(summary(&parse_text(&slim_doc.to_string()).unwrap()), whole);
            assert!(slim_doc.to_string().len() <= doc.to_string().len());
        }
        let slimmed = slim(
            &json!({"swagger": "2.0", "info": {}, "paths": {"/a": {"get": {"summary": "s", "responses": {"200": {"description": "x"}}}}}}),
        );
        assert_eq!(
            slimmed,
            json!({"swagger": "2.0", "paths": {"/a": {"get": {"responses": {"200": {}}}}}})
        );
    }

    #[test]
    fn reads_methods_and_any() {
        let doc = json!({
            "swagger": "2.0",
            "paths": {
                "/pets": {"get": proxy("u1"), "parameters": [], "x-amazon-apigateway-any-method": proxy("u2")},
                "/{proxy+}": {"options": {"x-amazon-apigateway-integration": {"type": "http", "httpMethod": "POST", "uri": "http://h/", "connectionType": "VPC_LINK"}}}
            }
        });
        let p = parse(&doc);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let mut got: Vec<_> = p
            .export
            .operations
            .iter()
            .map(|o| (o.resource.as_str(), o.method))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("/pets", Method::Get),
                ("/pets", Method::Any),
                ("/{proxy+}", Method::Options)
            ]
        );
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(
            p.warnings[0].location,
            "openapi.paths./{proxy+}.options.x-amazon-apigateway-integration.connectionType"
        );
    }

    #[test]
    fn http_integrations_are_read_and_vpc_links_are_not_served() {
        let doc = json!({
            "swagger": "2.0",
            "paths": {
                "/a": {"get": {"x-amazon-apigateway-integration": {"type": "HTTP_PROXY", "httpMethod": "ANY", "uri": "http://h/{proxy}", "timeoutInMillis": 5000}}},
                "/b": {"get": {"x-amazon-apigateway-integration": {"type": "http", "httpMethod": "GET", "uri": "http://h/", "connectionType": "VPC_LINK"}}},
                "/c": {"get": {"x-amazon-apigateway-integration": {"type": "http", "uri": "http://h/"}}}
            }
        });
        let p = parse(&doc);
        let errors: Vec<_> = p.errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            errors,
            vec!["openapi.paths./c.get.x-amazon-apigateway-integration.httpMethod"]
        );
        let warnings: Vec<_> = p.warnings.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            warnings,
            vec!["openapi.paths./b.get.x-amazon-apigateway-integration.connectionType"]
        );
        let a = p
            .export
            .operations
            .iter()
            .find(|o| o.resource == "/a")
            .unwrap();
        assert!(matches!(
            &a.integration,
            Integration::Http { kind: HttpKind::Proxy, uri, http_method, timeout_ms: 5000, .. }
                if uri == "http://h/{proxy}" && http_method == "ANY"
        ));
    }

    #[test]
    fn errors_name_their_location() {
        let doc = json!({
            "openapi": "3.0.1",
            "x-amazon-apigateway-binary-media-types": ["image/png", 3],
            "paths": {
                "/a": {"get": {}},
                "/b": {"get": {"x-amazon-apigateway-integration": {"type": "AWS_PROXY", "httpMethod": "GET", "uri": "x"}}},
                "/c": {"get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": "x", "timeoutInMillis": 10}}}
            }
        });
        let p = parse(&doc);
        let locations: Vec<_> = p.errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            vec![
                "openapi.x-amazon-apigateway-binary-media-types[1]",
                "openapi.paths./a.get.x-amazon-apigateway-integration",
                "openapi.paths./c.get.x-amazon-apigateway-integration.timeoutInMillis",
            ]
        );
        assert_eq!(p.export.binary_media_types, vec!["image/png"]);
    }

    #[test]
    fn what_api_gateway_imports_but_fails_at_every_call_is_a_warning() {
        let mut reserved = proxy("u");
        reserved["x-amazon-apigateway-integration"]["requestParameters"] =
            json!({"integration.request.header.Content-Length": "'5'"});
        let doc = json!({"swagger": "2.0", "paths": {
            "/get": {"get": {"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "GET", "uri": "u"}}},
            "/reserved": {"get": reserved}
        }});
        let p = parse(&doc);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let warned: Vec<_> = p.warnings.iter().map(|w| w.location.as_str()).collect();
        assert_eq!(
            warned,
            vec![
                "openapi.paths./get.get.x-amazon-apigateway-integration.httpMethod",
                "openapi.paths./reserved.get.x-amazon-apigateway-integration.requestParameters.integration.request.header.Content-Length",
            ]
        );
        assert!(p
            .export
            .operations
            .iter()
            .all(|o| matches!(o.integration, Integration::Failing { .. })));
    }

    #[test]
    fn api_key_requirements_from_security() {
        let doc = json!({
            "swagger": "2.0",
            "securityDefinitions": {
                "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"},
                "auth": {"type": "apiKey", "name": "Authorization", "in": "header",
                         "x-amazon-apigateway-authorizer": {"type": "token"}}
            },
            "paths": {
                "/keyed": {"get": {"security": [{"api_key": []}], "x-amazon-apigateway-integration": proxy("u")["x-amazon-apigateway-integration"]}},
                "/authz": {"get": {"security": [{"auth": []}], "x-amazon-apigateway-integration": proxy("u")["x-amazon-apigateway-integration"]}},
                "/open": {"get": proxy("u")}
            }
        });
        let p = parse(&doc);
        let required: Vec<_> = p
            .export
            .operations
            .iter()
            .map(|o| (o.resource.as_str(), o.api_key_required))
            .collect();
        assert_eq!(
            required,
            vec![("/authz", false), ("/keyed", true), ("/open", false)]
        );
        // OpenAPI 3 and top-level security.
        let doc = json!({
            "openapi": "3.0.1",
            "components": {"securitySchemes": {"k": {"type": "apiKey", "name": "X-API-Key", "in": "header"}}},
            "security": [{"k": []}],
            "paths": {"/a": {"get": proxy("u")}}
        });
        assert!(parse(&doc).export.operations[0].api_key_required);
    }

    #[test]
    fn method_keys_resolve_to_operations() {
        let doc = json!({"swagger": "2.0", "paths": {
            "/": {"get": proxy("u")}, "/pets/{id}": {"get": proxy("u")}, "/a": {"x-amazon-apigateway-any-method": proxy("u")}}});
        let ops = parse(&doc).export.operations;
        let find = |i: usize| MethodKey::One(i);
        let idx = |res: &str| ops.iter().position(|o| o.resource == res).unwrap();
        for (key, want) in [
            ("*/*", Ok(MethodKey::All)),
            ("//GET", Ok(find(idx("/")))),
            ("~1/GET", Ok(find(idx("/")))),
            ("/pets/{id}/GET", Ok(find(idx("/pets/{id}")))),
            ("~1pets~1{id}/get", Ok(find(idx("/pets/{id}")))),
            ("/a/ANY", Ok(find(idx("/a")))),
            ("/a/GET", Err("no GET method on `/a`")),
            ("pets", Err("expected")),
            ("pets/GET", Err("expected")),
        ] {
            match (resolve_method_key(&ops, key), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{key}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{key}: {got}"),
                (got, want) => panic!("{key}: {got:?} vs {want:?}"),
            }
        }
        assert_eq!(method_key(&ops[idx("/")]), "//GET");
        assert_eq!(method_key(&ops[idx("/pets/{id}")]), "/pets/{id}/GET");
    }

    #[test]
    fn key_source_is_header_or_authorizer() {
        let doc = json!({"swagger": "2.0", "x-amazon-apigateway-api-key-source": "AUTHORIZER", "paths": {}});
        let p = parse(&doc);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert!(p.export.api_key_from_authorizer);
        let doc =
            json!({"swagger": "2.0", "x-amazon-apigateway-api-key-source": "BODY", "paths": {}});
        assert_eq!(
            parse(&doc).errors[0].location,
            "openapi.x-amazon-apigateway-api-key-source"
        );
    }

    #[test]
    fn authorizers_and_the_methods_that_use_them() {
        let doc = json!({
            "swagger": "2.0",
            "securityDefinitions": {
                "tok": {"type": "apiKey", "name": "Authorization", "in": "header",
                        "x-amazon-apigateway-authtype": "custom",
                        "x-amazon-apigateway-authorizer": {"type": "token", "authorizerUri": "u"}},
                "pool": {"type": "apiKey", "name": "Authorization", "in": "header",
                         "x-amazon-apigateway-authtype": "cognito_user_pools",
                         "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": ["arn:aws:cognito-idp:us-east-1:1:userpool/us-east-1_P"]}},
                "iam": {"type": "apiKey", "name": "Authorization", "in": "header",
                        "x-amazon-apigateway-authtype": "awsSigv4"},
                "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}
            },
            "paths": {
                "/a": {"get": {"security": [{"api_key": []}, {"tok": []}], "x-amazon-apigateway-integration": {"type": "mock"}}},
                "/b": {"get": {"security": [{"pool": ["s"]}], "x-amazon-apigateway-integration": {"type": "mock"}}},
                "/c": {"get": {"x-amazon-apigateway-integration": {"type": "mock"}}}
            }
        });
        let p = parse(&doc);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.export.authorizers.len(), 1);
        assert_eq!(p.export.authorizers[0].name, "tok");
        assert_eq!(p.export.token_authorizers.len(), 1);
        assert_eq!(p.export.token_authorizers[0].name, "pool");
        assert_eq!(p.export.iam_schemes, vec!["iam".to_string()]);
        assert!(p.export.unsupported_schemes.is_empty());
        let by: Vec<_> = p
            .export
            .operations
            .iter()
            .map(|o| {
                (
                    o.resource.as_str(),
                    o.authorizer.as_deref(),
                    o.api_key_required,
                )
            })
            .collect();
        assert!(by.contains(&("/a", Some("tok"), true)));
        assert!(by.contains(&("/b", Some("pool"), false)));
        assert!(by.contains(&("/c", None, false)));
        let b = p
            .export
            .operations
            .iter()
            .find(|o| o.resource == "/b")
            .unwrap();
        assert_eq!(b.authorization_scopes, vec!["s".to_string()]);
    }

    #[test]
    fn rejects_non_exports() {
        let p = parse(&json!({"paths": {}}));
        assert_eq!(p.errors[0].location, "openapi");
        let p = parse(&json!({"swagger": "2.0"}));
        assert_eq!(p.errors[0].location, "openapi.paths");
    }

    #[test]
    fn timeout_default_and_value() {
        let mut op = proxy("u");
        op["x-amazon-apigateway-integration"]["timeoutInMillis"] = json!(1500);
        let doc = json!({"swagger": "2.0", "paths": {"/a": {"get": op, "post": proxy("u")}}});
        let p = parse(&doc);
        let t: Vec<_> = p
            .export
            .operations
            .iter()
            .map(|o| match &o.integration {
                Integration::AwsProxy { timeout_ms, .. } => *timeout_ms,
                Integration::Aws { timeout_ms, .. } | Integration::Http { timeout_ms, .. } => {
                    *timeout_ms
                }
                Integration::Unsupported { .. }
                | Integration::Failing { .. }
                | Integration::Mock(_) => 0,
            })
            .collect();
        assert_eq!(t, vec![1500, DEFAULT_TIMEOUT_MS]);
    }
}
