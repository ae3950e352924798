//! `apigw-edge template`: render one mapping template against a sample request or Lambda
//! result, without Envoy, to debug it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use apigw_edge::mapping;
use apigw_edge::vtl::{Env, Input, Template, Value};

pub const USAGE: &str = "\
    apigw-edge template <template.vtl> [--input FILE] [--path N=V]... [--query N=V]...
                       [--header N=V]... [--stage-variable N=V]... [--context N=V]...";

pub const HELP: &str = "\
    template       Render a mapping template against a sample input and print the result.
                   --input is what `$input` reads (the request body for a request template,
                   the Lambda result for a response template); --path, --query and --header
                   are the method request's parameters; --context sets `$context` values
                   (dotted names nest: identity.sourceIp=10.0.0.1). Overrides the template
                   sets (`$context.responseOverride.*`) are printed to standard error.
                   Exit status 1 when the template does not compile or fails to render.";

struct Sample {
    template: PathBuf,
    input: Option<PathBuf>,
    path: Vec<(String, String)>,
    query: Vec<(String, String)>,
    header: Vec<(String, String)>,
    stage: Vec<(String, String)>,
    context: Vec<(String, String)>,
}

fn parse(args: &[String]) -> Result<Sample, String> {
    let mut s = Sample {
        template: PathBuf::new(),
        input: None,
        path: Vec::new(),
        query: Vec::new(),
        header: Vec::new(),
        stage: Vec::new(),
        context: Vec::new(),
    };
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut pair = |flag: &str| -> Result<(String, String), String> {
            let v = it.next().ok_or(format!("{flag} needs NAME=VALUE"))?;
            v.split_once('=')
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .ok_or(format!("{flag} needs NAME=VALUE, got `{v}`"))
        };
        match a.as_str() {
            "--input" => {
                let file = it.next().ok_or("--input needs a file")?;
                s.input = Some(PathBuf::from(file));
            }
            "--path" => s.path.push(pair("--path")?),
            "--query" => s.query.push(pair("--query")?),
            "--header" => s.header.push(pair("--header")?),
            "--stage-variable" => s.stage.push(pair("--stage-variable")?),
            "--context" => s.context.push(pair("--context")?),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => positional.push(a.clone()),
        }
    }
    match positional.as_slice() {
        [one] => s.template = PathBuf::from(one),
        _ => return Err("`template` takes one template file".into()),
    }
    Ok(s)
}

/// `$context` with sample values, overridden by `--context`.
fn context(sets: &[(String, String)]) -> Value {
    let ctx = Value::map(Vec::new());
    let Value::Map(root) = &ctx else {
        return ctx;
    };
    for (k, v) in [
        ("accountId", "123456789012"),
        ("apiId", "sample"),
        ("httpMethod", "POST"),
        ("path", "/test/sample"),
        ("protocol", "HTTP/1.1"),
        ("requestId", "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
        ("resourcePath", "/sample"),
        ("stage", "test"),
    ] {
        root.put(k, Value::str(v));
    }
    root.put(
        "identity",
        Value::map(vec![
            (Rc::from("sourceIp"), Value::str("127.0.0.1")),
            (Rc::from("userAgent"), Value::str("apigw-edge-template")),
        ]),
    );
    for (k, o) in mapping::override_maps() {
        root.put(&k, o);
    }
    for (name, value) in sets {
        let mut parts: Vec<&str> = name.split('.').collect();
        let Some(last) = parts.pop() else { continue };
        let mut at = root.clone();
        for p in parts {
            let next = match at.get(p) {
                Some(Value::Map(m)) => m,
                _ => {
                    let fresh = Value::map(Vec::new());
                    at.put(p, fresh.clone());
                    match fresh {
                        Value::Map(m) => m,
                        _ => return ctx.clone(),
                    }
                }
            };
            at = next;
        }
        at.put(last, Value::str(value.as_str()));
    }
    ctx.clone()
}

pub fn main(args: &[String]) -> ExitCode {
    let s = match parse(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}\n\nUSAGE:\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| {
            eprintln!("error: cannot read {}: {e}", p.display());
            ExitCode::FAILURE
        })
    };
    let source = match read(&s.template) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let body = match s.input.as_ref().map(read).transpose() {
        Ok(b) => b.unwrap_or_default(),
        Err(code) => return code,
    };
    let template = match Template::compile(&source) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", s.template.display());
            return ExitCode::FAILURE;
        }
    };
    let env = Env {
        input: Input {
            body: &body,
            path: &s.path,
            querystring: &s.query,
            header: &s.header,
        },
        context: context(&s.context),
        stage_variables: Value::string_map(&s.stage, false),
    };
    match template.render(&env) {
        Ok(out) => {
            print!("{out}");
            if let Some(status) = mapping::override_status(&env.context) {
                eprintln!("responseOverride.status: {status}");
            }
            for (k, v) in mapping::override_headers(&env.context, "responseOverride") {
                eprintln!("responseOverride.header.{k}: {v}");
            }
            for (k, v) in mapping::override_headers(&env.context, "requestOverride") {
                eprintln!("requestOverride.header.{k}: {v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: render failed: {e}", s.template.display());
            ExitCode::FAILURE
        }
    }
}
