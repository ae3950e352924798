//! The stage's API as a clean OpenAPI document, as API Gateway's export makes it
//! (`apigw-edge export`).
//!
//! Owns: turning the deployment's export into a document for clients: Swagger 2.0 or
//! OpenAPI 3.0 whichever the input was, servers (or host and base path) pointing at the
//! gateway, documentation parts (`x-amazon-apigateway-documentation`) merged into the
//! descriptions they document, and API Gateway's extensions kept or left out.
//! Must not: read files or change what the gateway serves.

use serde_json::{json, Map, Value};

/// The document type to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocType {
    /// OpenAPI 3.0.1.
    Oas30,
    /// Swagger 2.0.
    Swagger,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Options {
    pub doc_type: DocType,
    /// Keep `x-amazon-apigateway-*` extensions (API Gateway's `extensions=apigateway`).
    pub extensions: bool,
    /// The gateway's base URL (`http://127.0.0.1:8080`).
    pub origin: String,
    /// The stage's base path (`/prod`, or a base path mapping, `""` for none).
    pub base_path: String,
}

const EXTENSION: &str = "x-amazon-apigateway-";
/// The path-item key of an `ANY` method.
pub const ANY_METHOD: &str = "x-amazon-apigateway-any-method";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The methods of a document in order: path, verb (`GET`, ..., `ANY`) and operation.
pub fn methods_of(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (key, op) in item.as_object().into_iter().flatten() {
            let verb = if key == ANY_METHOD {
                "ANY".to_string()
            } else if METHODS.contains(&key.as_str()) {
                key.to_ascii_uppercase()
            } else {
                continue;
            };
            out.push((path.clone(), verb, op));
        }
    }
    out
}

/// `paths` with each path item's `parameters` mapped by `parameter` and each operation by
/// `operation`.
fn map_paths(
    paths: &Value,
    parameter: impl Fn(&Value) -> Value,
    operation: impl Fn(&Value) -> Value,
) -> Value {
    let mut out = Map::new();
    for (path, item) in paths.as_object().into_iter().flatten() {
        let mut new_item = Map::new();
        for (m, v) in item.as_object().into_iter().flatten() {
            let converted = if m == "parameters" {
                Value::Array(v.as_array().into_iter().flatten().map(&parameter).collect())
            } else if METHODS.contains(&m.as_str()) || m == ANY_METHOD {
                operation(v)
            } else {
                v.clone()
            };
            new_item.insert(m.clone(), converted);
        }
        out.insert(path.clone(), Value::Object(new_item));
    }
    Value::Object(out)
}

/// An object with each value mapped by `f`.
fn map_values(v: &Value, f: impl Fn(&Value) -> Value) -> Value {
    Value::Object(
        v.as_object()
            .into_iter()
            .flatten()
            .map(|(k, item)| (k.clone(), f(item)))
            .collect(),
    )
}

/// Whether `doc` is an OpenAPI 3 document (else Swagger 2.0).
pub fn is_oas3(doc: &Value) -> bool {
    doc.get("openapi").is_some()
}

/// The stage's API for clients.
pub fn export(doc: &Value, o: &Options) -> Value {
    let mut doc = doc.clone();
    merge_documentation(&mut doc);
    let mut doc = match (is_oas3(&doc), o.doc_type) {
        (false, DocType::Oas30) => swagger_to_oas3(&doc),
        (true, DocType::Swagger) => oas3_to_swagger(&doc),
        _ => doc,
    };
    if let Some(top) = doc.as_object_mut() {
        match o.doc_type {
            DocType::Oas30 => {
                top.insert(
                    "servers".into(),
                    json!([{"url": format!("{}/{{basePath}}", o.origin),
                            "variables": {"basePath": {"default": o.base_path.trim_start_matches('/')}}}]),
                );
            }
            DocType::Swagger => {
                let (scheme, host) = o.origin.split_once("://").unwrap_or(("http", &o.origin));
                top.insert("host".into(), json!(host));
                top.insert(
                    "basePath".into(),
                    json!(if o.base_path.is_empty() {
                        "/"
                    } else {
                        &o.base_path
                    }),
                );
                top.insert("schemes".into(), json!([scheme]));
            }
        }
    }
    if !o.extensions {
        strip_extensions(&mut doc);
    }
    doc
}

/// Removes every `x-amazon-apigateway-*` member, at any depth.
fn strip_extensions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // `ANY` has no OpenAPI spelling: API Gateway exports it under its extension name
            // either way.
            m.retain(|k, _| !k.starts_with(EXTENSION) || k == ANY_METHOD);
            for child in m.values_mut() {
                strip_extensions(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_extensions),
        _ => {}
    }
}

/// Merges documentation parts into what they document: the API's `info`, operations,
/// parameters, responses and models (`description`, `summary`, `tags` and other
/// properties a part sets), as API Gateway's export does.
pub fn merge_documentation(doc: &mut Value) {
    let parts = doc
        .pointer("/x-amazon-apigateway-documentation/documentationParts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let oas3 = is_oas3(doc);
    for part in parts {
        let (Some(location), Some(Value::Object(props))) =
            (part.get("location"), part.get("properties"))
        else {
            continue;
        };
        let text = |k: &str| location.get(k).and_then(Value::as_str).unwrap_or_default();
        let path = text("path");
        let method = text("method").to_ascii_lowercase();
        let name = text("name");
        let targets: Vec<&mut Value> = match text("type") {
            "API" => doc.get_mut("info").into_iter().collect(),
            "METHOD" => operations(doc, path, &method),
            "MODEL" => {
                let models = if oas3 {
                    "/components/schemas"
                } else {
                    "/definitions"
                };
                doc.pointer_mut(&format!("{models}/{}", pointer_escape(name)))
                    .into_iter()
                    .collect()
            }
            "RESPONSE" => {
                let code = text("statusCode");
                operations(doc, path, &method)
                    .into_iter()
                    .filter_map(|op| op.get_mut("responses").and_then(|r| r.get_mut(code)))
                    .collect()
            }
            kind @ ("PATH_PARAMETER" | "QUERY_PARAMETER" | "REQUEST_HEADER") => {
                let place = match kind {
                    "PATH_PARAMETER" => "path",
                    "QUERY_PARAMETER" => "query",
                    _ => "header",
                };
                operations(doc, path, &method)
                    .into_iter()
                    .filter_map(|op| op.get_mut("parameters").and_then(Value::as_array_mut))
                    .flat_map(|ps| ps.iter_mut())
                    .filter(|p| {
                        p.get("in").and_then(Value::as_str) == Some(place)
                            && p.get("name").and_then(Value::as_str) == Some(name)
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        for target in targets {
            if let Value::Object(target) = target {
                for (k, v) in props {
                    target.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if let Some(top) = doc.as_object_mut() {
        top.remove("x-amazon-apigateway-documentation");
    }
}

/// The operations at `path` for `method` (`*` or empty: all of them).
fn operations<'a>(doc: &'a mut Value, path: &str, method: &str) -> Vec<&'a mut Value> {
    let Some(Value::Object(item)) = doc.get_mut("paths").and_then(|p| p.get_mut(path)) else {
        return Vec::new();
    };
    item.iter_mut()
        .filter(|(k, _)| {
            (METHODS.contains(&k.as_str()) || k.as_str() == ANY_METHOD)
                && (method.is_empty() || method == "*" || k.as_str() == method)
        })
        .map(|(_, v)| v)
        .collect()
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Rewrites `$ref`s from one models location to the other, at any depth.
fn rewrite_refs(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some(rest) = r.strip_prefix(from) {
                    *r = format!("{to}{rest}");
                }
            }
            for child in m.values_mut() {
                rewrite_refs(child, from, to);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_refs(i, from, to)),
        _ => {}
    }
}

/// The schema keys a Swagger 2.0 non-body parameter carries inline.
const INLINE_SCHEMA: [&str; 14] = [
    "type",
    "format",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
];

fn swagger_to_oas3(doc: &Value) -> Value {
    let mut out = Map::new();
    out.insert("openapi".into(), json!("3.0.1"));
    let consumes = doc
        .get("consumes")
        .cloned()
        .unwrap_or(json!(["application/json"]));
    let produces = doc
        .get("produces")
        .cloned()
        .unwrap_or(json!(["application/json"]));
    let mut components = Map::new();
    for (k, v) in doc.as_object().into_iter().flatten() {
        match k.as_str() {
            "swagger" | "host" | "basePath" | "schemes" | "consumes" | "produces" => {}
            "definitions" => {
                components.insert("schemas".into(), v.clone());
            }
            "securityDefinitions" => {
                components.insert("securitySchemes".into(), v.clone());
            }
            "paths" => {
                // Body parameters become request bodies: they are not parameters in 3.0.
                let not_body = |p: &Value| p.get("in") != Some(&json!("body"));
                let mut paths = map_paths(v, parameter_to_oas3, |op| {
                    operation_to_oas3(op, &consumes, &produces)
                });
                for item in paths
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                {
                    if let Some(Value::Array(ps)) = item.get_mut("parameters") {
                        ps.retain(not_body);
                    }
                }
                out.insert("paths".into(), paths);
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert("components".into(), Value::Object(components));
    let mut out = Value::Object(out);
    rewrite_refs(&mut out, "#/definitions/", "#/components/schemas/");
    out
}

fn parameter_to_oas3(p: &Value) -> Value {
    let Some(m) = p.as_object() else {
        return p.clone();
    };
    let mut out = Map::new();
    let mut schema = Map::new();
    for (k, v) in m {
        if INLINE_SCHEMA.contains(&k.as_str()) {
            schema.insert(k.clone(), v.clone());
        } else if k != "collectionFormat" {
            out.insert(k.clone(), v.clone());
        }
    }
    if !schema.is_empty() {
        out.insert("schema".into(), Value::Object(schema));
    }
    Value::Object(out)
}

fn operation_to_oas3(op: &Value, consumes: &Value, produces: &Value) -> Value {
    let Some(m) = op.as_object() else {
        return op.clone();
    };
    let consumes = m.get("consumes").unwrap_or(consumes);
    let produces = m.get("produces").unwrap_or(produces);
    let types = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "consumes" | "produces" => {}
            "parameters" => {
                let ps = v.as_array().cloned().unwrap_or_default();
                let params: Vec<Value> = ps
                    .iter()
                    .filter(|p| p.get("in") != Some(&json!("body")))
                    .map(parameter_to_oas3)
                    .collect();
                if let Some(body) = ps.iter().find(|p| p.get("in") == Some(&json!("body"))) {
                    let schema = body.get("schema").cloned().unwrap_or(json!({}));
                    let content: Map<String, Value> = types(consumes)
                        .into_iter()
                        .map(|t| (t, json!({"schema": schema})))
                        .collect();
                    let rb = if body.get("required") == Some(&json!(true)) {
                        json!({"content": content, "required": true})
                    } else {
                        json!({"content": content})
                    };
                    out.insert("requestBody".into(), rb);
                }
                if !params.is_empty() {
                    out.insert("parameters".into(), Value::Array(params));
                }
            }
            "responses" => {
                let mut responses = Map::new();
                for (code, r) in v.as_object().into_iter().flatten() {
                    let mut nr = Map::new();
                    for (rk, rv) in r.as_object().into_iter().flatten() {
                        match rk.as_str() {
                            "schema" => {
                                let content: Map<String, Value> = types(produces)
                                    .into_iter()
                                    .map(|t| (t, json!({"schema": rv})))
                                    .collect();
                                nr.insert("content".into(), Value::Object(content));
                            }
                            "headers" => {
                                nr.insert("headers".into(), map_values(rv, parameter_to_oas3));
                            }
                            _ => {
                                nr.insert(rk.clone(), rv.clone());
                            }
                        }
                    }
                    nr.entry("description")
                        .or_insert(json!(format!("{code} response")));
                    responses.insert(code.clone(), Value::Object(nr));
                }
                out.insert("responses".into(), Value::Object(responses));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn oas3_to_swagger(doc: &Value) -> Value {
    let mut out = Map::new();
    out.insert("swagger".into(), json!("2.0"));
    for (k, v) in doc.as_object().into_iter().flatten() {
        match k.as_str() {
            "openapi" | "servers" => {}
            "components" => {
                if let Some(s) = v.get("schemas") {
                    out.insert("definitions".into(), s.clone());
                }
                if let Some(s) = v.get("securitySchemes") {
                    out.insert("securityDefinitions".into(), s.clone());
                }
            }
            "paths" => {
                out.insert(
                    "paths".into(),
                    map_paths(v, parameter_to_swagger, operation_to_swagger),
                );
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let mut out = Value::Object(out);
    rewrite_refs(&mut out, "#/components/schemas/", "#/definitions/");
    out
}

fn parameter_to_swagger(p: &Value) -> Value {
    let Some(m) = p.as_object() else {
        return p.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        if k == "schema" {
            for (sk, sv) in v.as_object().into_iter().flatten() {
                out.insert(sk.clone(), sv.clone());
            }
        } else if k != "style" && k != "explode" {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn operation_to_swagger(op: &Value) -> Value {
    let Some(m) = op.as_object() else {
        return op.clone();
    };
    let mut out = Map::new();
    let mut params: Vec<Value> = m
        .get("parameters")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().map(parameter_to_swagger).collect())
        .unwrap_or_default();
    let mut produces: Vec<String> = Vec::new();
    for (k, v) in m {
        match k.as_str() {
            "parameters" => {}
            "requestBody" => {
                let content = v.get("content").and_then(Value::as_object);
                let consumes: Vec<&String> =
                    content.map(|c| c.keys().collect()).unwrap_or_default();
                let schema = content
                    .and_then(|c| c.values().next())
                    .and_then(|t| t.get("schema"))
                    .cloned()
                    .unwrap_or(json!({}));
                params.push(if v.get("required") == Some(&json!(true)) {
                    json!({"in": "body", "name": "body", "schema": schema, "required": true})
                } else {
                    json!({"in": "body", "name": "body", "schema": schema})
                });
                out.insert("consumes".into(), json!(consumes));
            }
            "responses" => {
                let mut responses = Map::new();
                for (code, r) in v.as_object().into_iter().flatten() {
                    let mut nr = Map::new();
                    for (rk, rv) in r.as_object().into_iter().flatten() {
                        match rk.as_str() {
                            "content" => {
                                for (t, media) in rv.as_object().into_iter().flatten() {
                                    if !produces.contains(t) {
                                        produces.push(t.clone());
                                    }
                                    if let (false, Some(s)) =
                                        (nr.contains_key("schema"), media.get("schema"))
                                    {
                                        nr.insert("schema".into(), s.clone());
                                    }
                                }
                            }
                            "headers" => {
                                nr.insert("headers".into(), map_values(rv, parameter_to_swagger));
                            }
                            _ => {
                                nr.insert(rk.clone(), rv.clone());
                            }
                        }
                    }
                    responses.insert(code.clone(), Value::Object(nr));
                }
                out.insert("responses".into(), Value::Object(responses));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
