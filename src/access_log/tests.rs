use super::*;

/// The console's presets, as API Gateway's documentation lists them.
pub(crate) const CLF: &str = r#"$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime]"$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId $context.extendedRequestId"#;
pub(crate) const JSON: &str = r#"{ "requestId":"$context.requestId", "extendedRequestId":"$context.extendedRequestId","ip": "$context.identity.sourceIp", "caller":"$context.identity.caller", "user":"$context.identity.user", "requestTime":"$context.requestTime", "httpMethod":"$context.httpMethod", "resourcePath":"$context.resourcePath", "status":"$context.status", "protocol":"$context.protocol", "responseLength":"$context.responseLength" }"#;
pub(crate) const XML: &str = r#"<request id="$context.requestId"> <extendedRequestId>$context.extendedRequestId</extendedRequestId> <ip>$context.identity.sourceIp</ip> <caller>$context.identity.caller</caller> <user>$context.identity.user</user> <requestTime>$context.requestTime</requestTime> <httpMethod>$context.httpMethod</httpMethod> <resourcePath>$context.resourcePath</resourcePath> <status>$context.status</status> <protocol>$context.protocol</protocol> <responseLength>$context.responseLength</responseLength> </request>"#;
pub(crate) const CSV: &str = "$context.identity.sourceIp,$context.identity.caller,$context.identity.user,$context.requestTime,$context.httpMethod,$context.resourcePath,$context.protocol,$context.status,$context.responseLength,$context.requestId,$context.extendedRequestId";

fn values(path: &[String]) -> Option<String> {
    let v = match path.join(".").as_str() {
        "identity.sourceIp" => "203.0.113.7",
        "requestTime" => "02/Dec/2026:09:40:00 +0000",
        "httpMethod" => "GET",
        "resourcePath" => "/pets/{id}",
        "protocol" => "HTTP/1.1",
        "status" => "200",
        "responseLength" => "12",
        "requestId" => "r-1",
        "extendedRequestId" => "x-1",
        "identity.caller" | "identity.user" => "",
        _ => return None,
    };
    Some(v.to_string())
}

#[test]
fn the_console_presets_work_as_written() {
    let table = [
        (
            CLF,
            r#"203.0.113.7 - - [02/Dec/2026:09:40:00 +0000]"GET /pets/{id} HTTP/1.1" 200 12 r-1 x-1"#,
        ),
        (
            JSON,
            r#"{ "requestId":"r-1", "extendedRequestId":"x-1","ip": "203.0.113.7", "caller":"-", "user":"-", "requestTime":"02/Dec/2026:09:40:00 +0000", "httpMethod":"GET", "resourcePath":"/pets/{id}", "status":"200", "protocol":"HTTP/1.1", "responseLength":"12" }"#,
        ),
        (
            XML,
            r#"<request id="r-1"> <extendedRequestId>x-1</extendedRequestId> <ip>203.0.113.7</ip> <caller>-</caller> <user>-</user> <requestTime>02/Dec/2026:09:40:00 +0000</requestTime> <httpMethod>GET</httpMethod> <resourcePath>/pets/{id}</resourcePath> <status>200</status> <protocol>HTTP/1.1</protocol> <responseLength>12</responseLength> </request>"#,
        ),
        (
            CSV,
            "203.0.113.7,-,-,02/Dec/2026:09:40:00 +0000,GET,/pets/{id},HTTP/1.1,200,12,r-1,x-1",
        ),
    ];
    for (format, want) in table {
        let log = AccessLog::compile(format, "f").unwrap();
        assert_eq!(log.render(values), want);
    }
}

#[test]
fn variable_names_end_where_names_cannot_go_on() {
    let log = AccessLog::compile(
        "id=$context.requestId. $context.authorizer.claims.sub;$context.$context.status",
        "f",
    )
    .unwrap();
    assert_eq!(
        log.variables(),
        ["requestId", "authorizer.claims.sub", "status"]
    );
    assert_eq!(log.render(values), "id=r-1. -;$context.200");
}

#[test]
fn formats_api_gateway_refuses_are_refused() {
    for (format, why) in [
        ("$context.requestId\n$context.status", "line breaks"),
        (
            "$context.status $context.httpMethod",
            "must include $context.requestId",
        ),
        (
            "$context.requestIdentity",
            "must include $context.requestId",
        ),
    ] {
        let e = AccessLog::compile(format, "deployment.accessLogSettings.format").unwrap_err();
        assert_eq!(e.location, "deployment.accessLogSettings.format");
        assert!(e.message.contains(why), "{format}: {}", e.message);
    }
    assert!(AccessLog::compile("$context.extendedRequestId", "f").is_ok());
    let long = format!("$context.requestId {}", "x".repeat(MAX_FORMAT_BYTES));
    assert!(AccessLog::compile(&long, "f").is_err());
}
