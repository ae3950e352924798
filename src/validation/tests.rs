//! Request validation rules, table-driven: which validator applies, which parameters are
//! required, and bodies against draft-4 models.

use serde_json::{json, Value};

use super::*;

fn compiled(api: &Value, op: &Value) -> (Models, Option<Check>, Vec<ConfigError>) {
    let consumes = vec!["application/json".to_string()];
    let request = read_method_request(op, &json!({}), &consumes);
    let mut errors = Vec::new();
    let (models, mut checks) = compile(
        &ApiValidation::read(api),
        &[(&request, "openapi.paths./pets.post")],
        &mut errors,
    );
    (models, checks.pop().flatten(), errors)
}

fn swagger(validator: &str) -> Value {
    json!({
        "swagger": "2.0",
        "x-amazon-apigateway-request-validators": {
            "all": {"validateRequestBody": true, "validateRequestParameters": true},
            "params": {"validateRequestBody": false, "validateRequestParameters": true},
            "body": {"validateRequestBody": true, "validateRequestParameters": false}
        },
        "x-amazon-apigateway-request-validator": validator,
        "definitions": {
            "Pet": {"type": "object", "required": ["name", "kind"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "pattern": "^[A-Za-z ]+$"},
                    "kind": {"enum": ["cat", "dog"]},
                    "age": {"type": "integer", "minimum": 0},
                    "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                    "parent": {"$ref": "#/definitions/Pet"},
                    "chip": {"oneOf": [{"type": "null"}, {"type": "string", "format": "ipv4"}]}
                }}
        }
    })
}

fn op() -> Value {
    json!({"parameters": [
        {"name": "id", "in": "path", "required": true, "type": "string"},
        {"name": "q", "in": "query", "required": true, "type": "string"},
        {"name": "opt", "in": "query", "required": false, "type": "string"},
        {"name": "X-Trace", "in": "header", "required": true, "type": "string"},
        {"name": "body", "in": "body", "schema": {"$ref": "#/definitions/Pet"}}
    ]})
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_operations_validator_wins_over_the_apis_and_says_what_is_checked() {
    let cases = [
        // (API default, operation's own, params checked, body checked)
        ("all", None, true, true),
        ("params", None, true, false),
        ("body", None, false, true),
        ("params", Some("body"), false, true),
    ];
    for (default, own, params, body) in cases {
        let mut o = op();
        if let Some(v) = own {
            o["x-amazon-apigateway-request-validator"] = json!(v);
        }
        let (_, check, errors) = compiled(&swagger(default), &o);
        assert!(errors.is_empty(), "{errors:?}");
        let check = check.unwrap();
        assert_eq!(!check.params.is_empty(), params, "{default} {own:?}");
        assert_eq!(!check.bodies.is_empty(), body, "{default} {own:?}");
    }
    // No validator anywhere: nothing is checked.
    let mut api = swagger("all");
    api.as_object_mut()
        .unwrap()
        .remove("x-amazon-apigateway-request-validator");
    assert!(compiled(&api, &op()).1.is_none());
    // A validator name nobody declared is a configuration error naming the field.
    let mut o = op();
    o["x-amazon-apigateway-request-validator"] = json!("strict");
    let (_, _, errors) = compiled(&swagger("all"), &o);
    assert_eq!(
        errors[0].location,
        "openapi.paths./pets.post.x-amazon-apigateway-request-validator"
    );
    assert!(errors[0].message.contains("`strict`"), "{errors:?}");
}

#[test]
fn required_parameters_must_be_present_and_not_blank() {
    let (_, check, _) = compiled(&swagger("params"), &op());
    let check = check.unwrap();
    let path = pairs(&[("id", "7")]);
    let headers = pairs(&[("x-trace", "abc")]);
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Pairs, Pairs, &[&str]); 5] = [
        (&[("q", "cats")], &[("x-trace", "abc")], &[]),
        (&[], &[("x-trace", "abc")], &["q"]),
        (&[("q", "")], &[("x-trace", "abc")], &["q"]),
        (&[("q", " ")], &[], &["q", "X-Trace"]),
        (&[("opt", "1")], &[("X-TRACE", "")], &["q", "X-Trace"]),
    ];
    for (query, hdrs, missing) in cases {
        let got = check.missing(&path, &pairs(query), &pairs(hdrs));
        assert_eq!(got, missing, "{query:?} {hdrs:?}");
    }
    assert_eq!(check.missing(&[], &pairs(&[("q", "a")]), &headers), ["id"]);
}

#[test]
fn bodies_are_checked_against_the_model_with_refs_and_keywords() {
    let (models, check, errors) = compiled(&swagger("body"), &op());
    assert!(errors.is_empty(), "{errors:?}");
    let model = check
        .unwrap()
        .model_for(Some("application/json; charset=utf-8"))
        .unwrap();
    let cases: [(&str, Option<&str>); 12] = [
        (r#"{"name":"Rex","kind":"dog"}"#, None),
        (
            r#"{"name":"Rex","kind":"dog","age":3,"tags":["a","b"],"chip":null}"#,
            None,
        ),
        (
            r#"{"name":"Rex","kind":"dog","parent":{"name":"Old","kind":"dog"}}"#,
            None,
        ),
        (r#"{"name":"Rex"}"#, Some("kind")),
        (r#"{"name":"Rex","kind":"cow"}"#, Some("/kind")),
        (r#"{"name":"R3x","kind":"dog"}"#, Some("/name")),
        (r#"{"name":"Rex","kind":"dog","age":-1}"#, Some("/age")),
        (
            r#"{"name":"Rex","kind":"dog","tags":["a","a"]}"#,
            Some("/tags"),
        ),
        (
            r#"{"name":"Rex","kind":"dog","parent":{"name":"Old"}}"#,
            Some("/parent"),
        ),
        (
            r#"{"name":"Rex","kind":"dog","chip":"999.1.1.1"}"#,
            Some("/chip"),
        ),
        ("", Some("kind")),
        ("{not json", Some("Invalid JSON")),
    ];
    for (body, why) in cases {
        match (models.validate(model, body.as_bytes()), why) {
            (Ok(()), None) => {}
            (Err(e), Some(w)) => {
                assert!(e.contains(w), "{body}: {e}");
                assert!(e.starts_with('[') && e.ends_with(']'), "{e}");
            }
            (got, _) => panic!("{body}: {got:?}"),
        }
    }
}

#[test]
fn the_model_is_chosen_by_content_type() {
    let api = json!({"openapi": "3.0.1",
        "x-amazon-apigateway-request-validators": {"b": {"validateRequestBody": true}},
        "x-amazon-apigateway-request-validator": "b",
        "components": {"schemas": {"Note": {"type": "object", "required": ["text"]}}}});
    let op = json!({"requestBody": {"content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Note"}},
        "text/plain": {"schema": {"type": "string"}}}}});
    let (models, check, errors) = compiled(&api, &op);
    assert!(errors.is_empty(), "{errors:?}");
    let check = check.unwrap();
    let json_model = check.model_for(None).unwrap();
    assert!(models.validate(json_model, br#"{"text":"hi"}"#).is_ok());
    assert!(models.validate(json_model, b"{}").is_err());
    assert!(check.model_for(Some("Application/JSON")).is_some());
    assert!(check.model_for(Some("text/plain")).is_some());
    // A content type without a model is not validated.
    assert!(check.model_for(Some("application/xml")).is_none());
}

#[test]
fn models_that_do_not_compile_or_refer_outside_the_export_are_refused() {
    let cases = [
        json!({"$ref": "#/definitions/Nope"}),
        json!({"$ref": "https://example.com/schema.json"}),
        json!({"$ref": "file:///etc/passwd"}),
        json!({"type": "object", "properties": {"a": {"pattern": "(unclosed"}}}),
    ];
    for schema in cases {
        let op = json!({"parameters": [{"name": "b", "in": "body", "schema": schema}]});
        let (_, _, errors) = compiled(&swagger("body"), &op);
        assert_eq!(errors.len(), 1, "{schema}: {errors:?}");
        assert!(
            errors[0].location.starts_with("openapi.paths./pets.post"),
            "{errors:?}"
        );
    }
}
