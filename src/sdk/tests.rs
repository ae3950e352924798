use serde_json::json;

use super::*;

fn doc() -> Value {
    json!({"openapi": "3.0.1", "info": {"title": "Pets"},
        "paths": {
            "/": {"get": {"responses": {}}},
            "/pets/{id}": {
                "get": {"operationId": "read-pet", "summary": "Read a pet",
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}},
                "post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "responses": {"201": {"description": "made"}}}
            },
            "/pets": {"x-amazon-apigateway-any-method": {"operationId": "readPet", "responses": {}}}
        },
        "components": {"schemas": {"Pet": {"type": "object", "description": "A pet", "required": ["name"],
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}}}}})
}

fn auth() -> Vec<MethodAuth> {
    vec![MethodAuth {
        resource: "/pets/{id}".into(),
        method: "GET".into(),
        api_key: true,
        authorizer: None,
        token: None,
        iam: true,
    }]
}

#[test]
fn method_names_come_from_operation_ids_or_method_and_path() {
    let d = doc();
    let names: Vec<(String, String)> = methods(&d, &auth())
        .into_iter()
        .map(|m| (m.name, m.needs))
        .collect();
    assert_eq!(
        names,
        [
            ("getRoot".to_string(), "nothing".to_string()),
            ("readPet".into(), "nothing".into()),
            (
                "readPet2".into(),
                "an API key (apiKey), a SigV4 signature (sign)".into()
            ),
            ("postPetsId".into(), "nothing".into()),
        ]
    );
    assert_eq!(snake("readPet2"), "read_pet2");
    assert_eq!(camel(&words("2fast")), "_2fast");
}

#[test]
fn each_language_gets_one_function_per_method() {
    let d = doc();
    let js = &generate(Lang::JavaScript, &d, &auth(), "http://127.0.0.1:8080/prod")[0];
    assert_eq!(js.0, "client.js");
    assert!(js
        .1
        .contains("export const BASE_URL = \"http://127.0.0.1:8080/prod\";"));
    assert!(js
        .1
        .contains("    readPet2: (params = {}) => call(\"GET\", \"/pets/{id}\", params),"));
    assert!(js
        .1
        .contains("    readPet: (params = {}) => call(\"GET\", \"/pets\", params),"));
    let ts = &generate(Lang::TypeScript, &d, &auth(), "http://h/prod")[0];
    assert_eq!(ts.0, "client.ts");
    assert!(ts.1.contains("/** A pet */\nexport type Pet = { \"age\"?: number; \"name\": string; \"tags\"?: Array<string>; };"), "{}", ts.1);
    assert!(ts.1.contains("    readPet2: (params: { path: { \"id\": string | number }; query?: Query; headers?: Record<string, string>; body?: unknown }) => call<Pet>(\"GET\", \"/pets/{id}\", params),"), "{}", ts.1);
    assert!(ts.1.contains("body?: Pet }) => call<unknown>(\"POST\""));
    let py = &generate(Lang::Python, &d, &auth(), "http://h/prod")[0];
    assert_eq!(py.0, "client.py");
    assert!(py.1.contains("BASE_URL = \"http://h/prod\""));
    assert!(py.1.contains("    def read_pet2(self, path"));
    assert!(py.1.contains("\"\"\"GET /pets/{id}: Read a pet Needs an API key (apiKey), a SigV4 signature (sign).\"\"\""));
    assert!(py
        .1
        .contains("return self._call(\"POST\", \"/pets/{id}\", path, query, headers, body)"));
    assert_eq!(Lang::parse("typescript"), Some(Lang::TypeScript));
    assert_eq!(Lang::parse("java"), None);
}
