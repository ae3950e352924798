//! The Cognito / JWT stage through the pipeline, and the key ring's refresh protocol
//! between workers (two rings on one shared store).

use std::cell::RefCell;
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::tests::head;
use super::*;
use crate::config::parse_deployment;
use crate::http::UpstreamAnswer;
use crate::jwt::ring::{backoff_ms, KeyRing};
use crate::shared::memory::Cells;

use crate::jwt::jwt_keys::{jwks, TestKey};

const FN: &str = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:";
const ISS: &str = "http://127.0.0.1:5000/us-east-1_Pool";
const NOW_MS: u64 = 1_700_000_000_000;

fn key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| TestKey::rsa("k1", 11))
}

fn proxy(security: Value) -> Value {
    json!({"security": security, "x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST", "uri": format!("{FN}backend/invocations")}})
}

fn gateway() -> Gateway {
    compile(json!({})).unwrap()
}

/// The test API with `jwt` settings merged over the default deployment's.
fn compile(jwt: Value) -> Result<Gateway, Vec<crate::error::ConfigError>> {
    let api = json!({
        "swagger": "2.0",
        "securityDefinitions": {
            "pool": {"type": "apiKey", "name": "Authorization", "in": "header",
                "x-amazon-apigateway-authtype": "cognito_user_pools",
                "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools",
                    "providerARNs": ["arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Pool"]}}
        },
        "paths": {
            "/me": {"get": proxy(json!([{"pool": []}]))},
            "/orders": {"get": proxy(json!([{"pool": ["orders/read"]}]))},
            "/reports": {"get": proxy(json!([]))},
            "/mapped": {"post": {"security": [{"pool": []}], "responses": {"200": {"description": "ok"}},
                "x-amazon-apigateway-integration": {"type": "aws", "httpMethod": "POST", "uri": format!("{FN}backend/invocations"),
                    "requestTemplates": {"application/json": "{\"user\": \"$context.authorizer.claims['cognito:username']\", \"sub\": \"$context.authorizer.claims.sub\"}"},
                    "responses": {"default": {"statusCode": "200"}}}}}
        }
    });
    let mut d = json!({"openapi": "api.json", "stage": "dev", "api": {"id": "abc123"},
        "lambda": {"endpoint": "http://127.0.0.1:9000"},
        "jwt": {"pools": {"us-east-1_Pool": {"issuer": ISS, "jwksUrl": format!("{ISS}/.well-known/jwks.json")}},
                "authorizers": {"corp": {"issuer": "https://id.example.com", "audiences": ["api://reports"],
                    "methods": {"/reports/GET": ["reports.read"]}}}}});
    for (k, v) in jwt.as_object().unwrap() {
        d["jwt"][k] = v.clone();
    }
    let cfg = crate::config::FilterConfig {
        deployment: parse_deployment(d).unwrap(),
        openapi: api,
        exports: Default::default(),
    };
    Gateway::compile(&cfg).map(|c| c.gateway)
}

#[test]
fn configuration_mistakes_name_their_field() {
    let cases = [
        (
            json!({"pools": {"eu-west-1_Nope": {}}}),
            "deployment.jwt.pools.eu-west-1_Nope",
        ),
        (
            json!({"authorizers": {"corp": {"issuer": "https://i", "methods": {}}}}),
            "deployment.jwt.authorizers.corp.methods",
        ),
        (
            json!({"authorizers": {"corp": {"methods": {"/reports/GET": []}}}}),
            "deployment.jwt.authorizers.corp.issuer",
        ),
        (
            json!({"authorizers": {"corp": {"issuer": "https://i", "methods": {"/nope/GET": []}}}}),
            "deployment.jwt.authorizers.corp.methods./nope/GET",
        ),
        (
            json!({"authorizers": {"corp": {"issuer": "https://i", "methods": {"/me/GET": []}}}}),
            "deployment.jwt.authorizers.corp.methods./me/GET",
        ),
        (
            json!({"authorizers": {"corp": {"issuer": "https://i", "jwksUrl": "ftp://x", "methods": {"/reports/GET": []}}}}),
            "deployment.jwt.authorizers.corp.jwksUrl",
        ),
        (
            json!({"authorizers": {"pool": {"issuer": "https://i"}}}),
            "deployment.jwt.authorizers.pool",
        ),
        (
            json!({"refreshSeconds": 10, "minRefreshSeconds": 20}),
            "deployment.jwt.minRefreshSeconds",
        ),
        (
            json!({"authorizers": {"corp": {"issuer": "https://i", "jwksUrl": "http://127.0.0.1:5000/k", "caFile": "/ca.pem", "methods": {"/reports/GET": []}}}}),
            "deployment.jwt.authorizers.corp.caFile",
        ),
    ];
    for (jwt, field) in cases {
        let errors = compile(jwt.clone()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.location == field),
            "{jwt}: {errors:?}"
        );
    }
}

struct Env {
    cells: Cells,
    keys: RefCell<KeyRing>,
    tokens: RefCell<TokenCache>,
}

impl Env {
    /// A worker whose ring has fetched the pool's keys (or not).
    fn new(g: &Gateway, fetched: bool) -> Env {
        let env = Env {
            cells: Cells::default(),
            keys: RefCell::new(KeyRing::new(g.jwks_sources().len())),
            tokens: RefCell::new(TokenCache::new(1 << 20)),
        };
        if fetched {
            let doc = jwks(&[key()]);
            env.keys
                .borrow_mut()
                .fetched(
                    g.jwks_sources(),
                    &env.cells,
                    0,
                    NOW_MS,
                    Some(200),
                    doc.as_bytes(),
                )
                .unwrap();
        }
        env
    }

    /// Runs a request; returns the reply and the integration call's payload, if made.
    fn run(
        &self,
        g: &Gateway,
        h: RequestHead,
        now_ms: u64,
    ) -> (Outcome, Option<Value>, Vec<Event>) {
        let host = Host {
            cells: &self.cells,
            store: None,
            auth_cache: None,
            keys: Some(&self.keys),
            tokens: Some(&self.tokens),
            certs: None,
            now_ms,
            forwarding: crate::config::Forwarding::Router,
        };
        let mut ex = g.begin(RequestHead { now_ms, ..h });
        let mut step = g.advance(&mut ex, &host);
        let mut payload = None;
        let mut events = Vec::new();
        loop {
            events.extend(ex.take_events());
            step = match step {
                Step::Reply(o) => return (*o, payload, events),
                Step::NeedBody => g.body(&mut ex, b"{}".to_vec(), &host),
                Step::Call(c) => {
                    payload = Some(serde_json::from_slice(&c.request.body).unwrap());
                    let answer = UpstreamAnswer {
                        host_reply: None,
                        status: Some(200),
                        headers: vec![],
                        body: br#"{"statusCode": 200, "body": "backend"}"#.to_vec(),
                    };
                    g.resume(&mut ex, &answer, &host)
                }
            };
        }
    }
}

fn id_claims(exp_s: u64) -> Value {
    json!({"sub": "u-1", "iss": ISS, "token_use": "id", "cognito:username": "alice",
           "cognito:groups": ["admin"], "iat": exp_s - 3600, "exp": exp_s})
}

#[test]
fn id_token_reaches_the_backend_as_string_claims() {
    let g = gateway();
    let env = Env::new(&g, true);
    let token = key().sign(&id_claims(NOW_MS / 1000 + 600));
    let (o, event, events) = env.run(
        &g,
        head("GET", "/dev/me", &[("authorization", &token)]),
        NOW_MS,
    );
    assert_eq!(o.reply.status, 200, "{}", o.reply.body_text());
    let claims = &event.unwrap()["requestContext"]["authorizer"];
    assert_eq!(claims["claims"]["cognito:username"], "alice");
    assert_eq!(claims["claims"]["cognito:groups"], "admin");
    assert_eq!(claims["claims"]["exp"], "Tue Nov 14 22:23:20 UTC 2023");
    assert!(claims.get("principalId").is_none(), "{claims}");
    assert!(events.contains(&Event::Token {
        cached: false,
        refused: false
    }));
    // The second request is answered from this worker's cache of verified tokens.
    let (o, _, events) = env.run(
        &g,
        head(
            "GET",
            "/dev/me",
            &[("authorization", &format!("Bearer {token}"))],
        ),
        NOW_MS,
    );
    assert_eq!(o.reply.status, 200);
    assert!(
        events.contains(&Event::Token {
            cached: true,
            refused: false
        }),
        "`Bearer ` or not, one token"
    );
    // Past `exp`, the cached token is refused as expired.
    let (o, _, _) = env.run(
        &g,
        head("GET", "/dev/me", &[("authorization", &token)]),
        NOW_MS + 601_000,
    );
    assert_eq!(
        o.reply.body_text(),
        r#"{"message":"The incoming token has expired"}"#
    );
}

#[test]
fn templates_read_claims() {
    let g = gateway();
    let env = Env::new(&g, true);
    let token = key().sign(&id_claims(NOW_MS / 1000 + 600));
    let mut h = head(
        "POST",
        "/dev/mapped",
        &[
            ("authorization", &token),
            ("content-type", "application/json"),
        ],
    );
    h.method = "POST".into();
    let (o, payload, _) = env.run(&g, h, NOW_MS);
    assert_eq!(o.reply.status, 200, "{}", o.reply.body_text());
    assert_eq!(payload.unwrap(), json!({"user": "alice", "sub": "u-1"}));
}

#[test]
fn refusals_answer_as_api_gateway() {
    let g = gateway();
    let env = Env::new(&g, true);
    let now_s = NOW_MS / 1000;
    let access = key().sign(&json!({"sub": "u", "iss": ISS, "token_use": "access",
        "scope": "orders/read", "exp": now_s + 60}));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/dev/me",
            String::new(),
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
        (
            "/dev/me",
            "garbage".into(),
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
        (
            "/dev/me",
            key().sign(&id_claims(now_s - 5)),
            401,
            r#"{"message":"The incoming token has expired"}"#,
        ),
        (
            "/dev/me",
            access.clone(),
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
        (
            "/dev/orders",
            key().sign(&id_claims(now_s + 60)),
            401,
            r#"{"message":"Unauthorized"}"#,
        ),
        ("/dev/orders", access, 200, ""),
    ];
    for (path, token, status, body) in cases {
        let headers: Vec<(&str, &str)> = if token.is_empty() {
            vec![]
        } else {
            vec![("authorization", token.as_str())]
        };
        let (o, _, _) = env.run(&g, head("GET", path, &headers), NOW_MS);
        assert_eq!(
            o.reply.status,
            status,
            "{path} {token:.20}: {}",
            o.reply.body_text()
        );
        if !body.is_empty() {
            assert_eq!(o.reply.body_text(), body);
            assert_eq!(
                o.reply.header("x-amzn-ErrorType"),
                Some("UnauthorizedException")
            );
            assert!(o.log.is_some());
        }
    }
}

#[test]
fn no_keys_yet_is_a_500_never_a_pass() {
    let g = gateway();
    let env = Env::new(&g, false);
    let token = key().sign(&id_claims(NOW_MS / 1000 + 60));
    let (o, payload, _) = env.run(
        &g,
        head("GET", "/dev/me", &[("authorization", &token)]),
        NOW_MS,
    );
    assert_eq!(o.reply.status, 500);
    assert!(payload.is_none());
    assert!(o.log.unwrap().contains("have not been fetched yet"));
}

#[test]
fn unknown_kid_asks_for_a_refresh_within_the_lease() {
    let g = gateway();
    let env = Env::new(&g, true);
    let rotated = TestKey::ec("k2", 12);
    let token = rotated.sign(&id_claims(NOW_MS / 1000 + 600));
    let (o, _, _) = env.run(
        &g,
        head("GET", "/dev/me", &[("authorization", &token)]),
        NOW_MS,
    );
    assert_eq!(o.reply.status, 401);
    let sources = g.jwks_sources();
    let min = sources[0].min_refresh_ms;
    // Too soon after the last fetch: the lease holds the refresh off.
    // (Source 1, the deployment file's JWT issuer, has no keys yet and is always due.)
    let (due, _) = env
        .keys
        .borrow_mut()
        .due(sources, &env.cells, NOW_MS + 1000);
    assert!(!due.contains(&0), "{due:?}");
    let (due, _) = env.keys.borrow_mut().due(sources, &env.cells, NOW_MS + min);
    assert!(due.contains(&0), "{due:?}");
    let doc = jwks(&[key(), &rotated]);
    env.keys
        .borrow_mut()
        .fetched(
            sources,
            &env.cells,
            0,
            NOW_MS + min,
            Some(200),
            doc.as_bytes(),
        )
        .unwrap();
    let (o, _, _) = env.run(
        &g,
        head("GET", "/dev/me", &[("authorization", &token)]),
        NOW_MS + min,
    );
    assert_eq!(o.reply.status, 200, "{}", o.reply.body_text());
}

#[test]
fn generic_jwt_authorizer_from_the_deployment_file() {
    let g = gateway();
    let env = Env::new(&g, false);
    let sources = g.jwks_sources();
    assert_eq!(
        sources[1].url,
        "https://id.example.com/.well-known/jwks.json"
    );
    let doc = jwks(&[key()]);
    env.keys
        .borrow_mut()
        .fetched(sources, &env.cells, 1, NOW_MS, Some(200), doc.as_bytes())
        .unwrap();
    let claims = |aud: &str, scp: &str| {
        json!({"iss": "https://id.example.com", "sub": "svc",
        "aud": aud, "scp": scp, "exp": NOW_MS / 1000 + 60})
    };
    for (aud, scp, status) in [
        ("api://reports", "reports.read", 200),
        ("api://other", "reports.read", 401),
        ("api://reports", "x", 401),
    ] {
        let token = key().sign(&claims(aud, scp));
        let (o, _, _) = env.run(
            &g,
            head(
                "GET",
                "/dev/reports",
                &[("authorization", &format!("Bearer {token}"))],
            ),
            NOW_MS,
        );
        assert_eq!(o.reply.status, status, "{aud} {scp}");
    }
}

#[test]
fn one_fetch_per_refresh_across_workers_and_backoff_on_failure() {
    let g = gateway();
    let sources = &g.jwks_sources()[..1];
    let cells = Cells::default();
    let (mut a, mut b) = (KeyRing::new(1), KeyRing::new(1));
    // Both workers are due at start; only one takes the lease.
    let (da, _) = a.due(sources, &cells, NOW_MS);
    let (db, _) = b.due(sources, &cells, NOW_MS);
    assert_eq!((da.len(), db.len()), (1, 0));
    // The fetch fails: the last good keys (none) stay, and nobody tries before the backoff.
    let e = a
        .fetched(sources, &cells, 0, NOW_MS, Some(503), b"")
        .unwrap_err();
    assert!(e.contains("HTTP 503") && e.contains("answer 500"), "{e}");
    assert!(b
        .due(sources, &cells, NOW_MS + backoff_ms(1) - 1)
        .0
        .is_empty());
    let (db, _) = b.due(sources, &cells, NOW_MS + backoff_ms(1));
    assert_eq!(db, vec![0]);
    let t = NOW_MS + backoff_ms(1);
    b.fetched(sources, &cells, 0, t, Some(200), jwks(&[key()]).as_bytes())
        .unwrap();
    // The other worker adopts the document without fetching it.
    let (da, _) = a.due(sources, &cells, t + 1);
    assert!(da.is_empty());
    assert!(a.keys(0).is_some());
    // A refresh failure keeps the keys.
    let refresh = sources[0].refresh_ms;
    let (da, _) = a.due(sources, &cells, t + refresh);
    assert_eq!(da, vec![0]);
    let e = a
        .fetched(sources, &cells, 0, t + refresh, None, b"")
        .unwrap_err();
    assert!(e.contains("keeps the 1 keys"), "{e}");
    assert!(a.keys(0).is_some());
    assert_eq!(backoff_ms(1), 1000);
    assert_eq!(backoff_ms(3), 4000);
    assert_eq!(backoff_ms(40), 30_000);
}

#[test]
fn a_worker_adopts_shared_keys_at_once_and_reports_a_broken_document_once() {
    let g = gateway();
    let sources = &g.jwks_sources()[..1];
    let cells = Cells::default();
    let (mut a, mut b) = (KeyRing::new(1), KeyRing::new(1));
    assert!(b.sync(sources, &cells).is_empty());
    assert!(b.keys(0).is_none());
    let (da, _) = a.due(sources, &cells, NOW_MS);
    assert_eq!(da, vec![0]);
    a.fetched(
        sources,
        &cells,
        0,
        NOW_MS,
        Some(200),
        jwks(&[key()]).as_bytes(),
    )
    .unwrap();
    // What a request does while its worker lacks keys: adopt them, no tick needed.
    assert!(b.sync(sources, &cells).is_empty());
    assert!(b.keys(0).is_some() && b.complete());
    // A document nobody can read is reported once, not on every request.
    use crate::shared::SharedCells;
    let mut c = KeyRing::new(1);
    cells
        .set(&crate::jwt::ring::keys_cell(&sources[0]), &[0; 8], 0)
        .unwrap();
    assert_eq!(c.sync(sources, &cells).len(), 1);
    assert!(c.sync(sources, &cells).is_empty());
    assert!(c.keys(0).is_none());
}
