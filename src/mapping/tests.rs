//! Mapping rules, one row each.

use serde_json::json;

use super::aws::{AwsMapping, RequestFailure};
use super::testing::Fixture;
use super::*;

fn compile_aws(spec: serde_json::Value, method_responses: Option<Vec<u16>>) -> AwsMapping {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let m = AwsMapping::compile(&spec, method_responses, "x", &mut errors, &mut warnings);
    assert!(errors.is_empty(), "{errors:?}");
    m
}

#[test]
fn passthrough_table() {
    // Rows of API Gateway's passthrough table: templates, Content-Type, behaviour, result.
    use RequestPlan::*;
    let json_only = json!({"application/json": "{}"});
    let xml_only = json!({"application/xml": "{}"});
    for (templates, ct, behaviour, want) in [
        (
            Some(&json_only),
            None,
            Passthrough::WhenNoMatch,
            "transform",
        ),
        (
            Some(&json_only),
            Some("application/json; charset=UTF-8"),
            Passthrough::Never,
            "transform",
        ),
        (
            Some(&json_only),
            Some("application/xml"),
            Passthrough::WhenNoMatch,
            "pass",
        ),
        (
            Some(&json_only),
            Some("application/xml"),
            Passthrough::WhenNoTemplates,
            "415",
        ),
        (
            Some(&json_only),
            Some("application/xml"),
            Passthrough::Never,
            "415",
        ),
        (Some(&xml_only), None, Passthrough::WhenNoMatch, "pass"),
        (
            Some(&xml_only),
            Some("application/json"),
            Passthrough::WhenNoTemplates,
            "415",
        ),
        (Some(&xml_only), None, Passthrough::Never, "415"),
        (None, Some("text/plain"), Passthrough::WhenNoMatch, "pass"),
        (
            None,
            Some("text/plain"),
            Passthrough::WhenNoTemplates,
            "pass",
        ),
        (None, Some("text/plain"), Passthrough::Never, "415"),
    ] {
        let mut errors = Vec::new();
        let t = Templates::compile(templates, "x", &mut errors);
        let got = match request_plan(&t, behaviour, ct) {
            Transform(_) => "transform",
            PassThrough => "pass",
            Unsupported => "415",
        };
        assert_eq!(got, want, "{templates:?} {ct:?} {behaviour:?}");
    }
    let mut errors = Vec::new();
    let t = Templates::compile(Some(&json!({"$default": "d"})), "x", &mut errors);
    assert!(matches!(
        request_plan(&t, Passthrough::Never, Some("text/csv")),
        Transform(_)
    ));
}

#[test]
fn response_template_by_accept() {
    let mut errors = Vec::new();
    let t = Templates::compile(
        Some(&json!({"application/xml": "x", "text/html": "h"})),
        "x",
        &mut errors,
    );
    for (accept, want) in [
        (Some("text/html;q=0.9, */*"), "text/html"),
        (Some("image/png"), "application/xml"),
        (None, "application/xml"),
    ] {
        assert_eq!(
            t.for_response(accept).map(|(m, _)| m),
            Some(want),
            "{accept:?}"
        );
    }
}

#[test]
fn sources_parse_and_resolve() {
    let f = Fixture::new(r#"{"user":{"id":7}}"#)
        .path(&[("id", "p1")])
        .query(&[("q", "1"), ("q", "2")])
        .headers(&[("x-trace", "t")])
        .result(
            r#"{"errorMessage":"{\"code\":\"E42\",\"detail\":{\"n\":1}}","v":"1.2"}"#,
            &[("X-Amz-Executed-Version", "3")],
        );
    for (expr, want) in [
        ("'static'", Some("static")),
        ("method.request.path.id", Some("p1")),
        ("method.request.querystring.q", Some("2")),
        ("method.request.multivaluequerystring.q", Some("1,2")),
        ("method.request.header.X-Trace", Some("t")),
        ("method.request.header.missing", None),
        ("method.request.body.user.id", Some("7")),
        ("method.request.body.user", Some(r#"{"id":7}"#)),
        ("stageVariables.env", Some("test")),
        ("context.stage", Some("prod")),
        (
            "integration.response.header.x-amz-executed-version",
            Some("3"),
        ),
        ("integration.response.body.v", Some("1.2")),
        ("integration.response.body.errorMessage.code", Some("E42")),
        (
            "integration.response.body.errorMessage.detail",
            Some(r#"{"n":1}"#),
        ),
    ] {
        let src = Source::parse(expr, Side::Response).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(src.resolve(&f.sources()).as_deref(), want, "{expr}");
    }
    for bad in [
        "method.request.cookie.x",
        "integration.response.status",
        "nowhere",
        "method.request.header.",
        "method.request.body.a[",
    ] {
        assert!(Source::parse(bad, Side::Response).is_err(), "{bad}");
    }
    assert!(Source::parse("integration.response.body", Side::Request).is_err());
}

fn lambda_spec() -> serde_json::Value {
    json!({
        "type": "aws",
        "httpMethod": "POST",
        "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:f/invocations",
        "passthroughBehavior": "never",
        "requestParameters": {
            "integration.request.header.X-Amz-Invocation-Type": "method.request.header.InvocationType"
        },
        "requestTemplates": {
            "application/json": "{\"id\": \"$input.params('id')\", \"name\": \"$util.escapeJavaScript($input.path('$.name'))\", \"stage\": \"$context.stage\"}"
        },
        "responses": {
            "default": {
                "statusCode": "200",
                "responseParameters": {"method.response.header.X-Version": "integration.response.body.version"},
                "responseTemplates": {"application/json": "{\"item\": $input.json('$.item')}"}
            },
            ".*NotFound.*": {
                "statusCode": "404",
                "responseTemplates": {"application/json": "{\"message\": \"$util.escapeJavaScript($input.path('$.errorMessage'))\"}"}
            },
            "Invalid.*": {"statusCode": "400"},
            "boom": {
                "statusCode": "500",
                "responseTemplates": {"application/json": "#set($context.responseOverride.status = 503)#set($context.responseOverride.header.Retry-After = '5'){\"message\": \"busy\"}"}
            }
        }
    })
}

#[test]
fn aws_request_renders_the_payload_and_invoke_headers() {
    let m = compile_aws(lambda_spec(), None);
    let f = Fixture::new(r#"{"name": "O'Hara"}"#)
        .path(&[("id", "42")])
        .headers(&[("InvocationType", "Event")]);
    let (payload, headers) = m.request(&f.env(), &f.sources(), None).unwrap();
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        r#"{"id": "42", "name": "O\'Hara", "stage": "prod"}"#
    );
    assert_eq!(
        headers,
        vec![("X-Amz-Invocation-Type".to_string(), "Event".to_string())]
    );
    assert_eq!(
        m.request(&f.env(), &f.sources(), Some("text/plain"))
            .unwrap_err(),
        RequestFailure::UnsupportedMediaType
    );
    let bad = Fixture::new("not json");
    assert!(matches!(
        m.request(&bad.env(), &bad.sources(), None).unwrap_err(),
        RequestFailure::Map(MapFailure::InvalidBody(_))
    ));
}

#[test]
fn aws_request_passes_client_context_and_log_type_to_the_invoke_api() {
    let mut spec = lambda_spec();
    spec["requestParameters"] = json!({
        "integration.request.header.X-Amz-Client-Context": "method.request.header.X-Client-Context",
        "integration.request.header.X-Amz-Log-Type": "'Tail'"
    });
    let m = compile_aws(spec, None);
    let f = Fixture::new(r#"{"name": "a"}"#)
        .path(&[("id", "1")])
        .headers(&[("X-Client-Context", "eyJjdXN0b20iOnsiYSI6MX19")]);
    let (_, mut headers) = m.request(&f.env(), &f.sources(), None).unwrap();
    headers.sort();
    assert_eq!(
        headers,
        vec![
            (
                "X-Amz-Client-Context".to_string(),
                "eyJjdXN0b20iOnsiYSI6MX19".to_string()
            ),
            ("X-Amz-Log-Type".to_string(), "Tail".to_string()),
        ]
    );
}

#[test]
fn aws_responses_select_by_error_message() {
    let m = compile_aws(lambda_spec(), None);
    let ok = Fixture::new("").result(r#"{"item": {"a": 1}, "version": "v9"}"#, &[]);
    let r = m
        .response(None, &ok.response_env(), &ok.sources(), None)
        .unwrap();
    assert_eq!(
        (r.status, r.body_text()),
        (200, r#"{"item": {"a":1}}"#.to_string())
    );
    assert_eq!(r.header("x-version"), Some("v9"));
    assert_eq!(r.header("content-type"), Some("application/json"));

    for (message, status, body) in [
        (
            "Item NotFound here",
            404,
            r#"{"message": "Item NotFound here"}"#,
        ),
        ("Invalid input", 400, r#"{"errorMessage":"Invalid input"}"#),
        ("boom", 503, r#"{"message": "busy"}"#),
        // `.*NotFound.*` must match the whole message; a line break stops `.`, so this
        // error takes the default response.
        ("x\nNotFound", 200, r#"{"item": null}"#),
        ("boom!", 200, r#"{"item": null}"#),
    ] {
        let body_in = serde_json::json!({"errorMessage": message}).to_string();
        let f = Fixture::new("").result(&body_in, &[]);
        let r = m
            .response(Some(message), &f.response_env(), &f.sources(), None)
            .unwrap();
        let expected_body = if status == 400 {
            body_in.clone()
        } else {
            body.to_string()
        };
        assert_eq!(
            (r.status, r.body_text()),
            (status, expected_body),
            "{message:?}"
        );
        if status == 503 {
            assert_eq!(r.header("retry-after"), Some("5"));
        }
    }
}

#[test]
fn lambda_errors_without_a_match_use_default_and_no_default_fails() {
    let m = compile_aws(
        json!({"responses": {"default": {"statusCode": "200"}}}),
        None,
    );
    let f = Fixture::new("").result(r#"{"errorMessage":"x"}"#, &[]);
    let r = m
        .response(Some("x"), &f.response_env(), &f.sources(), None)
        .unwrap();
    assert_eq!(
        (r.status, r.body_text()),
        (200, r#"{"errorMessage":"x"}"#.to_string())
    );

    let m = compile_aws(json!({"responses": {"x": {"statusCode": "400"}}}), None);
    assert!(m
        .response(None, &f.response_env(), &f.sources(), None)
        .is_err());
    let dot_star = compile_aws(json!({"responses": {".*": {"statusCode": "201"}}}), None);
    let r = dot_star
        .response(None, &f.response_env(), &f.sources(), None)
        .unwrap();
    assert_eq!(r.status, 201);
}

#[test]
fn missing_method_response_is_a_500() {
    let m = compile_aws(
        json!({"responses": {"default": {"statusCode": "200"}, "E": {"statusCode": "418"}}}),
        Some(vec![200]),
    );
    let f = Fixture::new("").result(r#"{"errorMessage":"E"}"#, &[]);
    assert!(m
        .response(None, &f.response_env(), &f.sources(), None)
        .is_ok());
    let e = m
        .response(Some("E"), &f.response_env(), &f.sources(), None)
        .unwrap_err();
    assert!(matches!(e, MapFailure::Failed(m) if m.contains("418")));
}

#[test]
fn request_override_sets_invoke_headers_and_others_warn() {
    let spec = json!({
        "requestParameters": {"integration.request.querystring.x": "'1'"},
        "requestTemplates": {"application/json": "#set($context.requestOverride.header.X-Amz-Invocation-Type = 'Event'){}"}
    });
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let m = AwsMapping::compile(&spec, None, "x", &mut errors, &mut warnings);
    assert!(errors.is_empty());
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].location,
        "x.requestParameters.integration.request.querystring.x"
    );
    let f = Fixture::new("");
    let (payload, headers) = m.request(&f.env(), &f.sources(), None).unwrap();
    assert_eq!(payload, b"{}");
    assert_eq!(
        headers,
        vec![("X-Amz-Invocation-Type".into(), "Event".into())]
    );
}

#[test]
fn mapped_response_headers_api_gateway_reserves_are_renamed() {
    let mut params = serde_json::Map::new();
    let names = [
        "Authorization",
        "Connection",
        "Content-Length",
        "Content-MD5",
        "Date",
        "Expect",
        "Host",
        "Max-Forwards",
        "Proxy-Authenticate",
        "Server",
        "Trailer",
        "Upgrade",
        "User-Agent",
        "WWW-Authenticate",
        "Accept",
        "Accept-Charset",
        "Accept-Encoding",
        "Age",
        "Content-Encoding",
        "Pragma",
        "Range",
        "Referer",
        "TE",
        "Warn",
        "Transfer-Encoding",
    ];
    for n in names {
        params.insert(format!("method.response.header.{n}"), json!("'v'"));
    }
    let spec = json!({
        "type": "aws", "httpMethod": "POST", "uri": "u",
        "responses": {"default": {"statusCode": "200", "responseParameters": params}}
    });
    let m = compile_aws(spec, None);
    let f = Fixture::new("").result("{}", &[]);
    let r = m
        .response(None, &f.response_env(), &f.sources(), None)
        .unwrap();
    for n in &names[..14] {
        assert_eq!(r.header(&format!("x-amzn-Remapped-{n}")), Some("v"), "{n}");
        assert!(
            !r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n)),
            "{n} sent under its own name"
        );
    }
    for n in &names[14..24] {
        assert_eq!(r.header(n), Some("v"), "{n}");
    }
    assert_eq!(r.header("Transfer-Encoding"), None);
    assert_eq!(r.header("x-amzn-Remapped-Transfer-Encoding"), None);
}
