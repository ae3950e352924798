//! Shared end-to-end harness: a scripted Lambda Invoke API server, real Envoy started from a
//! configuration rendered by the real CLI, and a small HTTP/1.1 client. Everything listens on
//! 127.0.0.1 with ports picked by the OS.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Envoy binary: `$APIGW_EDGE_ENVOY` or the project virtualenv's.
pub fn envoy_bin() -> PathBuf {
    let p = std::env::var_os("APIGW_EDGE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/envoy"));
    assert!(
        p.exists(),
        "Envoy not found at {}: run ./scripts/setup.sh (or ./scripts/test.sh)",
        p.display()
    );
    p
}

/// A build output of the repository, which must exist (`how` builds it).
fn built(relative: &str, how: &str) -> PathBuf {
    let p = repo().join(relative);
    assert!(
        p.exists(),
        "{} is missing: build it with `{how}` (./scripts/test.sh does)",
        p.display()
    );
    p
}

/// The filter module built with the `crash-trigger` feature (profile `crash-test`).
pub fn crash_wasm_path() -> PathBuf {
    built(
        "target/wasm32-wasip1/crash-test/apigw_edge.wasm",
        "cargo build --profile crash-test --target wasm32-wasip1 --lib --features crash-trigger",
    )
}

/// Resident memory of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Whether the end-to-end tests run the native build of the filter
/// (`APIGW_EDGE_MODULE=native`) instead of the wasm one.
pub fn native() -> bool {
    std::env::var("APIGW_EDGE_MODULE").as_deref() == Ok("native")
}

/// The native filter module (profile `native`).
pub fn native_path() -> PathBuf {
    built(
        "target/native/libapigw_edge.so",
        "cargo build --lib --no-default-features --features native --profile native",
    )
}

/// The release filter module.
pub fn wasm_path() -> PathBuf {
    built(
        "target/wasm32-wasip1/release/apigw_edge.wasm",
        "cargo build --release --target wasm32-wasip1 --lib",
    )
}

pub fn cli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_apigw-edge"))
}

/// A free loopback port for a server the test starts, taken below the kernel's ephemeral
/// range (32768-60999 by default): ports handed out by `bind(0)` are also the local ports of
/// outgoing connections, so with many test clients one of them may hold the port by the time
/// Envoy binds it. Each call in a process gets a different port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Spread processes over the range, then walk it.
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < SPAN,
            "no free loopback port left below the ephemeral range"
        );
        let port = (FIRST + (start + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The JSON lines written to `path` so far, once there are at least `n` (Envoy's access
/// logger flushes about once a second; gives up after 10 s).
pub fn json_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `apigw-edge validate` on a deployment file: success, standard output, standard error.
pub fn validate_cli(deployment: &Path) -> (bool, String, String) {
    let out = Command::new(cli())
        .arg("validate")
        .arg(deployment)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = repo()
        .join("target/e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A request as the Invoke server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn function(&self) -> String {
        self.path
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_string()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "Invoke payload is not JSON ({e}):\n{}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What the Invoke server answers.
#[derive(Debug, Clone)]
pub struct StubReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Header lines sent as they are (for bytes that are not UTF-8), each ending in CRLF.
    pub raw_headers: Vec<u8>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl StubReply {
    /// A successful synchronous invocation returning `payload`, as Lambda answers it.
    pub fn payload(payload: impl Into<Vec<u8>>) -> Self {
        StubReply {
            status: 200,
            headers: vec![
                ("x-amzn-RequestId".into(), "stub-request".into()),
                ("X-Amz-Executed-Version".into(), "$LATEST".into()),
            ],
            raw_headers: Vec::new(),
            body: payload.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
    /// Adds a header line of raw bytes.
    pub fn with_raw_header(mut self, line: &[u8]) -> Self {
        self.raw_headers.extend_from_slice(line);
        self.raw_headers.extend_from_slice(b"\r\n");
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// HTTP 500 with an error payload and no Lambda headers: how local emulators report a
    /// function error.
    pub fn emulator_error(message: &str) -> Self {
        StubReply {
            status: 500,
            headers: vec![],
            raw_headers: Vec::new(),
            body: serde_json::json!({"errorType": "Error", "errorMessage": message})
                .to_string()
                .into_bytes(),
            delay: Duration::ZERO,
        }
    }
}

type Script = dyn Fn(&Recorded) -> StubReply + Send + Sync;

/// A scripted Lambda Invoke API on loopback that records every request.
pub struct InvokeStub {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Recorded>>>,
}

/// Header (name, value) pairs in order.
pub type Headers = Vec<(String, String)>;

/// Reads a header block and the `content-length` body that follows (none when `head_only`).
fn read_headers_and_body(reader: &mut impl BufRead, head_only: bool) -> Option<(Headers, Vec<u8>)> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; if head_only { 0 } else { len }];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

fn read_request(reader: &mut impl BufRead) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (headers, body) = read_headers_and_body(reader, false)?;
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

/// A byte stream a stub serves: plain TCP or TLS over it.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Turns an accepted connection into the stream the stub speaks HTTP over (TLS).
pub type Wrap = Arc<dyn Fn(TcpStream) -> Option<Box<dyn Stream>> + Send + Sync>;

impl InvokeStub {
    pub fn start(script: impl Fn(&Recorded) -> StubReply + Send + Sync + 'static) -> Self {
        Self::start_on(None, 0, script)
    }

    /// The stub on a port chosen earlier (a service that comes up after the gateway).
    pub fn start_at(
        port: u16,
        script: impl Fn(&Recorded) -> StubReply + Send + Sync + 'static,
    ) -> Self {
        Self::start_on(None, port, script)
    }

    /// The stub behind TLS with `tls`'s certificate (see [`TestCa`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn start_tls(
        tls: &TestCa,
        script: impl Fn(&Recorded) -> StubReply + Send + Sync + 'static,
    ) -> Self {
        Self::start_on(Some(tls.wrap()), 0, script)
    }

    fn start_on(
        wrap: Option<Wrap>,
        port: u16,
        script: impl Fn(&Recorded) -> StubReply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let log2 = log.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let log = log2.clone();
                let script = script.clone();
                let wrap = wrap.clone();
                thread::spawn(move || {
                    let stream: Box<dyn Stream> = match wrap {
                        None => Box::new(conn),
                        Some(wrap) => match wrap(conn) {
                            Some(s) => s,
                            None => return,
                        },
                    };
                    let mut reader = BufReader::new(stream);
                    while let Some(req) = read_request(&mut reader) {
                        log.lock().unwrap().push(req.clone());
                        let reply = script(&req);
                        thread::sleep(reply.delay);
                        let mut out = format!(
                            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
                            reply.status,
                            reply.body.len()
                        );
                        for (k, v) in &reply.headers {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        let mut bytes = out.into_bytes();
                        bytes.extend_from_slice(&reply.raw_headers);
                        bytes.extend_from_slice(b"\r\n");
                        bytes.extend_from_slice(&reply.body);
                        let writer = reader.get_mut();
                        if writer
                            .write_all(&bytes)
                            .and_then(|_| writer.flush())
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        InvokeStub { port, log }
    }

    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// The last request made to `function`.
    pub fn last(&self, function: &str) -> Recorded {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.function() == function)
            .unwrap_or_else(|| panic!("no invocation of {function}"))
    }
}

/// A response as the client saw it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(port, method, path, headers, body, Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// [`request`] that reports failures (refused, timed out, no response) instead of panicking.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    exchange(port, &bytes, method == "HEAD", timeout)
}

/// Sends `bytes` as they are on a fresh connection and reads one response.
pub fn exchange(
    port: u16,
    bytes: &[u8],
    head_only: bool,
    timeout: Duration,
) -> Result<Response, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(bytes).map_err(|e| e.to_string())?;
    // Read until the message is complete rather than until the server closes: after a reply
    // it makes while the request is still arriving, Envoy delays its close for up to a
    // second (`delayed_close_timeout`) waiting for the client to close first.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !message_complete(&raw, head_only) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    parse_response(&raw, head_only)
}

/// Whether `raw` holds a whole HTTP/1.1 response (by `content-length`, chunked framing, or
/// no body for HEAD, 1xx, 204 and 304).
fn message_complete(raw: &[u8], head_only: bool) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if head_only || status.starts_with('1') || status == "204" || status == "304" {
        return true;
    }
    let body = &raw[split + 4..];
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    if let Some(n) = length {
        return body.len() >= n;
    }
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    false
}

pub fn get(port: u16, path: &str) -> Response {
    request(port, "GET", path, &[], b"")
}

fn parse_response(raw: &[u8], head: bool) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no response head in {:?}", String::from_utf8_lossy(raw)))?;
    let head_text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head_text:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if head {
        body.clear();
    } else if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
    out
}

/// A test certificate authority and a server certificate it issued for `localhost` and
/// `127.0.0.1`; `ca_file` is the CA's PEM, for `lambda.tls.caFile`.
#[cfg(not(target_arch = "wasm32"))]
pub struct TestCa {
    pub ca_file: PathBuf,
    server: Arc<rustls::ServerConfig>,
}

#[cfg(not(target_arch = "wasm32"))]
impl TestCa {
    fn wrap(&self) -> Wrap {
        let config = self.server.clone();
        Arc::new(move |conn| {
            let session = rustls::ServerConnection::new(config.clone()).ok()?;
            Some(Box::new(rustls::StreamOwned::new(session, conn)) as Box<dyn Stream>)
        })
    }

    pub fn new(dir: &Path) -> TestCa {
        TestCa::with_client_auth(dir, None)
    }

    /// A server that completes the handshake only with a client certificate that
    /// `trusted_client` (PEM: a CA, or a self-signed certificate itself) vouches for.
    pub fn requiring_client_cert(dir: &Path, trusted_client: &str) -> TestCa {
        TestCa::with_client_auth(dir, Some(trusted_client))
    }

    fn with_client_auth(dir: &Path, trusted_client: Option<&str>) -> TestCa {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "apigw-edge test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap()
                .signed_by(&leaf_key, &ca, &ca_key)
                .unwrap();
        let ca_file = dir.join("test-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match trusted_client {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(pem_to_der(pem).into()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let server = builder
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
        TestCa {
            ca_file,
            server: Arc::new(server),
        }
    }
}

/// The DER bytes of the first certificate in a PEM text.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .unwrap()
}

/// `envoy --mode validate`: whether Envoy accepts `config`, and what it said.
pub fn envoy_validate(config: &Path) -> (bool, String) {
    envoy_validate_with_env(config, &[])
}

/// [`envoy_validate`] with extra environment variables for Envoy.
pub fn envoy_validate_with_env(config: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "-c"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running Envoy serving a deployment; killed on drop.
pub struct Envoy {
    child: Child,
    pub port: u16,
    pub admin: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
}

/// Writes a deployment (YAML text without `openapi`, `listen`, `admin`) and an export into
/// `dir`, renders with the CLI and returns the rendered configuration path and ports.
pub fn render(dir: &Path, deployment: &str, openapi: &serde_json::Value) -> (PathBuf, u16, u16) {
    render_on(dir, deployment, openapi, free_port(), free_port())
}

/// [`render`] with the listener and admin ports chosen by the caller.
pub fn render_on(
    dir: &Path,
    deployment: &str,
    openapi: &serde_json::Value,
    port: u16,
    admin: u16,
) -> (PathBuf, u16, u16) {
    render_module(dir, deployment, openapi, (port, admin), &wasm_path())
}

/// [`render_on`] for another build of the filter module.
pub fn render_module(
    dir: &Path,
    deployment: &str,
    openapi: &serde_json::Value,
    (port, admin): (u16, u16),
    wasm: &Path,
) -> (PathBuf, u16, u16) {
    std::fs::write(
        dir.join("openapi.json"),
        serde_json::to_vec_pretty(openapi).unwrap(),
    )
    .unwrap();
    let text = format!(
        "openapi: openapi.json\nlisten: 127.0.0.1:{port}\nadmin: 127.0.0.1:{admin}\n{deployment}"
    );
    std::fs::write(dir.join("deployment.yaml"), text).unwrap();
    let out = dir.join("envoy.yaml");
    let mut render = Command::new(cli());
    render.arg("render").arg(dir.join("deployment.yaml"));
    // The release module stands for "the filter": the native build when the run asks.
    if native() && wasm == wasm_path() {
        render
            .arg("--module")
            .arg("native")
            .arg("--native")
            .arg(native_path());
    } else {
        render.arg("--wasm").arg(wasm);
    }
    let status = render.arg("--out").arg(&out).status().unwrap();
    assert!(status.success(), "render failed for {}", dir.display());
    (out, port, admin)
}

impl Envoy {
    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Renders and starts Envoy with `concurrency` workers, waiting until it is ready.
    pub fn start(
        name: &str,
        deployment: &str,
        openapi: &serde_json::Value,
        concurrency: u32,
    ) -> Envoy {
        let dir = temp_dir(name);
        let (config, port, admin) = render(&dir, deployment, openapi);
        Envoy::start_config(dir, config, port, admin, concurrency)
    }

    pub fn start_config(
        dir: PathBuf,
        config: PathBuf,
        port: u16,
        admin: u16,
        concurrency: u32,
    ) -> Envoy {
        Envoy::start_config_env(dir, config, (port, admin), concurrency, &[])
    }

    /// [`Envoy::start_config`] with extra environment variables (credentials) for Envoy.
    pub fn start_config_env(
        dir: PathBuf,
        config: PathBuf,
        (port, admin): (u16, u16),
        concurrency: u32,
        env: &[(&str, &str)],
    ) -> Envoy {
        let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
        let child = Command::new(envoy_bin())
            .envs(env.iter().copied())
            .arg("-c")
            .arg(&config)
            .args([
                "--concurrency",
                &concurrency.to_string(),
                "--disable-hot-restart",
                "--log-level",
                "info",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut envoy = Envoy {
            child,
            port,
            admin,
            dir,
            config,
        };
        envoy.wait_ready();
        envoy
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Envoy exited with {status}:\n{}", self.log());
            }
            // While Envoy starts, the admin port may accept and close without answering:
            // only a 200 counts, anything else is asked again.
            let ready = try_request(
                self.admin,
                "GET",
                "/ready",
                &[],
                b"",
                Duration::from_secs(5),
            )
            .is_ok_and(|r| r.status == 200);
            if ready && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("Envoy did not become ready:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// Envoy stats as name -> value (counters and gauges).
    pub fn stats(&self) -> BTreeMap<String, String> {
        get(self.admin, "/stats")
            .text()
            .lines()
            .filter_map(|l| {
                l.split_once(": ")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.stats()
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.port, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.port, path)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `arn:aws:apigateway:…/functions/{function}/invocations` for an export.
pub fn lambda_uri(function: &str) -> String {
    format!("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:{function}/invocations")
}

/// An operation with a Lambda proxy integration.
pub fn proxy_op(function: &str) -> serde_json::Value {
    serde_json::json!({"x-amazon-apigateway-integration": {"type": "aws_proxy", "httpMethod": "POST", "uri": lambda_uri(function)}})
}

/// A keep-alive HTTP/1.1 connection: successive requests reach the same Envoy worker.
pub struct Conn {
    reader: BufReader<TcpStream>,
    port: u16,
}

impl Conn {
    pub fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        Conn {
            reader: BufReader::new(s),
            port,
        }
    }

    /// Sends one request without a body and reads the response by its `content-length`.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
            self.port
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.reader.get_mut().write_all(req.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let (headers, body) = read_headers_and_body(&mut self.reader, method == "HEAD")
            .unwrap_or_else(|| panic!("{method} {path}: malformed response"));
        Response {
            status,
            headers,
            body,
        }
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, &[])
    }
}

/// Runs `cmd`, asserting success; returns standard output.
pub fn stdout_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the CLI with `args`, asserting success; returns standard output.
pub fn cli_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = stdout_ok(Command::new(cli()).current_dir(repo()).args(args));
    String::from_utf8(out).unwrap()
}

/// AWS's services emulated by moto's server on loopback (Cognito, SQS, SNS, S3, Kinesis,
/// DynamoDB, ...); stopped on drop.
pub struct Moto {
    child: std::process::Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new(repo().join(".venv/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server (installed by scripts/setup.sh)");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start"
            );
            thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Loads `url` in headless Chromium (Debian's, installed by `setup.sh --browser`, or
/// `$APIGW_EDGE_CHROMIUM`) with a fresh profile in `profile` and `extra` flags; returns the
/// DOM it ends with and Chromium's standard error.
pub fn chromium_dom(url: &str, profile: &Path, extra: &[&str]) -> (String, String) {
    let chromium = std::env::var_os("APIGW_EDGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "Chromium not found at {}: run ./scripts/setup.sh --browser",
        chromium.display()
    );
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
