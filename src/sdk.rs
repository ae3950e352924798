//! Client SDKs for a stage's API (`apigw-edge sdk`), in the spirit of API Gateway's generated
//! SDKs: one function per method, models as types, hooks for the API key and for signing.
//!
//! Owns: the generated source for JavaScript (an ES module), TypeScript (the same module
//! with types) and Python (standard library only), from the stage's OpenAPI 3 export and
//! what each method needs of a caller.
//! Must not: read or write files, or call anything.

use std::fmt::Write;

use serde_json::Value;

use crate::gateway::MethodAuth;

/// A target language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    JavaScript,
    TypeScript,
    Python,
}

impl Lang {
    /// Parses `--lang`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "javascript" | "js" => Some(Lang::JavaScript),
            "typescript" | "ts" => Some(Lang::TypeScript),
            "python" | "py" => Some(Lang::Python),
            _ => None,
        }
    }
}

/// One method of the API, as the SDK exposes it.
struct Method<'a> {
    /// Function name, camelCase (`getPetsId`).
    name: String,
    verb: String,
    path: String,
    op: &'a Value,
    needs: String,
}

/// The words of a name, lower-case: split at anything not a letter or digit, and where a
/// capital follows a small letter or digit (`readPet` is `read`, `pet`).
fn words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut prev_small = false;
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            prev_small = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_small && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        prev_small = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn camel(words: &[String]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        let mut chars = w.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                out.push(first);
            } else {
                out.push(first.to_ascii_uppercase());
            }
            out.extend(chars);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

/// `getPetsId` → `get_pets_id`.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn methods<'a>(doc: &'a Value, auth: &[MethodAuth]) -> Vec<Method<'a>> {
    let mut out: Vec<Method> = Vec::new();
    for (path, verb, op) in crate::export::methods_of(doc) {
        let base = match op.get("operationId").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => camel(&words(id)),
            _ => {
                let mut w = vec![verb.to_ascii_lowercase()];
                w.extend(words(&path));
                if path == "/" {
                    w.push("root".into());
                }
                camel(&w)
            }
        };
        let mut name = base.clone();
        let mut n = 2;
        while out.iter().any(|m| m.name == name) {
            name = format!("{base}{n}");
            n += 1;
        }
        let a = auth
            .iter()
            .find(|a| a.resource == path && a.method.eq_ignore_ascii_case(&verb));
        let mut needs = Vec::new();
        if let Some(a) = a {
            if a.api_key {
                needs.push("an API key (apiKey)");
            }
            if a.authorizer.is_some() || a.token.is_some() {
                needs.push("an Authorization header");
            }
            if a.iam {
                needs.push("a SigV4 signature (sign)");
            }
        }
        out.push(Method {
            name,
            verb,
            path,
            op,
            needs: if needs.is_empty() {
                "nothing".into()
            } else {
                needs.join(", ")
            },
        });
    }
    out
}

fn params_in<'a>(op: &'a Value, place: &str) -> Vec<&'a Value> {
    op.get("parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter(|p| p.get("in").and_then(Value::as_str) == Some(place))
                .collect()
        })
        .unwrap_or_default()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A string literal for JavaScript, TypeScript and Python alike.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A one-line comment text (no line breaks, no comment terminators).
fn comment(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace("*/", "* /")
}

/// The generated files: (file name, content).
pub fn generate(
    lang: Lang,
    doc: &Value,
    auth: &[MethodAuth],
    base_url: &str,
) -> Vec<(String, String)> {
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("API");
    let methods = methods(doc, auth);
    match lang {
        Lang::JavaScript => vec![(
            "client.js".into(),
            javascript(title, &methods, base_url, None),
        )],
        Lang::TypeScript => {
            let models = typescript_models(doc);
            vec![(
                "client.ts".into(),
                javascript(title, &methods, base_url, Some(&models)),
            )]
        }
        Lang::Python => vec![("client.py".into(), python(title, &methods, base_url))],
    }
}

/// A schema as a TypeScript type.
fn ts_type(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return camel_type(r.rsplit('/').next().unwrap_or(r));
    }
    match text(schema, "type") {
        "string" => "string".into(),
        "integer" | "number" => "number".into(),
        "boolean" => "boolean".into(),
        "array" => format!(
            "Array<{}>",
            ts_type(schema.get("items").unwrap_or(&Value::Null))
        ),
        "object" if schema.get("properties").is_some() => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut out = String::from("{ ");
            for (name, p) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let opt = if required.contains(&name.as_str()) {
                    ""
                } else {
                    "?"
                };
                let _ = write!(out, "{}{opt}: {}; ", quoted(name), ts_type(p));
            }
            out.push('}');
            out
        }
        _ => "unknown".into(),
    }
}

/// A model name as a TypeScript identifier.
fn camel_type(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, '_');
    }
    out
}

fn typescript_models(doc: &Value) -> String {
    let mut out = String::new();
    for (name, schema) in doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let desc = text(schema, "description");
        if !desc.is_empty() {
            let _ = writeln!(out, "/** {} */", comment(desc));
        }
        let _ = writeln!(
            out,
            "export type {} = {};",
            camel_type(name),
            ts_type(schema)
        );
    }
    out
}

const JS_RUNTIME: &str = r#"
/** An API error the client could not turn into a response (network failure). */
export class ApiError extends Error {}

function fillPath(template, values) {
  return template.replace(/\{([^}+]+)(\+?)\}/g, (_, name, greedy) => {
    const value = values?.[name];
    if (value === undefined || value === null) throw new ApiError(`missing path parameter ${name}`);
    const text = String(value);
    return greedy ? text.split("/").map(encodeURIComponent).join("/") : encodeURIComponent(text);
  });
}

/**
 * A client. Options: baseUrl (default: the gateway the SDK was generated for), apiKey (sent
 * as x-api-key), headers (sent with every request), sign (async (request) => request, to
 * sign IAM-authorised calls: it gets {method, url, headers, body} and returns them
 * signed), fetch (default: the global fetch).
 */
export function createClient(options = {}) {
  const baseUrl = String(options.baseUrl ?? BASE_URL).replace(/\/$/, "");
  const doFetch = options.fetch ?? globalThis.fetch;
  async function call(method, template, params = {}) {
    const url = new URL(baseUrl + fillPath(template, params.path));
    for (const [k, v] of Object.entries(params.query ?? {})) {
      for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(one));
    }
    const headers = { ...(options.headers ?? {}), ...(params.headers ?? {}) };
    if (options.apiKey) headers["x-api-key"] = options.apiKey;
    let body = params.body;
    if (body !== undefined && typeof body !== "string") {
      body = JSON.stringify(body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) headers["content-type"] = "application/json";
    }
    let request = { method, url: url.toString(), headers, body };
    if (options.sign) request = await options.sign(request);
    const res = await doFetch(request.url, { method: request.method, headers: request.headers, body: request.body });
    const text = await res.text();
    let data = text;
    if ((res.headers.get("content-type") ?? "").includes("json") && text !== "") {
      try { data = JSON.parse(text); } catch { data = text; }
    }
    return { status: res.status, headers: Object.fromEntries(res.headers.entries()), body: data };
  }
  return {
"#;

const TS_RUNTIME: &str = r#"
/** What every call answers. */
export interface ApiResponse<T = unknown> { status: number; headers: Record<string, string>; body: T | string; }
/** A request as the sign hook gets and returns it. */
export interface ApiRequest { method: string; url: string; headers: Record<string, string>; body?: string; }
export interface ClientOptions {
  baseUrl?: string;
  apiKey?: string;
  headers?: Record<string, string>;
  sign?: (request: ApiRequest) => Promise<ApiRequest> | ApiRequest;
  fetch?: typeof fetch;
}
type Query = Record<string, string | number | boolean | Array<string | number | boolean>>;

/** An API error the client could not turn into a response (network failure). */
export class ApiError extends Error {}

function fillPath(template: string, values?: Record<string, string | number>): string {
  return template.replace(/\{([^}+]+)(\+?)\}/g, (_: string, name: string, greedy: string) => {
    const value = values?.[name];
    if (value === undefined || value === null) throw new ApiError(`missing path parameter ${name}`);
    const text = String(value);
    return greedy ? text.split("/").map(encodeURIComponent).join("/") : encodeURIComponent(text);
  });
}

/** A client; see ClientOptions (apiKey is sent as x-api-key, sign signs IAM-authorised calls). */
export function createClient(options: ClientOptions = {}) {
  const baseUrl = String(options.baseUrl ?? BASE_URL).replace(/\/$/, "");
  const doFetch = options.fetch ?? globalThis.fetch;
  async function call<T>(method: string, template: string,
      params: { path?: Record<string, string | number>; query?: Query; headers?: Record<string, string>; body?: unknown } = {}): Promise<ApiResponse<T>> {
    const url = new URL(baseUrl + fillPath(template, params.path));
    for (const [k, v] of Object.entries(params.query ?? {})) {
      for (const one of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(one));
    }
    const headers: Record<string, string> = { ...(options.headers ?? {}), ...(params.headers ?? {}) };
    if (options.apiKey) headers["x-api-key"] = options.apiKey;
    let body: string | undefined = undefined;
    if (typeof params.body === "string") body = params.body;
    else if (params.body !== undefined) {
      body = JSON.stringify(params.body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) headers["content-type"] = "application/json";
    }
    let request: ApiRequest = { method, url: url.toString(), headers, body };
    if (options.sign) request = await options.sign(request);
    const res = await doFetch(request.url, { method: request.method, headers: request.headers, body: request.body });
    const text = await res.text();
    let data: T | string = text;
    if ((res.headers.get("content-type") ?? "").includes("json") && text !== "") {
      try { data = JSON.parse(text) as T; } catch { data = text; }
    }
    const out: Record<string, string> = {};
    res.headers.forEach((v, k) => { out[k] = v; });
    return { status: res.status, headers: out, body: data };
  }
  return {
"#;

fn javascript(title: &str, methods: &[Method], base_url: &str, models: Option<&str>) -> String {
    let mut out = format!(
        "// A client for {} generated by apigw-edge. Do not edit: generate it again.\n\nexport const BASE_URL = {};\n",
        comment(title),
        quoted(base_url)
    );
    if let Some(models) = models {
        out.push('\n');
        out.push_str(models);
        out.push_str(TS_RUNTIME);
    } else {
        out.push_str(JS_RUNTIME);
    }
    for m in methods {
        let summary = comment(text(m.op, "summary"));
        let _ = writeln!(
            out,
            "    /** {} {}{}{} Needs {}. */",
            m.verb,
            comment(&m.path),
            if summary.is_empty() { "" } else { ": " },
            summary,
            m.needs
        );
        let verb = if m.verb == "ANY" {
            "GET"
        } else {
            m.verb.as_str()
        };
        match models {
            None => {
                let _ = writeln!(
                    out,
                    "    {}: (params = {{}}) => call({}, {}, params),",
                    m.name,
                    quoted(verb),
                    quoted(&m.path)
                );
            }
            Some(_) => {
                let path_params = params_in(m.op, "path");
                let path_type = if path_params.is_empty() {
                    String::new()
                } else {
                    let fields: Vec<String> = path_params
                        .iter()
                        .map(|p| format!("{}: string | number", quoted(text(p, "name"))))
                        .collect();
                    format!("path: {{ {} }}; ", fields.join("; "))
                };
                let body_type =
                    m.op.pointer("/requestBody/content")
                        .and_then(Value::as_object)
                        .and_then(|c| c.values().next())
                        .and_then(|media| media.get("schema"))
                        .map_or("unknown".to_string(), ts_type);
                let answer_type =
                    m.op.get("responses")
                        .and_then(Value::as_object)
                        .and_then(|r| {
                            r.iter()
                                .find(|(code, _)| code.starts_with('2'))
                                .and_then(|(_, resp)| resp.pointer("/content"))
                                .and_then(Value::as_object)
                                .and_then(|c| c.values().next())
                                .and_then(|media| media.get("schema"))
                        })
                        .map_or("unknown".to_string(), ts_type);
                let optional = if path_params.is_empty() { " = {}" } else { "" };
                let _ = writeln!(
                    out,
                    "    {}: (params: {{ {path_type}query?: Query; headers?: Record<string, string>; body?: {body_type} }}{optional}) => call<{answer_type}>({}, {}, params),",
                    m.name,
                    quoted(verb),
                    quoted(&m.path)
                );
            }
        }
    }
    out.push_str("  };\n}\n");
    out
}

const PY_RUNTIME: &str = r#"
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, NamedTuple, Optional


class Response(NamedTuple):
    """What every call answers: the status, the headers (lower-case names) and the body
    (parsed when it is JSON)."""
    status: int
    headers: Dict[str, str]
    body: Any


class ApiError(Exception):
    """A call that got no answer (network failure)."""


def _fill_path(template: str, values: Optional[Dict[str, Any]]) -> str:
    out = ""
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        name, _, rest = after.partition("}")
        greedy = name.endswith("+")
        name = name.rstrip("+")
        if values is None or name not in values:
            raise ApiError(f"missing path parameter {name}")
        out += before + urllib.parse.quote(str(values[name]), safe="/" if greedy else "")
    return out + rest


class Client:
    """A client. api_key is sent as x-api-key; headers go with every request; sign, given
    (method, url, headers, body), returns the headers to send (to sign IAM-authorised
    calls with SigV4)."""

    def __init__(self, base_url: str = BASE_URL, api_key: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None,
                 sign: Optional[Callable[[str, str, Dict[str, str], Optional[bytes]], Dict[str, str]]] = None,
                 timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.headers = dict(headers or {})
        self.sign = sign
        self.timeout = timeout

    def _call(self, method: str, template: str, path: Optional[Dict[str, Any]] = None,
              query: Optional[Dict[str, Any]] = None, headers: Optional[Dict[str, str]] = None,
              body: Any = None) -> Response:
        url = self.base_url + _fill_path(template, path)
        if query:
            pairs = [(k, str(v)) for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])]
            url += "?" + urllib.parse.urlencode(pairs)
        sent = dict(self.headers)
        sent.update(headers or {})
        if self.api_key:
            sent["x-api-key"] = self.api_key
        data = None
        if body is not None:
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
            else:
                data = json.dumps(body).encode()
                if not any(k.lower() == "content-type" for k in sent):
                    sent["content-type"] = "application/json"
        if self.sign:
            sent = self.sign(method, url, sent, data)
        request = urllib.request.Request(url, data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as res:
                status, raw, got = res.status, res.read(), res.headers
        except urllib.error.HTTPError as e:
            status, raw, got = e.code, e.read(), e.headers
        except urllib.error.URLError as e:
            raise ApiError(str(e.reason)) from e
        answer_headers = {k.lower(): v for k, v in got.items()}
        text = raw.decode("utf-8", "replace")
        parsed: Any = text
        if "json" in answer_headers.get("content-type", "") and text:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
        return Response(status, answer_headers, parsed)
"#;

fn python(title: &str, methods: &[Method], base_url: &str) -> String {
    let mut out = format!(
        "\"\"\"A client for {} generated by apigw-edge. Do not edit: generate it again.\"\"\"\n\nBASE_URL = {}\n",
        comment(title).replace("\"\"\"", "'''"),
        quoted(base_url)
    );
    out.push_str(PY_RUNTIME);
    for m in methods {
        let verb = if m.verb == "ANY" {
            "GET"
        } else {
            m.verb.as_str()
        };
        let summary = comment(text(m.op, "summary")).replace("\"\"\"", "'''");
        let _ = write!(
            out,
            "\n    def {}(self, path: Optional[Dict[str, Any]] = None, query: Optional[Dict[str, Any]] = None,\n            headers: Optional[Dict[str, str]] = None, body: Any = None) -> Response:\n        \"\"\"{} {}{}{} Needs {}.\"\"\"\n        return self._call({}, {}, path, query, headers, body)\n",
            snake(&m.name),
            m.verb,
            comment(&m.path).replace('\\', "\\\\"),
            if summary.is_empty() { "" } else { ": " },
            summary.replace('\\', "\\\\"),
            m.needs,
            quoted(verb),
            quoted(&m.path)
        );
    }
    out
}

#[cfg(test)]
mod tests;
