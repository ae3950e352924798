use serde_json::json;

use super::*;
use crate::mapping::testing::Fixture;

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn stage_variables_in_uris() {
    let v = vars(&[("host", "backend.internal:8080"), ("v", "v2")]);
    for (uri, want) in [
        (
            "http://${stageVariables.host}/x",
            Ok("http://backend.internal:8080/x"),
        ),
        (
            "https://h/${stageVariables.v}/${stageVariables.v}",
            Ok("https://h/v2/v2"),
        ),
        ("http://plain/", Ok("http://plain/")),
        (
            "http://${stageVariables.nope}/",
            Err("stage variable `nope` is not set"),
        ),
        ("http://${context.stage}/", Err("only stage variables")),
        ("http://${stageVariables.host/", Err("unclosed")),
    ] {
        match (resolve_stage_variables(uri, &v), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{uri}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{uri}: {got}"),
            (got, want) => panic!("{uri}: {got:?} != {want:?}"),
        }
    }
}

#[test]
fn uris_name_a_cluster_a_path_and_a_query() {
    type Row<'a> = (&'a str, &'a str, &'a str, Vec<Piece>, &'a str);
    let lit = |s: &str| Piece::Literal(s.to_string());
    let param = |s: &str| Piece::Param(s.to_string());
    let rows: Vec<Row> = vec![
        (
            "https://example.com/pets/{id}?x=1",
            "apigw_backend_https_example_com_443",
            "example.com",
            vec![lit("/pets/"), param("id")],
            "x=1",
        ),
        (
            "http://127.0.0.1:8080/{proxy+}",
            "apigw_backend_http_127_0_0_1_8080",
            "127.0.0.1:8080",
            vec![lit("/"), param("proxy")],
            "",
        ),
        (
            "http://h",
            "apigw_backend_http_h_80",
            "h",
            vec![lit("/")],
            "",
        ),
        (
            "http://h/a/{x}/b/{y}#frag",
            "apigw_backend_http_h_80",
            "h",
            vec![lit("/a/"), param("x"), lit("/b/"), param("y")],
            "",
        ),
    ];
    for (uri, cluster, authority, path, query) in rows {
        let t = HttpTarget::parse(uri).unwrap();
        assert_eq!(t.cluster, cluster, "{uri}");
        assert_eq!(t.authority, authority, "{uri}");
        assert_eq!(t.path, path, "{uri}");
        assert_eq!(t.query, query, "{uri}");
    }
    for bad in [
        "ftp://h/",
        "http:///x",
        "http://h/{a",
        "http://h/{}",
        "http://h/{a b}",
    ] {
        assert!(HttpTarget::parse(bad).is_err(), "{bad}");
    }
}

fn compile(integ: serde_json::Value) -> Result<HttpIntegration, Vec<ConfigError>> {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let kind = if integ["type"] == "http_proxy" {
        HttpKind::Proxy
    } else {
        HttpKind::Http
    };
    let uri = integ["uri"].as_str().unwrap_or_default().to_string();
    let method = integ["httpMethod"].as_str().unwrap_or("ANY").to_string();
    let deployment = crate::config::parse_deployment(serde_json::json!({
        "openapi": "a.json", "stage": "s", "stageVariables": {"host": "b.example"}
    }))
    .unwrap();
    let compiled = HttpIntegration::compile(
        Spec {
            integration: &integ,
            kind,
            uri: &uri,
            http_method: &method,
            timeout_ms: 29_000,
        },
        &deployment,
        ("paths./x.get.x-amazon-apigateway-integration", None),
        &mut errors,
        &mut warnings,
    );
    match compiled {
        Some(c) if errors.is_empty() => Ok(c),
        _ => Err(errors),
    }
}

#[test]
fn configuration_errors_name_the_field() {
    for (integ, field, words) in [
        (
            json!({"type": "http_proxy", "uri": "http://h/{proxy}", "httpMethod": "ANY"}),
            ".uri",
            "integration.request.path.proxy",
        ),
        (
            json!({"type": "http", "uri": "http://${stageVariables.missing}/", "httpMethod": "GET"}),
            ".uri",
            "missing",
        ),
        (
            json!({"type": "http", "uri": "http://h/", "httpMethod": "FETCH"}),
            ".httpMethod",
            "not an HTTP method",
        ),
        (
            json!({"type": "http", "uri": "http://h/", "httpMethod": "GET",
                   "requestParameters": {"integration.request.body": "method.request.body"}}),
            ".requestParameters.integration.request.body",
            "expected integration.request.path.NAME",
        ),
    ] {
        let errors = compile(integ.clone()).unwrap_err();
        let e = errors.first().unwrap();
        assert!(e.location.ends_with(field), "{integ}: {e:?}");
        assert!(e.message.contains(words), "{integ}: {e:?}");
    }
}

fn header_of<'a>(call: &'a UpstreamCall, name: &str) -> Option<&'a str> {
    crate::http::header(&call.headers, name)
}

#[test]
fn proxy_requests_carry_the_clients_method_path_query_headers_and_body() {
    let integ = compile(json!({
        "type": "http_proxy", "httpMethod": "ANY",
        "uri": "http://${stageVariables.host}:8080/api/{proxy}?fixed=1",
        "requestParameters": {
            "integration.request.path.proxy": "method.request.path.proxy",
            "integration.request.header.x-stage": "stageVariables.env",
            "integration.request.querystring.mode": "'strict'"
        }
    }))
    .unwrap();
    let fx = Fixture::new("")
        .path(&[("proxy", "a/b c%2B")])
        .headers(&[("X-Client", "1")]);
    let (env, sources) = (fx.env(), fx.sources());
    let headers = vec![
        ("Host".to_string(), "gw.example".to_string()),
        ("X-Client".to_string(), "1".to_string()),
        ("X-Forwarded-For".to_string(), "10.0.0.1".to_string()),
        ("Connection".to_string(), "keep-alive".to_string()),
    ];
    let client = ClientRequest {
        method: "PATCH",
        raw_query: "q=a%20b&mode=loose&flag",
        headers: &headers,
        content_type: Some("text/plain"),
        body: b"\xffraw",
        binary: false,
    };
    let call = integ.call(&client, &env, &sources, "ua").unwrap();
    assert_eq!(call.cluster, "apigw_backend_http_b_example_8080");
    assert_eq!(header_of(&call, ":method"), Some("PATCH"));
    assert_eq!(
        header_of(&call, ":path"),
        Some("/api/a/b%20c%2B?fixed=1&q=a%20b&flag&mode=strict")
    );
    assert_eq!(header_of(&call, ":authority"), Some("b.example:8080"));
    assert_eq!(header_of(&call, "x-client"), Some("1"));
    assert_eq!(header_of(&call, "x-forwarded-for"), Some("10.0.0.1"));
    assert_eq!(header_of(&call, "x-stage"), Some("test"));
    assert_eq!(header_of(&call, "host"), None);
    assert_eq!(header_of(&call, "connection"), None);
    assert_eq!(call.body, b"\xffraw");
    assert_eq!(call.timeout_ms, 29_000);
}

#[test]
fn non_proxy_requests_send_only_what_is_mapped_and_the_template() {
    let integ = compile(json!({
        "type": "http", "httpMethod": "POST",
        "uri": "https://b.example/orders/{id}",
        "requestParameters": {
            "integration.request.path.id": "method.request.path.id",
            "integration.request.header.X-Tenant": "method.request.header.tenant"
        },
        "requestTemplates": {"application/json": "{\"order\": \"$input.params('id')\", \"n\": $input.json('$.n')}"}
    }))
    .unwrap();
    let fx = Fixture::new("{\"n\": 3}")
        .path(&[("id", "42")])
        .headers(&[("tenant", "acme"), ("X-Other", "no")]);
    let (env, sources) = (fx.env(), fx.sources());
    let client = ClientRequest {
        method: "PUT",
        raw_query: "ignored=1",
        headers: &[("X-Other".to_string(), "no".to_string())],
        content_type: Some("application/json"),
        body: b"{\"n\": 3}",
        binary: false,
    };
    let call = integ
        .call(&client, &env, &sources, "AmazonAPIGateway_api")
        .unwrap();
    assert_eq!(call.cluster, "apigw_backend_https_b_example_443");
    assert_eq!(header_of(&call, ":method"), Some("POST"));
    assert_eq!(header_of(&call, ":path"), Some("/orders/42"));
    assert_eq!(header_of(&call, "x-tenant"), Some("acme"));
    assert_eq!(header_of(&call, "x-other"), None);
    assert_eq!(header_of(&call, "content-type"), Some("application/json"));
    assert_eq!(header_of(&call, "user-agent"), Some("AmazonAPIGateway_api"));
    assert_eq!(
        String::from_utf8_lossy(&call.body),
        "{\"order\": \"42\", \"n\": 3}"
    );
}

#[test]
fn request_overrides_from_a_template_win() {
    let integ = compile(json!({
        "type": "http", "httpMethod": "GET", "uri": "http://h/items/{id}",
        "requestParameters": {"integration.request.path.id": "'static'"},
        "requestTemplates": {"application/json":
            "#set($context.requestOverride.path.id = 'over')#set($context.requestOverride.querystring.q = 'a&b')#set($context.requestOverride.header.X-Mode = 'm')"}
    }))
    .unwrap();
    let fx = Fixture::new("");
    let (env, sources) = (fx.env(), fx.sources());
    let client = ClientRequest {
        method: "GET",
        raw_query: "",
        headers: &[],
        content_type: None,
        body: b"",
        binary: false,
    };
    let call = integ.call(&client, &env, &sources, "ua").unwrap();
    assert_eq!(header_of(&call, ":path"), Some("/items/over?q=a%26b"));
    assert_eq!(header_of(&call, "x-mode"), Some("m"));
    assert!(call.body.is_empty());
    assert_eq!(header_of(&call, "content-type"), None);
}

#[test]
fn passthrough_behavior_refuses_unmatched_media_types() {
    let integ = compile(json!({
        "type": "http", "httpMethod": "POST", "uri": "http://h/",
        "passthroughBehavior": "NEVER",
        "requestTemplates": {"application/json": "{}"}
    }))
    .unwrap();
    let fx = Fixture::new("");
    let (env, sources) = (fx.env(), fx.sources());
    let client = ClientRequest {
        method: "POST",
        raw_query: "",
        headers: &[],
        content_type: Some("application/xml"),
        body: b"<a/>",
        binary: false,
    };
    assert_eq!(
        integ.call(&client, &env, &sources, "ua").unwrap_err(),
        RequestFailure::UnsupportedMediaType
    );
}

#[test]
fn answers_are_classified_and_passed_through() {
    let answer = |status: Option<u16>, headers: &[(&str, &str)], body: &str| UpstreamAnswer {
        host_reply: None,
        status,
        headers: crate::http::headers_of(headers),
        body: body.as_bytes().to_vec(),
    };
    for (resp, want) in [
        (answer(Some(404), &[], "nope"), BackendOutcome::Answer(404)),
        (
            answer(Some(504), &[], "upstream request timeout"),
            BackendOutcome::Timeout,
        ),
        (
            answer(
                Some(503),
                &[],
                "upstream connect error or disconnect/reset before headers",
            ),
            BackendOutcome::Unreachable(
                "upstream connect error or disconnect/reset before headers".into(),
            ),
        ),
        (
            answer(Some(502), &[], "upstream connect error or disconnect/reset before headers. reset reason: protocol error"),
            BackendOutcome::Unreachable(
                "upstream connect error or disconnect/reset before headers. reset reason: protocol error".into(),
            ),
        ),
        (
            answer(Some(502), &[], "bad gateway"),
            BackendOutcome::Answer(502),
        ),
        (
            answer(None, &[], ""),
            BackendOutcome::Unreachable("no response from the HTTP backend".into()),
        ),
    ] {
        assert_eq!(HttpIntegration::classify(&resp), want, "{resp:?}");
    }
    let reply = passthrough(&answer(
        Some(201),
        &[
            ("Content-Length", "2"),
            ("Date", "d"),
            ("Server", "s"),
            ("Transfer-Encoding", "chunked"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ],
        "ok",
    ));
    assert_eq!(reply.status, 201);
    assert_eq!(
        reply.headers,
        crate::http::headers_of(&[
            ("x-amzn-Remapped-Content-Length", "2"),
            ("x-amzn-Remapped-Date", "d"),
            ("x-amzn-Remapped-Server", "s"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ])
    );
    assert_eq!(reply.body, b"ok");
}

#[test]
fn integration_responses_are_selected_by_the_backends_status() {
    let integ = compile(json!({
        "type": "http", "httpMethod": "GET", "uri": "http://h/",
        "responses": {
            "default": {"statusCode": "200"},
            "4\\d{2}": {"statusCode": "400",
                         "responseTemplates": {"application/json": "{\"error\": $input.json('$.m')}"}},
            "5\\d{2}": {"statusCode": "502",
                         "responseParameters": {"method.response.header.X-Upstream": "integration.response.header.X-Up"}}
        }
    }))
    .unwrap();
    let fx = Fixture::new("").result("{\"m\": \"bad\"}", &[("X-Up", "u1")]);
    let (env, sources) = (fx.response_env(), fx.sources());
    for (status, want_status, want_body) in [
        (200, 200, "{\"m\": \"bad\"}"),
        (404, 400, "{\"error\": \"bad\"}"),
        (503, 502, "{\"m\": \"bad\"}"),
    ] {
        let response = integ.response_for(status).unwrap();
        let reply = integ
            .mapped_reply(response, (&env, &sources), None, None)
            .unwrap();
        assert_eq!(reply.status, want_status, "{status}");
        assert_eq!(String::from_utf8_lossy(&reply.body), want_body, "{status}");
    }
    let response = integ.response_for(503).unwrap();
    let reply = integ
        .mapped_reply(response, (&env, &sources), None, None)
        .unwrap();
    assert_eq!(reply.header("X-Upstream"), Some("u1"));
    let no_default = compile(json!({
        "type": "http", "httpMethod": "GET", "uri": "http://h/",
        "responses": {"2\\d{2}": {"statusCode": "200"}}
    }))
    .unwrap();
    assert!(matches!(
        no_default.response_for(500),
        Err(MapFailure::Failed(m)) if m.contains("status 500")
    ));
}
