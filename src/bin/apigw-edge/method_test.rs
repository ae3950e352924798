//! `apigw-edge test`: Method Test, one request through the gateway's pipeline without
//! Envoy, calling the deployment's endpoints from here (or answering with a mock).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use apigw_edge::config::SigningMode;
use apigw_edge::gateway::Gateway;
use apigw_edge::http::{Header, UpstreamAnswer, UpstreamCall};
use apigw_edge::method_test::{self, TestRequest, Transcript, Transport};
use apigw_edge::shared::memory::Cells;
use apigw_edge::sigv4::{Credentials, Signer};

pub const USAGE: &str =
    "apigw-edge test <deployment.yaml> <METHOD> <PATH> [--query K=V]... [--header K=V]...
                    [--body TEXT|@FILE] [--stage NAME] [--mock-response FILE]
                    [--mock-status N] [--mock-header K=V]... [--json]";

pub const HELP: &str =
    "test           Method Test: run one request through the same pipeline the filter runs,
                   here and without Envoy, calling the configured Lambda or HTTP endpoint
                   (or answering every call with --mock-response), and print what the
                   console's TEST panel prints: status, latency, the method response and
                   the execution log (method request, endpoint request as sent, endpoint
                   response, method response). PATH is a path of the API, without the
                   stage. Exit status 1 when the answer is a gateway error.";

struct Options {
    deployment: PathBuf,
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<Header>,
    body: Vec<u8>,
    stage: Option<String>,
    mock: Option<Mock>,
    json: bool,
}

struct Mock {
    status: u16,
    headers: Vec<Header>,
    body: Vec<u8>,
}

fn pair(flag: &str, value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim_start().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{flag} takes NAME=VALUE, not {value:?}"))
}

fn file_or_text(value: &str) -> Result<Vec<u8>, String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}")),
        None => Ok(value.as_bytes().to_vec()),
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut positional = Vec::new();
    let mut o = Options {
        deployment: PathBuf::new(),
        method: String::new(),
        path: String::new(),
        query: Vec::new(),
        headers: Vec::new(),
        body: Vec::new(),
        stage: None,
        mock: None,
        json: false,
    };
    let (mut mock_body, mut mock_status, mut mock_headers) = (None, 200u16, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "--query" => o.query.push(pair("--query", &value("--query")?)?),
            "--header" => o.headers.push(pair("--header", &value("--header")?)?),
            "--body" => o.body = file_or_text(&value("--body")?)?,
            "--stage" => o.stage = Some(value("--stage")?),
            "--mock-response" => {
                let path = value("--mock-response")?;
                mock_body =
                    Some(std::fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?);
            }
            "--mock-status" => {
                let v = value("--mock-status")?;
                mock_status = v
                    .parse()
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                    .ok_or(format!("--mock-status takes an HTTP status, not {v:?}"))?;
            }
            "--mock-header" => mock_headers.push(pair("--mock-header", &value("--mock-header")?)?),
            "--json" => o.json = true,
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(a.clone()),
        }
    }
    let [deployment, method, path] = positional.as_slice() else {
        return Err("`test` takes the deployment file, a method and a path".into());
    };
    o.deployment = PathBuf::from(deployment);
    o.method = method.to_ascii_uppercase();
    o.path = if path.starts_with('/') {
        path.clone()
    } else {
        format!("/{path}")
    };
    if mock_body.is_none() && (mock_status != 200 || !mock_headers.is_empty()) {
        return Err("--mock-status and --mock-header need --mock-response".into());
    }
    o.mock = mock_body.map(|body| Mock {
        status: mock_status,
        headers: if mock_headers.is_empty() {
            vec![("content-type".into(), "application/json".into())]
        } else {
            mock_headers
        },
        body,
    });
    Ok(o)
}

/// The path with the `--query` pairs appended (percent-encoding what must be).
fn path_with_query(path: &str, query: &[(String, String)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let mut out = path.to_string();
    for (i, (k, v)) in query.iter().enumerate() {
        let sep = if i == 0 && !path.contains('?') {
            '?'
        } else {
            '&'
        };
        out.push(sep);
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// Calls the deployment's endpoints over HTTP(S), signing what Envoy would sign.
struct Network<'a> {
    gateway: &'a Gateway,
    /// Signers for the clusters Envoy signs, by cluster.
    signers: BTreeMap<String, Signer>,
    /// Why calls to clusters Envoy signs go out unsigned, if they do.
    unsigned: Option<String>,
    max_response_bytes: u64,
    mock: Option<Mock>,
}

impl Network<'_> {
    fn base_url(&self, cluster: &str) -> Option<String> {
        if let Some(u) = self.gateway.upstreams().clusters.get(cluster) {
            let scheme = if u.endpoint.tls { "https" } else { "http" };
            return Some(format!("{scheme}://{}", u.endpoint.authority()));
        }
        self.gateway
            .http_backends()
            .into_iter()
            .find(|b| b.cluster == cluster)
            .map(|b| {
                let scheme = if b.endpoint.tls { "https" } else { "http" };
                format!("{scheme}://{}", b.endpoint.authority())
            })
    }
}

impl Transport for Network<'_> {
    fn url(&self, call: &UpstreamCall) -> String {
        let path = apigw_edge::http::header(&call.headers, ":path").unwrap_or("/");
        match self.base_url(&call.cluster) {
            Some(base) => format!("{base}{path}"),
            None => format!("cluster {}{path}", call.cluster),
        }
    }

    fn send(&mut self, call: &UpstreamCall) -> Result<UpstreamAnswer, String> {
        if let Some(m) = &self.mock {
            return Ok(UpstreamAnswer {
                status: Some(m.status),
                headers: m.headers.clone(),
                body: m.body.clone(),
                host_reply: None,
            });
        }
        let url = self.url(call);
        if self.base_url(&call.cluster).is_none() {
            return Err(format!("no endpoint for cluster {}", call.cluster));
        }
        let mut headers = call.headers.clone();
        if let Some(signer) = self.signers.get(&call.cluster) {
            signer.sign(&mut headers, &call.body, now_ms());
        }
        exchange(
            &url,
            &headers,
            &call.body,
            call.timeout_ms,
            self.max_response_bytes,
        )
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn fetch(&mut self, url: &str) -> Result<(u16, Vec<u8>), String> {
        let headers = [(":method".to_string(), "GET".to_string())];
        let answer = exchange(url, &headers, &[], 10_000, 1 << 20)?;
        Ok((answer.status.unwrap_or(0), answer.body))
    }
}

/// One HTTP(S) exchange with an endpoint.
#[cfg(not(target_arch = "wasm32"))]
fn exchange(
    url: &str,
    headers: &[Header],
    body: &[u8],
    timeout_ms: u64,
    max_response_bytes: u64,
) -> Result<UpstreamAnswer, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(std::time::Duration::from_millis(timeout_ms.max(1))))
        .build()
        .into();
    let method = apigw_edge::http::header(headers, ":method").unwrap_or("POST");
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        let skip = ["host", "content-length", "transfer-encoding", "connection"];
        if !k.starts_with(':') && !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
            request = request.header(k.as_str(), v.as_str());
        }
    }
    let request = request
        .body(body.to_vec())
        .map_err(|e| format!("cannot build the request to {url}: {e}"))?;
    let mut response = agent.run(request).map_err(|e| match e {
        ureq::Error::Timeout(_) => format!("timeout after {timeout_ms} ms"),
        e => e.to_string(),
    })?;
    let status = response.status().as_u16();
    let headers: Vec<Header> = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                apigw_edge::http::header_text(v.as_bytes().to_vec()),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(max_response_bytes.saturating_add(1))
        .read_to_vec()
        .map_err(|e| format!("reading the answer from {url}: {e}"))?;
    Ok(UpstreamAnswer {
        status: Some(status),
        headers,
        body,
        host_reply: None,
    })
}

/// Where there is no HTTP client (a wasm32 build of the CLI), only mock answers.
#[cfg(target_arch = "wasm32")]
fn exchange(url: &str, _: &[Header], _: &[u8], _: u64, _: u64) -> Result<UpstreamAnswer, String> {
    Err(format!("this build cannot call {url}; use --mock-response"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn uuid() -> String {
    let mut b = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Signers for the clusters Envoy would sign (Lambda and AWS service backends), with the
/// credentials this shell has; `Err` says why calls to them go out unsigned.
fn envoy_signers(gateway: &Gateway) -> (BTreeMap<String, Signer>, Option<String>) {
    let envoy_signed: Vec<(String, String, String)> = gateway
        .upstreams()
        .clusters
        .iter()
        .filter(|(_, u)| u.signing == SigningMode::Envoy)
        .map(|(name, u)| (name.clone(), u.region.clone(), "lambda".to_string()))
        .chain(gateway.http_backends().into_iter().filter_map(|b| {
            let s = b.signing.filter(|s| s.mode == SigningMode::Envoy)?;
            Some((b.cluster.to_string(), s.region.clone(), s.service.clone()))
        }))
        .collect();
    if envoy_signed.is_empty() {
        return (BTreeMap::new(), None);
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Credentials {
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
        },
        _ => {
            return (
                BTreeMap::new(),
                Some(
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set in this shell".into(),
                ),
            )
        }
    };
    let signers = envoy_signed
        .into_iter()
        .map(|(cluster, region, service)| {
            (cluster, Signer::new(&region, &service, credentials.clone()))
        })
        .collect();
    (signers, None)
}

fn print_text(t: &Transcript, unsigned: Option<&str>) {
    let reply = &t.outcome.reply;
    println!("Request: {}", t.client_path);
    println!("Status: {}", reply.status);
    println!("Latency: {} ms", t.latency_ms);
    println!("Response body:");
    println!("{}", String::from_utf8_lossy(&reply.body));
    println!("Response headers:");
    println!("{}", apigw_edge::execution_log::map_text(&reply.headers));
    println!("Logs:");
    println!("Execution log for request {}", t.request_id);
    for line in &t.log {
        println!("{line}");
    }
    if !t.filter_log.is_empty() || unsigned.is_some() {
        println!("Filter log:");
        for line in &t.filter_log {
            println!("{line}");
        }
        if let Some(why) = unsigned {
            println!("calls Envoy would sign went out unsigned: {why}");
        }
    }
    if let Some(line) = &t.access_line {
        println!("Access log:");
        println!("{line}");
    }
}

/// The shape of API Gateway's TestInvokeMethod answer.
fn print_json(t: &Transcript) {
    let reply = &t.outcome.reply;
    let mut headers = serde_json::Map::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &reply.headers {
        headers.insert(k.clone(), serde_json::Value::String(v.clone()));
        multi.entry(k.clone()).or_default().push(v.clone());
    }
    let mut log = format!("Execution log for request {}\n", t.request_id);
    for line in &t.log {
        log.push_str(line);
        log.push('\n');
    }
    let out = serde_json::json!({
        "status": reply.status,
        "body": String::from_utf8_lossy(&reply.body),
        "headers": headers,
        "multiValueHeaders": multi,
        "log": log,
        "latency": t.latency_ms,
        "gatewayError": t.outcome.error.as_ref().map(|e| format!("{e:?}")),
        "filterLog": t.filter_log,
        "accessLog": t.access_line,
    });
    println!("{out:#}");
}

pub fn main(args: &[String]) -> ExitCode {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n\nUSAGE:\n    {USAGE}");
            return ExitCode::from(2);
        }
    };
    let (_, mut gateway, _) = match super::load_stage(&o.deployment, o.stage.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if o.mock.is_none() {
        if let Err(e) = gateway.load_credentials(&|n| std::env::var(n).ok()) {
            eprintln!("error: {}: {e}", o.deployment.display());
            return ExitCode::FAILURE;
        }
    }
    let (signers, unsigned) = if o.mock.is_some() {
        (BTreeMap::new(), None)
    } else {
        envoy_signers(&gateway)
    };
    let mut network = Network {
        gateway: &gateway,
        signers,
        unsigned,
        max_response_bytes: gateway.max_response_bytes(),
        mock: o.mock,
    };
    let request = TestRequest {
        method: o.method.clone(),
        path: path_with_query(&o.path, &o.query),
        headers: o.headers.clone(),
        body: o.body.clone(),
    };
    let cells = Cells::default();
    let transcript = method_test::run(&gateway, request, &mut network, &cells, &uuid());
    if o.json {
        print_json(&transcript);
    } else {
        print_text(&transcript, network.unsigned.as_deref());
    }
    if transcript.is_gateway_error() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
