//! `apigw-edge`: validate a deployment, render its Envoy configuration, run it.
//!
//! The CLI reads files and starts processes; every rule it applies comes from the library,
//! so `validate` reports exactly what the filter would refuse in Envoy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use apigw_edge::config::{parse_deployment, FilterConfig};
use apigw_edge::error::ConfigError;
use apigw_edge::gateway::Gateway;
use apigw_edge::render;

const USAGE: &str = "\
apigw-edge: serve an API Gateway REST API export through Envoy and a wasm filter

USAGE:
    apigw-edge validate <deployment.yaml>
    apigw-edge render <deployment.yaml> [--wasm FILE] [--out FILE]
    apigw-edge filter-config <deployment.yaml>
    apigw-edge run <deployment.yaml> [--wasm FILE] [--envoy FILE] [--config-out FILE]

COMMANDS:
    validate       Check the deployment file and the OpenAPI export; print every problem
                   with its location. Exit status 1 when there are errors.
    render         Print the Envoy bootstrap (YAML) for the deployment.
    filter-config  Print the filter's JSON configuration alone (for Istio WasmPlugin or an
                   Envoy configuration of your own).
    run            Render and start Envoy in the foreground.

OPTIONS:
    --wasm FILE        The filter module [default: target/wasm32-wasip1/release/apigw_edge.wasm]
    --envoy FILE       The Envoy binary [default: $APIGW_EDGE_ENVOY, .venv/bin/envoy, envoy]
    --out FILE         Write the rendered configuration here instead of standard output
    --config-out FILE  Where `run` writes the rendered configuration [default: .work/envoy.yaml]
";

const DEFAULT_WASM: &str = "target/wasm32-wasip1/release/apigw_edge.wasm";

struct Args {
    command: String,
    deployment: PathBuf,
    wasm: Option<PathBuf>,
    envoy: Option<PathBuf>,
    out: Option<PathBuf>,
    config_out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or("missing command")?;
    if command == "-h" || command == "--help" || command == "help" {
        return Err(String::new());
    }
    let mut args = Args {
        command,
        deployment: PathBuf::new(),
        wasm: None,
        envoy: None,
        out: None,
        config_out: None,
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
            "--envoy" => args.envoy = Some(value("--envoy")?),
            "--out" => args.out = Some(value("--out")?),
            "--config-out" => args.config_out = Some(value("--config-out")?),
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => positional.push(a),
        }
    }
    match positional.as_slice() {
        [one] => args.deployment = PathBuf::from(one),
        [] => return Err("missing the deployment file".into()),
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
    let deployment = parse_deployment(value).map_err(|e| vec![e])?;
    let base = path.parent().unwrap_or(Path::new("."));
    let export_path = base.join(&deployment.openapi);
    let export_text = read(&export_path, "deployment.openapi")?;
    let openapi = parse_document(&export_text).map_err(|e| {
        vec![ConfigError::new(
            "openapi",
            format!("{}: {e}", export_path.display()),
        )]
    })?;
    Ok(FilterConfig {
        deployment,
        openapi,
    })
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

fn render_yaml(cfg: &FilterConfig, wasm: &Path) -> Result<String, Vec<ConfigError>> {
    let value = render::bootstrap(cfg, &wasm.to_string_lossy())?;
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

fn run(args: Args) -> Result<(), ExitCode> {
    let cfg = load(&args.deployment).map_err(|e| {
        print_errors(&args.deployment, &e);
        ExitCode::FAILURE
    })?;
    let wasm = args
        .wasm
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_WASM));
    match args.command.as_str() {
        "validate" => match Gateway::compile(&cfg) {
            Ok(compiled) => {
                for w in &compiled.warnings {
                    eprintln!("warning: {}: {w}", args.deployment.display());
                }
                let routes = apigw_edge::openapi::parse(&cfg.openapi)
                    .export
                    .operations
                    .len();
                println!(
                    "{}: ok (stage `{}`, {routes} methods, {} warning(s))",
                    args.deployment.display(),
                    cfg.deployment.stage,
                    compiled.warnings.len()
                );
                Ok(())
            }
            Err(errors) => {
                print_errors(&args.deployment, &errors);
                Err(ExitCode::FAILURE)
            }
        },
        "filter-config" => match Gateway::compile(&cfg) {
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
            let yaml = render_yaml(&cfg, &wasm).map_err(|e| {
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
            if !wasm.exists() {
                eprintln!(
                    "error: the filter module {} does not exist; build it with `cargo build --release --target wasm32-wasip1 --lib`",
                    wasm.display()
                );
                return Err(ExitCode::FAILURE);
            }
            let yaml = render_yaml(&cfg, &absolute(&wasm)).map_err(|e| {
                print_errors(&args.deployment, &e);
                ExitCode::FAILURE
            })?;
            let out = args
                .config_out
                .clone()
                .unwrap_or_else(|| PathBuf::from(".work/envoy.yaml"));
            if let Some(dir) = out.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::write(&out, yaml).map_err(|e| {
                eprintln!("error: cannot write {}: {e}", out.display());
                ExitCode::FAILURE
            })?;
            let envoy = find_envoy(args.envoy.clone());
            eprintln!(
                "apigw-edge: starting {} on {} (stage `{}`), configuration in {}",
                envoy.display(),
                cfg.deployment.listen,
                cfg.deployment.stage,
                out.display()
            );
            let status = std::process::Command::new(&envoy)
                .arg("-c")
                .arg(&out)
                .args([
                    "--concurrency",
                    &cfg.deployment.envoy.concurrency.to_string(),
                ])
                .args(["--log-level", &cfg.deployment.envoy.log_level])
                .arg("--disable-hot-restart")
                .status()
                .map_err(|e| {
                    eprintln!("error: cannot start {}: {e}", envoy.display());
                    ExitCode::FAILURE
                })?;
            if status.success() {
                Ok(())
            } else {
                Err(ExitCode::from(
                    u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
                ))
            }
        }
        other => {
            eprintln!("error: unknown command `{other}`\n\n{USAGE}");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) if msg.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
