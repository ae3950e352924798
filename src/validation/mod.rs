//! Method request validation: required parameters and body models, as API Gateway's
//! request validators check them.
//!
//! Owns: reading what an operation declares (Swagger 2.0 and OpenAPI 3.0 `parameters`, the
//! body parameter's `schema` per `consumes` type, `requestBody.content`), which validator
//! applies (`x-amazon-apigateway-request-validator` on the operation, else the API's,
//! naming an entry of `x-amazon-apigateway-request-validators`), compiling the models once
//! (JSON Schema draft 4 with `$ref` into `definitions` / `components.schemas`, by the
//! `boon` crate, which never loads anything from outside the export), and the per-request
//! checks: every required parameter present and not blank, then the body valid against the
//! model for its content type. Must not: decide the answer's shape (the stage does) or
//! read anything but the request it is given.

use serde_json::Value;

use crate::error::ConfigError;
use crate::http::Header;

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    Path,
    Query,
    Header,
}

/// What an operation declares about its request, as read from the export.
#[derive(Debug, Clone, Default)]
pub struct MethodRequest {
    /// The operation's own `x-amazon-apigateway-request-validator`.
    pub validator: Option<String>,
    /// Required parameters.
    pub required: Vec<(ParamIn, String)>,
    /// Body schemas by content type (lower case), as written (they may `$ref` models).
    pub bodies: Vec<(String, Value)>,
}

/// Reads an operation's parameters and body. `item` is its path item (whose `parameters`
/// apply to every operation), `consumes` the API's default content types (Swagger 2.0).
pub fn read_method_request(op: &Value, item: &Value, consumes: &[String]) -> MethodRequest {
    let mut m = MethodRequest {
        validator: op
            .get("x-amazon-apigateway-request-validator")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..MethodRequest::default()
    };
    let params = item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            op.get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    for p in params {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        let required = p.get("required").and_then(Value::as_bool) == Some(true);
        let place = match p.get("in").and_then(Value::as_str) {
            Some("path") => ParamIn::Path,
            Some("query") => ParamIn::Query,
            Some("header") => ParamIn::Header,
            Some("body") => {
                if let Some(schema) = p.get("schema") {
                    let types: Vec<String> = match op.get("consumes").and_then(Value::as_array) {
                        Some(c) => c
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_ascii_lowercase)
                            .collect(),
                        None => consumes.to_vec(),
                    };
                    for t in types {
                        m.bodies.retain(|(ct, _)| *ct != t);
                        m.bodies.push((t, schema.clone()));
                    }
                }
                continue;
            }
            _ => continue,
        };
        // An operation's parameter replaces the path item's of the same name and place.
        m.required.retain(|(i, n)| !(*i == place && n == name));
        if required && !name.is_empty() {
            m.required.push((place, name.to_string()));
        }
    }
    if let Some(content) = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object)
    {
        for (t, media) in content {
            if let Some(schema) = media.get("schema") {
                m.bodies.push((t.to_ascii_lowercase(), schema.clone()));
            }
        }
    }
    m
}

/// The API-wide validation settings of an export.
#[derive(Debug, Clone, Default)]
pub struct ApiValidation {
    /// `x-amazon-apigateway-request-validators`.
    pub validators: Option<Value>,
    /// The API's `x-amazon-apigateway-request-validator`.
    pub default: Option<String>,
    /// `definitions` (Swagger 2.0) and `components.schemas` (OpenAPI 3.0), for `$ref`.
    pub definitions: Option<Value>,
    pub schemas: Option<Value>,
}

impl ApiValidation {
    pub fn read(doc: &Value) -> ApiValidation {
        ApiValidation {
            validators: doc.get("x-amazon-apigateway-request-validators").cloned(),
            default: doc
                .get("x-amazon-apigateway-request-validator")
                .and_then(Value::as_str)
                .map(str::to_string),
            definitions: doc.get("definitions").cloned(),
            schemas: doc.pointer("/components/schemas").cloned(),
        }
    }
}

/// Where the models live for the schema compiler (never fetched: added as a resource).
const MODELS_URL: &str = "https://models.apigw-edge.invalid/export.json";

/// Every compiled model of the API.
pub struct Models {
    schemas: boon::Schemas,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Models({})", self.schemas.size())
    }
}

/// One compiled model.
#[derive(Debug, Clone, Copy)]
pub struct Model(boon::SchemaIndex);

/// What one method checks.
#[derive(Debug, Clone, Default)]
pub struct Check {
    /// Required parameters (when the validator validates parameters), sorted by name.
    pub params: Vec<(ParamIn, String)>,
    /// Body models by content type (when the validator validates bodies).
    pub bodies: Vec<(String, Model)>,
}

/// Refuses every URL: models may only refer into the export.
struct NoLoader;

impl boon::UrlLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("{url}: models may only refer to the export's own models").into())
    }
}

/// Compiles what each operation checks; `None` for methods no validator covers.
/// `requests[i]` and `locations[i]` belong to the i-th operation.
pub fn compile(
    api: &ApiValidation,
    requests: &[(&MethodRequest, &str)],
    errors: &mut Vec<ConfigError>,
) -> (Models, Vec<Option<Check>>) {
    let mut schemas = boon::Schemas::new();
    let mut out = Vec::with_capacity(requests.len());
    // (validate body, validate parameters) for each operation, or None.
    let mut plans: Vec<Option<(bool, bool)>> = Vec::with_capacity(requests.len());
    for (request, location) in requests {
        let (name, at) = match (&request.validator, &api.default) {
            (Some(n), _) => (
                Some(n),
                format!("{location}.x-amazon-apigateway-request-validator"),
            ),
            (None, Some(n)) => (
                Some(n),
                "openapi.x-amazon-apigateway-request-validator".to_string(),
            ),
            (None, None) => (None, String::new()),
        };
        let plan = name.and_then(|n| {
            let Some(v) = api.validators.as_ref().and_then(|v| v.get(n)) else {
                errors.push(ConfigError::new(
                    at,
                    format!("`{n}` is not in x-amazon-apigateway-request-validators"),
                ));
                return None;
            };
            let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
            Some((
                flag("validateRequestBody"),
                flag("validateRequestParameters"),
            ))
        });
        plans.push(plan);
    }
    // One document holds every model, so `$ref`s resolve as they do in the export.
    let mut inline = Vec::new();
    for ((request, _), plan) in requests.iter().zip(&plans) {
        if let Some((true, _)) = plan {
            inline.extend(request.bodies.iter().map(|(_, s)| s.clone()));
        }
    }
    let mut compiler = boon::Compiler::new();
    compiler.set_default_draft(boon::Draft::V4);
    compiler.use_loader(Box::new(NoLoader));
    let mut doc = serde_json::Map::new();
    if let Some(d) = &api.definitions {
        doc.insert("definitions".into(), d.clone());
    }
    if let Some(s) = &api.schemas {
        doc.insert("components".into(), serde_json::json!({ "schemas": s }));
    }
    let with_models = !inline.is_empty();
    doc.insert("models".into(), Value::Array(inline));
    let added = if with_models {
        compiler
            .add_resource(MODELS_URL, Value::Object(doc))
            .map_err(|e| errors.push(ConfigError::new("openapi.definitions", e.to_string())))
            .is_ok()
    } else {
        false
    };
    let mut next = 0usize;
    for ((request, location), plan) in requests.iter().zip(plans) {
        let Some((body, params)) = plan else {
            out.push(None);
            continue;
        };
        let mut check = Check::default();
        if params {
            check.params = request.required.clone();
            check
                .params
                .sort_by_key(|(_, name)| name.to_ascii_lowercase());
        }
        if body {
            for (content_type, _) in &request.bodies {
                let i = next;
                next += 1;
                if !added {
                    continue;
                }
                match compiler.compile(&format!("{MODELS_URL}#/models/{i}"), &mut schemas) {
                    Ok(idx) => check.bodies.push((content_type.clone(), Model(idx))),
                    Err(e) => errors.push(ConfigError::new(
                        format!("{location}: the {content_type} model"),
                        e.to_string(),
                    )),
                }
            }
        }
        out.push(Some(check));
    }
    (Models { schemas }, out)
}

/// Whether a parameter value counts as given (API Gateway refuses blank ones).
fn given(v: &str) -> bool {
    !v.trim().is_empty()
}

impl Check {
    /// Names of required parameters that are missing or blank, in the order listed.
    pub fn missing<'c>(
        &'c self,
        path: &[(String, String)],
        query: &[(String, String)],
        headers: &[Header],
    ) -> Vec<&'c str> {
        self.params
            .iter()
            .filter(|(place, name)| {
                let present = match place {
                    ParamIn::Path => path.iter().any(|(k, v)| k == name && given(v)),
                    ParamIn::Query => query.iter().any(|(k, v)| k == name && given(v)),
                    ParamIn::Header => headers
                        .iter()
                        .any(|(k, v)| k.eq_ignore_ascii_case(name) && given(v)),
                };
                !present
            })
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// The model for a request's `Content-Type` (its media type; `application/json` when
    /// absent), else the `$default` model.
    pub fn model_for(&self, content_type: Option<&str>) -> Option<Model> {
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "application/json".to_string());
        self.bodies
            .iter()
            .find(|(t, _)| *t == media)
            .or_else(|| self.bodies.iter().find(|(t, _)| t == "$default"))
            .map(|(_, m)| *m)
    }
}

impl Models {
    /// Checks a body against a model: an empty body counts as `{}`, one that is not JSON
    /// fails. The error is the text for `$context.error.validationErrorString`.
    pub fn validate(&self, model: Model, body: &[u8]) -> Result<(), String> {
        let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(body)
                .map_err(|e| format!("[Invalid JSON in the request body: {e}]"))?
        };
        if !self.schemas.contains(model.0) {
            return Err("[the model is not compiled]".into());
        }
        self.schemas
            .validate(&value, model.0)
            .map_err(|e| describe(&e))
    }
}

/// The leaf failures of a validation error, `[at /a/b: why, ...]`.
fn describe(e: &boon::ValidationError) -> String {
    let mut leaves = Vec::new();
    collect(e, &mut leaves);
    format!("[{}]", leaves.join(", "))
}

fn collect(e: &boon::ValidationError, out: &mut Vec<String>) {
    if out.len() >= 16 {
        return;
    }
    if e.causes.is_empty() {
        let at = e.instance_location.to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        out.push(format!("at {at}: {}", e.kind));
    } else {
        for c in &e.causes {
            collect(c, out);
        }
    }
}

#[cfg(test)]
mod tests;
