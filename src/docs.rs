//! A self-contained HTML reference of a stage's API (`apigw-edge docs`).
//!
//! Owns: the page: each method with its description, what a caller needs (API key, Lambda
//! authorizer, Cognito or JWT token, IAM signature), parameters, request body, responses
//! and an example request; then the models. One file, no scripts, no fonts or styles from
//! elsewhere: it opens from disk.
//! Must not: read files, or describe anything the export and the gateway do not say.

use std::fmt::Write;

use serde_json::Value;

use crate::gateway::MethodAuth;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
code,pre{font-family:ui-monospace,monospace;background:#f4f4f4}pre{padding:.6rem;overflow-x:auto}\
section.method{border-top:1px solid #ccc;margin-top:1.5rem}.verb{font-weight:bold;color:#06c}\
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}\
.auth{background:#fff7e0;padding:.3rem .5rem}";

/// Text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An id for an anchor.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A schema's short name: the model it refers to (linked), else its type.
fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#model-{}\">{}</a>", slug(name), esc(name));
    }
    match text(schema, "type") {
        "array" => format!(
            "array of {}",
            schema_name(schema.get("items").unwrap_or(&Value::Null))
        ),
        "" => "any".into(),
        t => esc(t),
    }
}

/// What a caller needs for a method, in words.
fn auth_text(auth: Option<&MethodAuth>) -> String {
    let Some(a) = auth else {
        return "None".into();
    };
    let mut needs = Vec::new();
    if a.iam {
        needs.push(
            "AWS IAM: sign the request with SigV4 (service <code>execute-api</code>)".to_string(),
        );
    }
    if let Some((name, sources)) = &a.authorizer {
        let from: Vec<String> = sources
            .iter()
            .map(|s| format!("<code>{}</code>", esc(s)))
            .collect();
        needs.push(format!(
            "Lambda authorizer <code>{}</code> (identity from {})",
            esc(name),
            if from.is_empty() {
                "the request".to_string()
            } else {
                from.join(", ")
            }
        ));
    }
    if let Some((name, scopes)) = &a.token {
        let scopes = if scopes.is_empty() {
            String::new()
        } else {
            format!(
                " with a scope of {}",
                scopes
                    .iter()
                    .map(|s| format!("<code>{}</code>", esc(s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        needs.push(format!(
            "a token from <code>{}</code> in the <code>Authorization</code> header{scopes}",
            esc(name)
        ));
    }
    if a.api_key {
        needs.push("API key in the <code>x-api-key</code> header".into());
    }
    if needs.is_empty() {
        "None".into()
    } else {
        needs.join("; ")
    }
}

/// The page for `doc` (an OpenAPI 3 export, see [`crate::export`]) served at `base_url`.
pub fn html(doc: &Value, auth: &[MethodAuth], base_url: &str) -> String {
    let info = doc.get("info").unwrap_or(&Value::Null);
    let title = match text(info, "title") {
        "" => "API",
        t => t,
    };
    let methods = crate::export::methods_of(doc);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} reference</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(title)
    );
    if !text(info, "description").is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"description\">{}</p>",
            esc(text(info, "description"))
        );
    }
    let _ = writeln!(
        out,
        "<p>Base URL: <code id=\"base-url\">{}</code></p>\n<h2>Methods</h2>\n<ul id=\"methods\">",
        esc(base_url)
    );
    for (path, verb, op) in &methods {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}-{}\">{verb} {}</a> {}</li>",
            slug(verb),
            slug(path),
            esc(path),
            esc(text(op, "summary"))
        );
    }
    out.push_str("</ul>\n");
    for (path, verb, op) in &methods {
        let a = auth
            .iter()
            .find(|a| a.resource == *path && a.method.eq_ignore_ascii_case(verb));
        method_section(&mut out, path, verb, op, a, base_url);
    }
    let models = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object);
    if let Some(models) = models.filter(|m| !m.is_empty()) {
        out.push_str("<h2>Models</h2>\n");
        for (name, schema) in models {
            let pretty = serde_json::to_string_pretty(schema).unwrap_or_default();
            let _ = writeln!(
                out,
                "<section class=\"model\" id=\"model-{}\"><h3>{}</h3><p>{}</p><pre>{}</pre></section>",
                slug(name),
                esc(name),
                esc(text(schema, "description")),
                esc(&pretty)
            );
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn method_section(
    out: &mut String,
    path: &str,
    verb: &str,
    op: &Value,
    auth: Option<&MethodAuth>,
    base_url: &str,
) {
    let _ = writeln!(
        out,
        "<section class=\"method\" id=\"{}-{}\"><h2><span class=\"verb\">{verb}</span> <code>{}</code></h2>",
        slug(verb),
        slug(path),
        esc(path)
    );
    for key in ["summary", "description"] {
        if !text(op, key).is_empty() {
            let _ = writeln!(out, "<p class=\"{key}\">{}</p>", esc(text(op, key)));
        }
    }
    let _ = writeln!(
        out,
        "<p class=\"auth\">Authorization: {}</p>",
        auth_text(auth)
    );
    let params = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !params.is_empty() {
        out.push_str("<h3>Parameters</h3><table class=\"parameters\"><tr><th>name</th><th>in</th><th>required</th><th>type</th><th>description</th></tr>\n");
        for p in &params {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(text(p, "name")),
                esc(text(p, "in")),
                if p.get("required") == Some(&Value::Bool(true)) {
                    "yes"
                } else {
                    "no"
                },
                schema_name(p.get("schema").unwrap_or(&Value::Null)),
                esc(text(p, "description"))
            );
        }
        out.push_str("</table>\n");
    }
    let body = op
        .pointer("/requestBody/content")
        .and_then(Value::as_object);
    if let Some(content) = body {
        out.push_str("<h3>Request body</h3><ul class=\"body\">");
        for (t, media) in content {
            let _ = write!(
                out,
                "<li><code>{}</code>: {}</li>",
                esc(t),
                schema_name(media.get("schema").unwrap_or(&Value::Null))
            );
        }
        out.push_str("</ul>\n");
    }
    let responses = op.get("responses").and_then(Value::as_object);
    if let Some(responses) = responses.filter(|r| !r.is_empty()) {
        out.push_str("<h3>Responses</h3><table class=\"responses\"><tr><th>status</th><th>description</th><th>body</th></tr>\n");
        for (code, r) in responses {
            let schema = r
                .get("content")
                .and_then(Value::as_object)
                .and_then(|c| c.values().next())
                .and_then(|m| m.get("schema"));
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(code),
                esc(text(r, "description")),
                schema.map(schema_name).unwrap_or_default()
            );
        }
        out.push_str("</table>\n");
    }
    // An example request, with the path's parameters as placeholders.
    let method = if verb == "ANY" { "GET" } else { verb };
    let mut example = format!("curl -X {method} '{base_url}{path}'");
    if auth.is_some_and(|a| a.api_key) {
        example.push_str(" \\\n  -H 'x-api-key: YOUR_API_KEY'");
    }
    if auth.is_some_and(|a| a.authorizer.is_some() || a.token.is_some()) {
        example.push_str(" \\\n  -H 'Authorization: YOUR_TOKEN'");
    }
    if let Some(content) = body {
        if let Some(t) = content.keys().next() {
            let _ = write!(example, " \\\n  -H 'Content-Type: {t}' \\\n  -d @body");
        }
    }
    if auth.is_some_and(|a| a.iam) {
        example.push_str("    # signed with SigV4, e.g. curl --aws-sigv4 'aws:amz:REGION:execute-api' --user KEY:SECRET");
    }
    let _ = writeln!(
        out,
        "<h3>Example request</h3><pre class=\"example\">{}</pre></section>",
        esc(&example)
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn auth(resource: &str, method: &str) -> MethodAuth {
        MethodAuth {
            resource: resource.into(),
            method: method.into(),
            api_key: false,
            authorizer: None,
            token: None,
            iam: false,
        }
    }

    #[test]
    fn the_page_describes_every_method_and_model() {
        let doc = json!({"openapi": "3.0.1", "info": {"title": "Pets <API>", "description": "All about pets"},
            "paths": {
                "/pets/{id}": {
                    "get": {"summary": "Read a pet",
                        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The id"}],
                        "responses": {"200": {"description": "a pet", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}},
                    "post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                        "responses": {"201": {"description": "made"}}}
                },
                "/any": {"x-amazon-apigateway-any-method": {"responses": {}}}
            },
            "components": {"schemas": {"Pet": {"type": "object", "description": "A pet"}}}});
        let mut get = auth("/pets/{id}", "GET");
        get.api_key = true;
        get.authorizer = Some((
            "tok".into(),
            vec!["method.request.header.Authorization".into()],
        ));
        let mut post = auth("/pets/{id}", "POST");
        post.iam = true;
        let mut any = auth("/any", "ANY");
        any.token = Some(("pool".into(), vec!["pets/read".into()]));
        let page = html(&doc, &[get, post, any], "http://127.0.0.1:8080/prod");
        for want in [
            "<title>Pets &lt;API&gt; reference</title>",
            "<p class=\"description\">All about pets</p>",
            "<code id=\"base-url\">http://127.0.0.1:8080/prod</code>",
            "<li><a href=\"#get--pets--id-\">GET /pets/{id}</a> Read a pet</li>",
            "<section class=\"method\" id=\"get--pets--id-\"><h2><span class=\"verb\">GET</span> <code>/pets/{id}</code></h2>",
            "Authorization: Lambda authorizer <code>tok</code> (identity from <code>method.request.header.Authorization</code>); API key in the <code>x-api-key</code> header",
            "<tr><td><code>id</code></td><td>path</td><td>yes</td><td>string</td><td>The id</td></tr>",
            "<tr><td>200</td><td>a pet</td><td><a href=\"#model-pet\">Pet</a></td></tr>",
            "curl -X GET &#39;http://127.0.0.1:8080/prod/pets/{id}&#39; \\\n  -H &#39;x-api-key: YOUR_API_KEY&#39; \\\n  -H &#39;Authorization: YOUR_TOKEN&#39;",
            "Authorization: AWS IAM: sign the request with SigV4",
            "<li><code>application/json</code>: <a href=\"#model-pet\">Pet</a></li>",
            "<span class=\"verb\">ANY</span> <code>/any</code>",
            "a token from <code>pool</code> in the <code>Authorization</code> header with a scope of <code>pets/read</code>",
            "<section class=\"model\" id=\"model-pet\"><h3>Pet</h3><p>A pet</p>",
        ] {
            assert!(page.contains(want), "missing {want}\n{page}");
        }
        assert!(!page.contains("<script"));
        assert!(!page.contains(" src=") && !page.contains("<link"));
        // A method without responses gets no empty table.
        let any = page.split("<code>/any</code>").nth(1).unwrap();
        let any = any.split("<section").next().unwrap();
        assert!(!any.contains("class=\"responses\""));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(slug("/pets/{id}"), "-pets--id-");
    }
}
