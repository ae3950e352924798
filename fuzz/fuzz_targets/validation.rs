//! Request validation fuzz target: bytes as a request body checked against a recursive
//! draft-4 model (refs, combinators, patterns, formats, unique items). Must answer valid or
//! invalid with a reason, never panic.

#![no_main]

use apigw_edge::validation::{compile, read_method_request, ApiValidation, Check, Models};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

thread_local! {
    static COMPILED: (Models, Option<Check>) = {
        let api = json!({
            "swagger": "2.0",
            "x-amazon-apigateway-request-validators": {"all": {"validateRequestBody": true}},
            "x-amazon-apigateway-request-validator": "all",
            "definitions": {"Node": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string", "pattern": "^[a-z]+(-[0-9]+)*$", "maxLength": 64},
                "at": {"type": "string", "format": "date-time"},
                "mail": {"type": "string", "format": "email"},
                "n": {"type": ["integer", "null"], "minimum": 0, "multipleOf": 3},
                "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                "kids": {"type": "array", "items": {"$ref": "#/definitions/Node"}},
                "any": {"anyOf": [{"type": "boolean"}, {"$ref": "#/definitions/Node"}]},
                "one": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                "not": {"not": {"enum": ["x", 1, null]}}
            }, "additionalProperties": {"type": "string"}}}
        });
        let op = json!({"parameters": [{"name": "b", "in": "body", "schema": {"$ref": "#/definitions/Node"}}]});
        let request = read_method_request(&op, &json!({}), &["application/json".to_string()]);
        let mut errors = Vec::new();
        let (models, mut checks) = compile(&ApiValidation::read(&api), &[(&request, "fuzz")], &mut errors);
        (models, checks.pop().flatten())
    };
}

fuzz_target!(|data: &[u8]| {
    COMPILED.with(|(models, check)| {
        if let Some(model) = check.as_ref().and_then(|c| c.model_for(None)) {
            let _ = models.validate(model, data);
        }
    });
});
