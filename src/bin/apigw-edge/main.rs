//! `apigw-edge`: validate a deployment, render its Envoy configuration, run it.
//!
//! The CLI reads files and starts processes; every rule it applies comes from the library,
//! so `validate` reports exactly what the filter would refuse in Envoy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use apigw_edge::apikeys;
use apigw_edge::config::{parse_deployment, FilterConfig};
use apigw_edge::error::ConfigError;
use apigw_edge::gateway::Gateway;
use apigw_edge::render;
use apigw_edge::stage_set::StageSet;

mod cert;
mod method_test;
mod publish;
mod ratelimit;
mod run;
mod template;

const USAGE: &str = "\
apigw-edge: serve an API Gateway REST API export through Envoy and a wasm (or native) filter

USAGE:
    apigw-edge validate <deployment.yaml>
    apigw-edge render <deployment.yaml> [--module wasm|native] [--wasm FILE] [--native FILE] [--out FILE]
    apigw-edge filter-config <deployment.yaml>
    apigw-edge run <deployment.yaml> [--module wasm|native] [--wasm FILE] [--native FILE] [--envoy FILE] [--config-out FILE]
    apigw-edge cache flush <deployment.yaml> [--stage NAME]
    apigw-edge cache status <deployment.yaml> [--stage NAME]
    apigw-edge authorizers flush <deployment.yaml> [--stage NAME]
    apigw-edge usage <deployment.yaml> <key-id> [--stage NAME]
    apigw-edge key new [--id ID] [--name NAME]
    apigw-edge key hash <value>
    {TEST_USAGE}
    {PUBLISH_USAGE}
    {RATELIMIT_USAGE}
    {CERT_USAGE}
    {TEMPLATE_USAGE}

COMMANDS:
    validate       Check the deployment file and the OpenAPI export; print every problem
                   with its location. Exit status 1 when there are errors.
    render         Print the Envoy bootstrap (YAML) for the deployment.
    filter-config  Print the filter's JSON configuration alone (for Istio WasmPlugin or an
                   Envoy configuration of your own).
    run            Render and start Envoy in the foreground.
    cache flush    Flush the stage cache of the running gateway on every worker, through
                   the control listener (deployment field `control`).
    cache status   Print the stage cache's flush generation from the running gateway.
    authorizers flush
                   Drop every cached Lambda authorizer result on every worker of the
                   running gateway (the next request of each caller calls its authorizer).
    usage          Print an API key's quota standing (limit, used, remaining, reset) from
                   the running gateway.
    key new        Generate an API key: prints the value once, and the `apiKeys` entry
                   (SHA-256 only) to paste into the deployment file.
    key hash       Print the SHA-256 of an existing key value, for `valueSha256`.
    {TEST_HELP}
    {PUBLISH_HELP}
    {RATELIMIT_HELP}
    {CERT_HELP}
    {TEMPLATE_HELP}

OPTIONS:
    --module KIND      Which build of the filter Envoy loads: `wasm` (proxy-wasm in V8) or
                       `native` (Envoy dynamic module, Envoy 1.40) [default: wasm]
    --wasm FILE        The wasm filter [default: target/wasm32-wasip1/release/apigw_edge.wasm]
    --native FILE      The native filter [default: target/native/libapigw_edge.so]
    --envoy FILE       The Envoy binary [default: $APIGW_EDGE_ENVOY, .venv/bin/envoy, envoy]
    --out FILE         Write the rendered configuration here instead of standard output
    --config-out FILE  Where `run` writes the rendered configuration [default: .work/envoy.yaml]
    --stage NAME       The stage of a multi-stage deployment the control commands act
                       on [default: the first]
    --id ID            Key id for `key new` [default: a random one]
    --name NAME        Key name for `key new`
";

const DEFAULT_WASM: &str = "target/wasm32-wasip1/release/apigw_edge.wasm";
const DEFAULT_NATIVE: &str = "target/native/libapigw_edge.so";

/// The build of the filter a command renders for, and its file.
pub struct FilterModule {
    pub native: bool,
    pub path: PathBuf,
}

impl FilterModule {
    pub fn render(&self) -> render::Module<'_> {
        let path = self.path.to_str().unwrap_or_default();
        if self.native {
            render::Module::Native(path)
        } else {
            render::Module::Wasm(path)
        }
    }

    /// How to build the file when it is missing.
    fn build_hint(&self) -> &'static str {
        if self.native {
            "cargo build --lib --no-default-features --features native --profile native"
        } else {
            "cargo build --release --target wasm32-wasip1 --lib"
        }
    }
}

struct Args {
    command: String,
    /// The deployment file, or the key value for `key hash`.
    deployment: PathBuf,
    id: Option<String>,
    name: Option<String>,
    wasm: Option<PathBuf>,
    native: Option<PathBuf>,
    module: Option<String>,
    envoy: Option<PathBuf>,
    out: Option<PathBuf>,
    config_out: Option<PathBuf>,
    stage: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or("missing command")?;
    if command == "-h" || command == "--help" || command == "help" {
        return Err(String::new());
    }
    let command = if command == "cache" || command == "key" || command == "authorizers" {
        let sub = it.next().ok_or(format!("`{command}` needs a subcommand"))?;
        format!("{command} {sub}")
    } else {
        command
    };
    let mut args = Args {
        command,
        deployment: PathBuf::new(),
        id: None,
        name: None,
        wasm: None,
        native: None,
        module: None,
        envoy: None,
        out: None,
        config_out: None,
        stage: None,
    };
    let mut positional = Vec::new();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .map(PathBuf::from)
                .ok_or(format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--wasm" => args.wasm = Some(value("--wasm")?),
            "--native" => args.native = Some(value("--native")?),
            "--module" => {
                let kind = value("--module")?.to_string_lossy().into_owned();
                if kind != "wasm" && kind != "native" {
                    return Err(format!("--module takes wasm or native, not {kind:?}"));
                }
                args.module = Some(kind);
            }
            "--envoy" => args.envoy = Some(value("--envoy")?),
            "--out" => args.out = Some(value("--out")?),
            "--config-out" => args.config_out = Some(value("--config-out")?),
            "--id" => args.id = Some(value("--id")?.to_string_lossy().into_owned()),
            "--name" => args.name = Some(value("--name")?.to_string_lossy().into_owned()),
            "--stage" => args.stage = Some(value("--stage")?.to_string_lossy().into_owned()),
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => positional.push(a),
        }
    }
    match (args.command.as_str(), positional.as_slice()) {
        ("key new", []) => {}
        ("key new", _) => return Err("`key new` takes no file".into()),
        ("key hash", [one]) => args.deployment = PathBuf::from(one),
        ("key hash", _) => return Err("`key hash` takes one key value".into()),
        ("usage", [deployment, key]) => {
            args.deployment = PathBuf::from(deployment);
            args.id = Some(key.clone());
        }
        ("usage", _) => return Err("`usage` takes the deployment file and a key id".into()),
        (_, [one]) => args.deployment = PathBuf::from(one),
        (_, []) => return Err("missing the deployment file".into()),
        _ => return Err("expected one deployment file".into()),
    }
    Ok(args)
}

/// Parses YAML or JSON text into a JSON value.
fn parse_document(text: &str) -> Result<serde_json::Value, String> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        return Ok(v);
    }
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    serde_json::to_value(yaml).map_err(|e| e.to_string())
}

/// Reads the deployment file and the export it names.
fn load(path: &Path) -> Result<FilterConfig, Vec<ConfigError>> {
    let read = |p: &Path, what: &str| {
        std::fs::read_to_string(p).map_err(|e| {
            vec![ConfigError::new(
                what,
                format!("cannot read {}: {e}", p.display()),
            )]
        })
    };
    let text = read(path, "deployment")?;
    let value = parse_document(&text).map_err(|e| vec![ConfigError::new("deployment", e)])?;
    let mut deployment = parse_deployment(value).map_err(|e| vec![e])?;
    let base = path.parent().unwrap_or(Path::new("."));
    cert::resolve_paths(&mut deployment, base);
    let file_errors = cert::check_files(&deployment);
    if !file_errors.is_empty() {
        return Err(file_errors);
    }
    let export_path = base.join(&deployment.openapi);
    let export_text = read(&export_path, "deployment.openapi")?;
    let openapi = parse_document(&export_text).map_err(|e| {
        vec![ConfigError::new(
            "openapi",
            format!("{}: {e}", export_path.display()),
        )]
    })?;
    let mut exports = std::collections::BTreeMap::new();
    for name in stage_exports(&deployment) {
        let p = base.join(&name);
        let text = read(&p, "deployment.stages.openapi")?;
        let doc = parse_document(&text)
            .map_err(|e| vec![ConfigError::new("openapi", format!("{}: {e}", p.display()))])?;
        exports.insert(name, doc);
    }
    Ok(FilterConfig {
        deployment,
        openapi,
        exports,
    })
}

/// The exports stages and canaries serve other than the top-level one, as the file names
/// them.
fn stage_exports(d: &apigw_edge::config::Deployment) -> Vec<String> {
    let canaries = d
        .stages
        .iter()
        .filter_map(|s| s.canary_settings.as_ref())
        .chain(d.canary_settings.as_ref());
    let mut names: Vec<String> = d
        .stages
        .iter()
        .filter_map(|s| s.openapi.clone())
        .chain(canaries.filter_map(|c| c.openapi.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The deployment, one stage's compiled gateway and the export it serves, refused
/// (errors printed) when the deployment does not validate or has no stage `stage` (absent:
/// the first).
fn load_stage(
    path: &Path,
    stage: Option<&str>,
) -> Result<(FilterConfig, Gateway, serde_json::Value), ExitCode> {
    let failed = |e: Vec<ConfigError>| {
        print_errors(path, &e);
        ExitCode::FAILURE
    };
    let cfg = load(path).map_err(failed)?;
    let set = StageSet::compile(&cfg).map_err(failed)?.set;
    let names = set.stage_names();
    let Some(name) = stage.or(names.first().copied()) else {
        return Err(failed(vec![ConfigError::new("deployment", "no stage")]));
    };
    let Some(i) = set.stage_index(name) else {
        eprintln!(
            "error: {}: serves stage{} `{}`, not `{name}`",
            path.display(),
            if names.len() == 1 { "" } else { "s" },
            names.join("`, `")
        );
        return Err(ExitCode::FAILURE);
    };
    let export = cfg.export(set.export_path(i)).cloned().unwrap_or_default();
    let Some(gateway) = set.into_gateway(i) else {
        return Err(failed(vec![ConfigError::new("deployment", "no stage")]));
    };
    Ok((cfg, gateway, export))
}

fn print_errors(path: &Path, errors: &[ConfigError]) {
    for e in errors {
        eprintln!("error: {}: {e}", path.display());
    }
    eprintln!("{} error(s) in {}", errors.len(), path.display());
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

fn render_yaml(cfg: &FilterConfig, module: &FilterModule) -> Result<String, Vec<ConfigError>> {
    let value = render::bootstrap_for(cfg, module.render())?;
    serde_yaml::to_string(&value).map_err(|e| vec![ConfigError::new("render", e.to_string())])
}

fn find_envoy(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    if let Some(p) = std::env::var_os("APIGW_EDGE_ENVOY") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(".venv/bin/envoy");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("envoy")
}

/// Random letters and digits from the operating system's generator.
fn random_alphanumeric(len: usize) -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len * 2];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    // 248 is the largest multiple of 62 below 256: rejecting larger bytes keeps it uniform.
    let out: String = bytes
        .iter()
        .filter(|b| **b < 248)
        .filter_map(|b| ALPHABET.get(usize::from(*b) % ALPHABET.len()))
        .take(len)
        .map(|b| char::from(*b))
        .collect();
    if out.len() == len {
        Ok(out)
    } else {
        random_alphanumeric(len)
    }
}

fn key_command(args: &Args) -> Result<(), ExitCode> {
    if args.command == "key hash" {
        let value = args.deployment.to_string_lossy();
        if !apikeys::valid_value(&value) {
            eprintln!("warning: API Gateway key values are 20-128 letters and digits");
        }
        println!("{}", apikeys::hash_value(&value));
        return Ok(());
    }
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let value = random_alphanumeric(40).map_err(fail)?;
    let id = match &args.id {
        Some(id) => id.clone(),
        None => random_alphanumeric(10).map_err(fail)?.to_ascii_lowercase(),
    };
    eprintln!("API key value (shown once; give it to the caller, it is not stored):");
    eprintln!("  {value}");
    eprintln!("Add to the deployment file under `apiKeys:`");
    println!("- id: {id}");
    if let Some(name) = &args.name {
        println!("  name: {}", serde_json::Value::String(name.clone()));
    }
    println!("  valueSha256: {}", apikeys::hash_value(&value));
    Ok(())
}

/// Sends one request to the control listener of a running gateway.
fn control_request(addr: &str, method: &str, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| {
        format!("cannot reach the control listener at {addr}: {e} (is the gateway running?)")
    })?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response from {addr}"))?;
    Ok((status, body.to_string()))
}

/// Runs one request against the running gateway's control listener and prints the answer.
fn control_command(args: &Args, cfg: &FilterConfig) -> Result<(), ExitCode> {
    let Some(addr) = cfg.deployment.control.as_deref() else {
        eprintln!(
            "error: {}: deployment.control is not set; add `control: 127.0.0.1:9902` and restart the gateway",
            args.deployment.display()
        );
        return Err(ExitCode::FAILURE);
    };
    let (method, path) = match args.command.as_str() {
        "cache flush" => ("POST", "/cache/flush".to_string()),
        "authorizers flush" => ("POST", "/authorizers/flush".to_string()),
        "usage" => (
            "GET",
            format!("/usage/{}", args.id.as_deref().unwrap_or_default()),
        ),
        _ => ("GET", "/cache".to_string()),
    };
    let path = match &args.stage {
        Some(stage) => format!("/stages/{stage}{path}"),
        None => path,
    };
    match control_request(addr, method, &path) {
        Ok((200, body)) => {
            println!("{body}");
            Ok(())
        }
        Ok((status, body)) => {
            eprintln!("error: the control listener answered {status}: {body}");
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn run(args: Args) -> Result<(), ExitCode> {
    if args.command.starts_with("key ") {
        return key_command(&args);
    }
    let cfg = load(&args.deployment).map_err(|e| {
        print_errors(&args.deployment, &e);
        ExitCode::FAILURE
    })?;
    let module = if args.module.as_deref() == Some("native") {
        FilterModule {
            native: true,
            path: args
                .native
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_NATIVE)),
        }
    } else {
        FilterModule {
            native: false,
            path: args
                .wasm
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_WASM)),
        }
    };
    match args.command.as_str() {
        "validate" => match render::bootstrap_for(&cfg, module.render())
            .and_then(|_| StageSet::compile(&cfg))
        {
            Ok(compiled) => {
                let mut warnings = compiled.warnings.len();
                for w in &compiled.warnings {
                    eprintln!("warning: {}: {w}", args.deployment.display());
                }
                let mut set = compiled.set;
                let first = set.gateway(0).cloned();
                if let Some(gateway) = &first {
                    for (name, u) in &gateway.upstreams().clusters {
                        eprintln!(
                            "upstream {name}: {}://{}, signing {:?}, region {}",
                            if u.endpoint.tls { "https" } else { "http" },
                            u.endpoint.authority(),
                            u.signing,
                            u.region
                        );
                    }
                }
                let mut backends = Vec::new();
                for g in set.gateways() {
                    for b in g.http_backends() {
                        let signing = b.signing.map_or(String::new(), |s| {
                            format!(", {} in {}, signing {:?}", s.service, s.region, s.mode)
                        });
                        let line = format!(
                            "backend {}: {}://{}{signing}",
                            b.cluster,
                            if b.endpoint.tls { "https" } else { "http" },
                            b.endpoint.authority()
                        );
                        if !backends.contains(&line) {
                            backends.push(line);
                        }
                    }
                }
                for line in &backends {
                    eprintln!("{line}");
                }
                drop(first);
                // Envoy passes its own environment into the VM; this one may differ.
                if let Err(e) = set.load_credentials(&|n| std::env::var(n).ok()) {
                    warnings += 1;
                    eprintln!(
                        "warning: {}: {e} (in this shell; Envoy's environment is what counts)",
                        args.deployment.display()
                    );
                }
                let stages: Vec<String> = (0..set.len())
                    .filter_map(|i| {
                        let g = set.gateway(i)?;
                        Some(format!(
                            "stage `{}`: {} methods",
                            set.label(i),
                            g.method_count()
                        ))
                    })
                    .collect();
                println!(
                    "{}: ok ({}; {} warning(s))",
                    args.deployment.display(),
                    stages.join("; "),
                    warnings
                );
                Ok(())
            }
            Err(errors) => {
                print_errors(&args.deployment, &errors);
                Err(ExitCode::FAILURE)
            }
        },
        "filter-config" => match StageSet::compile(&cfg) {
            Ok(_) => {
                println!("{}", cfg.to_json());
                Ok(())
            }
            Err(errors) => {
                print_errors(&args.deployment, &errors);
                Err(ExitCode::FAILURE)
            }
        },
        "render" => {
            // The path is written as given: Envoy resolves a relative one from its working
            // directory, and a container path need not exist here.
            let yaml = render_yaml(&cfg, &module).map_err(|e| {
                print_errors(&args.deployment, &e);
                ExitCode::FAILURE
            })?;
            match &args.out {
                None => print!("{yaml}"),
                Some(out) => std::fs::write(out, yaml).map_err(|e| {
                    eprintln!("error: cannot write {}: {e}", out.display());
                    ExitCode::FAILURE
                })?,
            }
            Ok(())
        }
        "run" => {
            if !module.path.exists() {
                eprintln!(
                    "error: the filter module {} does not exist; build it with `{}`",
                    module.path.display(),
                    module.build_hint()
                );
                return Err(ExitCode::FAILURE);
            }
            let out = args
                .config_out
                .clone()
                .unwrap_or_else(|| PathBuf::from(".work/envoy.yaml"));
            if let Some(dir) = out.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            run::run(
                &args.deployment,
                &FilterModule {
                    native: module.native,
                    path: absolute(&module.path),
                },
                &find_envoy(args.envoy.clone()),
                &out,
            )
        }
        "cache flush" | "cache status" | "usage" | "authorizers flush" => {
            control_command(&args, &cfg)
        }
        other => {
            eprintln!("error: unknown command `{other}`\n\n{}", usage());
            Err(ExitCode::from(2))
        }
    }
}

/// `cert new` and `cert show`.
fn cert_command(args: &[String]) -> ExitCode {
    let result = match args {
        [sub, rest @ ..] if sub == "new" => cert::NewOptions::parse(rest)
            .map_err(|e| format!("{e}\n\n{}", usage()))
            .and_then(|o| cert::new(&o)),
        [sub, file] if sub == "show" => cert::show(Path::new(file)),
        _ => Err(format!(
            "`cert` takes `new [--out DIR] [--days N] [--name CN]` or `show <file>`\n\n{}",
            usage()
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    USAGE
        .replace("{TEST_USAGE}", method_test::USAGE)
        .replace("{TEST_HELP}", method_test::HELP)
        .replace("{PUBLISH_USAGE}", publish::USAGE)
        .replace("{PUBLISH_HELP}", publish::HELP)
        .replace("{RATELIMIT_USAGE}", ratelimit::USAGE)
        .replace("{RATELIMIT_HELP}", ratelimit::HELP)
        .replace("{CERT_USAGE}", cert::USAGE)
        .replace("{CERT_HELP}", cert::HELP)
        .replace("{TEMPLATE_USAGE}", template::USAGE)
        .replace("{TEMPLATE_HELP}", template::HELP)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("template") {
        return template::main(argv.get(1..).unwrap_or_default());
    }
    if let Some(command @ ("export" | "docs" | "sdk")) = argv.first().map(String::as_str) {
        return publish::main(command, argv.get(1..).unwrap_or_default());
    }
    if argv.first().map(String::as_str) == Some("test") {
        return method_test::main(argv.get(1..).unwrap_or_default());
    }
    if argv.first().map(String::as_str) == Some("ratelimit-config") {
        return ratelimit::main(argv.get(1..).unwrap_or_default());
    }
    if argv.first().map(String::as_str) == Some("cert") {
        return cert_command(argv.get(1..).unwrap_or_default());
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
