//! `apigw-edge export`, `apigw-edge docs` and `apigw-edge sdk`: the stage's API as a clean
//! OpenAPI document, as an HTML reference, and as a client SDK.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use apigw_edge::config::FilterConfig;
use apigw_edge::export::{self, DocType, Options};
use apigw_edge::gateway::Gateway;

pub const USAGE: &str = "apigw-edge export <deployment.yaml> [--stage NAME] [--type oas30|swagger]
                      [--extensions none|apigateway] [--out FILE]
    apigw-edge docs <deployment.yaml> [--stage NAME] --out DIR
    apigw-edge sdk <deployment.yaml> --lang typescript|javascript|python [--stage NAME] --out DIR";

pub const HELP: &str =
    "export         Print the stage's API as API Gateway exports it: OpenAPI 3.0 (default) or
                   Swagger 2.0, servers pointing at the gateway, documentation parts merged
                   into descriptions, API Gateway's extensions left out unless
                   --extensions apigateway.
    docs           Write a self-contained HTML reference of the stage's API to DIR/index.html:
                   every method with what a caller needs (API key, authorizer, IAM),
                   parameters, bodies, responses and an example request; the models.
    sdk            Write a client for the stage's API to DIR (client.ts, client.js or
                   client.py): one function per method, the models as types (TypeScript),
                   an API key option and a signing hook for IAM-authorised methods.";

struct Args {
    deployment: PathBuf,
    stage: Option<String>,
    doc_type: DocType,
    extensions: bool,
    out: Option<PathBuf>,
    lang: Option<apigw_edge::sdk::Lang>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        deployment: PathBuf::new(),
        stage: None,
        doc_type: DocType::Oas30,
        extensions: false,
        out: None,
        lang: None,
    };
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--stage" => a.stage = Some(value("--stage")?),
            "--out" => a.out = Some(PathBuf::from(value("--out")?)),
            "--lang" => {
                let v = value("--lang")?;
                a.lang = Some(apigw_edge::sdk::Lang::parse(&v).ok_or(format!(
                    "--lang takes typescript, javascript or python, not {v:?}"
                ))?);
            }
            "--type" => {
                a.doc_type = match value("--type")?.as_str() {
                    "oas30" => DocType::Oas30,
                    "swagger" => DocType::Swagger,
                    other => return Err(format!("--type takes oas30 or swagger, not {other:?}")),
                }
            }
            "--extensions" => {
                a.extensions = match value("--extensions")?.as_str() {
                    "none" => false,
                    "apigateway" => true,
                    other => {
                        return Err(format!(
                            "--extensions takes none or apigateway, not {other:?}"
                        ))
                    }
                }
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg.clone()),
        }
    }
    match positional.as_slice() {
        [one] => a.deployment = PathBuf::from(one),
        _ => return Err("expected one deployment file".into()),
    }
    Ok(a)
}

/// The gateway's origin (`http://127.0.0.1:8080`) and the stage's base path.
fn location(cfg: &FilterConfig, gateway: &Gateway) -> (String, String) {
    let d = &cfg.deployment;
    let scheme = if d.tls.is_some() { "https" } else { "http" };
    let base = gateway.client_path("/");
    (
        format!("{scheme}://{}", d.listen),
        base.trim_end_matches('/').to_string(),
    )
}

fn write_out(out: Option<&Path>, text: &str) -> Result<(), ExitCode> {
    match out {
        None => {
            println!("{text}");
            Ok(())
        }
        Some(path) => std::fs::write(path, text).map_err(|e| {
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }),
    }
}

fn run(command: &str, args: &[String]) -> Result<(), ExitCode> {
    let a = parse(args).map_err(|e| {
        eprintln!("error: {e}\n\nUSAGE:\n    {USAGE}");
        ExitCode::from(2)
    })?;
    let (cfg, gateway, openapi) = super::load_stage(&a.deployment, a.stage.as_deref())?;
    let (origin, base_path) = location(&cfg, &gateway);
    let options = Options {
        doc_type: a.doc_type,
        extensions: a.extensions,
        origin: origin.clone(),
        base_path: base_path.clone(),
    };
    if command == "export" {
        let doc = export::export(&openapi, &options);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        return write_out(a.out.as_deref(), &text);
    }
    let Some(dir) = a.out.as_deref() else {
        eprintln!("error: `{command}` needs --out DIR\n\nUSAGE:\n    {USAGE}");
        return Err(ExitCode::from(2));
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        eprintln!("error: cannot create {}: {e}", dir.display());
        ExitCode::FAILURE
    })?;
    let doc = export::export(
        &openapi,
        &Options {
            doc_type: DocType::Oas30,
            extensions: false,
            ..options
        },
    );
    let base_url = format!("{origin}{base_path}");
    if command == "sdk" {
        let Some(lang) = a.lang else {
            eprintln!(
                "error: `sdk` needs --lang typescript|javascript|python\n\nUSAGE:\n    {USAGE}"
            );
            return Err(ExitCode::from(2));
        };
        for (name, text) in apigw_edge::sdk::generate(lang, &doc, &gateway.method_auth(), &base_url)
        {
            let path = dir.join(name);
            write_out(Some(&path), &text)?;
            eprintln!("wrote {}", path.display());
        }
        return Ok(());
    }
    let page = apigw_edge::docs::html(&doc, &gateway.method_auth(), &base_url);
    let index = dir.join("index.html");
    write_out(Some(&index), &page)?;
    eprintln!("wrote {}", index.display());
    Ok(())
}

/// `export`, `docs` and `sdk`.
pub fn main(command: &str, args: &[String]) -> ExitCode {
    match run(command, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
