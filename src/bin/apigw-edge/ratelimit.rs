//! `apigw-edge ratelimit-config`: the limits a fleet's rate-limit service needs for a
//! deployment's usage plans and throttles, in the configuration format of the engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use apigw_edge::stage_set::StageSet;
use apigw_edge::usage::engines::{self, Engine};

pub const USAGE: &str =
    "apigw-edge ratelimit-config <deployment.yaml> --for limitador|envoy-ratelimit [--out FILE]";

pub const HELP: &str = "\
ratelimit-config
                   Write the limits configuration of a rate-limit service shared by a
                   fleet of gateways (`usage.rateLimitService`): Limitador's limits file,
                   or the configuration of Envoy's reference rate-limit service.";

pub fn main(args: &[String]) -> ExitCode {
    let mut engine = None;
    let mut out: Option<PathBuf> = None;
    let mut deployment = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--for" => engine = it.next().and_then(|v| Engine::parse(v)),
            "--out" => out = it.next().map(PathBuf::from),
            _ if deployment.is_none() && !a.starts_with('-') => deployment = Some(PathBuf::from(a)),
            _ => {
                eprintln!("error: unexpected argument `{a}`\n\nUSAGE:\n    {USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(deployment), Some(engine)) = (deployment, engine) else {
        eprintln!("error: expected a deployment file and --for limitador|envoy-ratelimit\n\nUSAGE:\n    {USAGE}");
        return ExitCode::from(2);
    };
    match run(&deployment, engine, out.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn run(deployment: &Path, engine: Engine, out: Option<&Path>) -> Result<(), ExitCode> {
    let failed = |e: Vec<apigw_edge::error::ConfigError>| {
        super::print_errors(deployment, &e);
        ExitCode::FAILURE
    };
    let cfg = super::load(deployment).map_err(failed)?;
    let set = StageSet::compile(&cfg).map_err(failed)?.set;
    let domain = cfg
        .deployment
        .usage
        .rate_limit_service
        .as_ref()
        .map_or("apigw-edge", |s| s.domain.as_str());
    // A canary counts with its stage.
    let stages: Vec<(&str, &apigw_edge::usage::UsagePlans)> = set
        .stage_names()
        .into_iter()
        .filter_map(|name| Some((name, set.stage(name)?.usage_plans())))
        .collect();
    let value = engines::config(engine, domain, &stages);
    let text = serde_yaml::to_string(&value).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })?;
    if cfg
        .deployment
        .usage_plans
        .iter()
        .any(|p| p.quota.is_some_and(|q| q.offset > 0))
    {
        eprintln!("warning: {}: quota offsets apply in the per-process mode only; the rate-limit service counts every window from zero", deployment.display());
    }
    match out {
        None => {
            print!("{text}");
            Ok(())
        }
        Some(path) => std::fs::write(path, text).map_err(|e| {
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }),
    }
}
