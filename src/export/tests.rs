use serde_json::json;

use super::*;

fn swagger() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Pets", "version": "1"},
        "host": "abc.execute-api.us-east-1.amazonaws.com",
        "basePath": "/prod",
        "schemes": ["https"],
        "securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}},
        "paths": {"/pets/{id}": {
            "get": {
                "operationId": "getPet",
                "produces": ["application/json"],
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "type": "string"},
                    {"name": "limit", "in": "query", "type": "integer", "minimum": 1}
                ],
                "responses": {"200": {"description": "a pet", "schema": {"$ref": "#/definitions/Pet"},
                    "headers": {"x-count": {"type": "integer"}}}},
                "security": [{"api_key": []}],
                "x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": "arn"}
            },
            "post": {
                "consumes": ["application/json"],
                "parameters": [{"name": "id", "in": "path", "required": true, "type": "string"},
                               {"in": "body", "name": "Pet", "required": true, "schema": {"$ref": "#/definitions/Pet"}}],
                "responses": {"201": {"description": "made"}}
            }
        }},
        "definitions": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "x-amazon-apigateway-documentation": {"version": "1", "documentationParts": [
            {"location": {"type": "API"}, "properties": {"description": "The pet store"}},
            {"location": {"type": "METHOD", "path": "/pets/{id}", "method": "GET"}, "properties": {"summary": "Read a pet", "tags": ["pets"]}},
            {"location": {"type": "PATH_PARAMETER", "path": "/pets/{id}", "method": "*", "name": "id"}, "properties": {"description": "The pet's id"}},
            {"location": {"type": "QUERY_PARAMETER", "path": "/pets/{id}", "method": "GET", "name": "limit"}, "properties": {"description": "At most"}},
            {"location": {"type": "MODEL", "name": "Pet"}, "properties": {"description": "A pet"}},
            {"location": {"type": "RESPONSE", "path": "/pets/{id}", "method": "GET", "statusCode": "200"}, "properties": {"description": "The pet asked for"}},
            {"location": {"type": "METHOD", "path": "/nowhere", "method": "GET"}, "properties": {"summary": "ignored"}}
        ]}
    })
}

fn options(doc_type: DocType, extensions: bool) -> Options {
    Options {
        doc_type,
        extensions,
        origin: "http://127.0.0.1:8080".into(),
        base_path: "/prod".into(),
    }
}

#[test]
fn documentation_parts_are_merged_where_they_belong() {
    let out = export(&swagger(), &options(DocType::Swagger, true));
    assert_eq!(out["info"]["description"], "The pet store");
    let get = &out["paths"]["/pets/{id}"]["get"];
    assert_eq!(get["summary"], "Read a pet");
    assert_eq!(get["tags"], json!(["pets"]));
    assert_eq!(get["parameters"][0]["description"], "The pet's id");
    assert_eq!(get["parameters"][1]["description"], "At most");
    assert_eq!(get["responses"]["200"]["description"], "The pet asked for");
    assert_eq!(out["definitions"]["Pet"]["description"], "A pet");
    // `*` documents the parameter of every method.
    let post = &out["paths"]["/pets/{id}"]["post"];
    assert_eq!(post["parameters"][0]["description"], "The pet's id");
    assert!(post.get("summary").is_none());
    assert!(out.get("x-amazon-apigateway-documentation").is_none());
    // Extensions stay with `apigateway`.
    assert_eq!(get["x-amazon-apigateway-integration"]["type"], "aws_proxy");
}

#[test]
fn swagger_points_at_the_gateway_and_loses_the_extensions() {
    let out = export(&swagger(), &options(DocType::Swagger, false));
    assert_eq!(out["host"], "127.0.0.1:8080");
    assert_eq!(out["basePath"], "/prod");
    assert_eq!(out["schemes"], json!(["http"]));
    assert!(!out.to_string().contains("x-amazon-apigateway"));
    let mut o = options(DocType::Swagger, false);
    o.base_path = String::new();
    assert_eq!(export(&swagger(), &o)["basePath"], "/");
}

#[test]
fn swagger_becomes_openapi_3() {
    let out = export(&swagger(), &options(DocType::Oas30, false));
    assert_eq!(out["openapi"], "3.0.1");
    for gone in [
        "swagger",
        "host",
        "basePath",
        "schemes",
        "definitions",
        "securityDefinitions",
    ] {
        assert!(out.get(gone).is_none(), "{gone}");
    }
    assert_eq!(
        out["servers"],
        json!([{"url": "http://127.0.0.1:8080/{basePath}", "variables": {"basePath": {"default": "prod"}}}])
    );
    assert_eq!(out["components"]["schemas"]["Pet"]["description"], "A pet");
    assert_eq!(
        out["components"]["securitySchemes"]["api_key"]["in"],
        "header"
    );
    let get = &out["paths"]["/pets/{id}"]["get"];
    assert_eq!(
        get["parameters"],
        json!([
            {"name": "id", "in": "path", "required": true, "description": "The pet's id", "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "description": "At most", "schema": {"type": "integer", "minimum": 1}}
        ])
    );
    assert_eq!(
        get["responses"]["200"],
        json!({"description": "The pet asked for",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
               "headers": {"x-count": {"schema": {"type": "integer"}}}})
    );
    let post = &out["paths"]["/pets/{id}"]["post"];
    assert_eq!(
        post["requestBody"],
        json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}})
    );
    assert_eq!(post["parameters"].as_array().unwrap().len(), 1);
}

#[test]
fn openapi_3_becomes_swagger_and_back() {
    let oas3 = export(&swagger(), &options(DocType::Oas30, true));
    let back = export(&oas3, &options(DocType::Swagger, true));
    assert_eq!(back["swagger"], "2.0");
    assert!(back.get("servers").is_none() && back.get("components").is_none());
    assert_eq!(back["definitions"]["Pet"]["type"], "object");
    let get = &back["paths"]["/pets/{id}"]["get"];
    assert_eq!(
        get["parameters"][1],
        json!({"name": "limit", "in": "query", "description": "At most", "type": "integer", "minimum": 1})
    );
    assert_eq!(
        get["responses"]["200"]["schema"],
        json!({"$ref": "#/definitions/Pet"})
    );
    assert_eq!(get["produces"], json!(["application/json"]));
    let post = &back["paths"]["/pets/{id}"]["post"];
    assert_eq!(post["consumes"], json!(["application/json"]));
    assert_eq!(
        post["parameters"][1],
        json!({"in": "body", "name": "body", "required": true, "schema": {"$ref": "#/definitions/Pet"}})
    );
    assert_eq!(get["x-amazon-apigateway-integration"]["uri"], "arn");
    // An OpenAPI 3 export stays OpenAPI 3 when asked for it.
    assert_eq!(
        export(&oas3, &options(DocType::Oas30, true))["paths"],
        oas3["paths"]
    );
}
