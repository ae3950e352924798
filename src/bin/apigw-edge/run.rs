//! `apigw-edge run`: Envoy in the foreground, with the gateway's listeners and clusters
//! delivered from files Envoy watches, written again whenever the deployment file or its
//! export changes. A change that does not validate is refused with its errors and the
//! running configuration keeps serving.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use apigw_edge::config::FilterConfig;

use super::FilterModule;
use serde_json::{json, Value};

/// How often the deployment file and the export are checked for changes.
const POLL: Duration = Duration::from_millis(300);

/// The files Envoy reads listeners and clusters from, in `dir`.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn lds(&self) -> PathBuf {
        self.dir.join("listeners.json")
    }

    fn cds(&self) -> PathBuf {
        self.dir.join("clusters.json")
    }

    /// A bootstrap that takes listeners and clusters from the watched files, and the two
    /// files' contents, from a rendered (static) bootstrap.
    fn split(&self, mut bootstrap: Value, version: u64) -> (Value, Value, Value) {
        let take = |b: &mut Value, what: &str| -> Vec<Value> {
            b.pointer_mut(&format!("/static_resources/{what}"))
                .map(Value::take)
                .and_then(|v| match v {
                    Value::Array(items) => Some(items),
                    _ => None,
                })
                .unwrap_or_default()
        };
        let listeners = take(&mut bootstrap, "listeners");
        let clusters = take(&mut bootstrap, "clusters");
        let resources = |items: Vec<Value>, kind: &str| {
            let items: Vec<Value> = items
                .into_iter()
                .map(|mut i| {
                    if let Some(obj) = i.as_object_mut() {
                        obj.insert(
                            "@type".into(),
                            json!(format!("type.googleapis.com/envoy.config.{kind}")),
                        );
                    }
                    i
                })
                .collect();
            json!({"version_info": version.to_string(), "resources": items})
        };
        let source = |file: PathBuf| {
            json!({"resource_api_version": "V3", "path_config_source": {
                "path": file.to_string_lossy(),
                "watched_directory": {"path": self.dir.to_string_lossy()}
            }})
        };
        if let Some(obj) = bootstrap.as_object_mut() {
            obj.remove("static_resources");
            obj.insert(
                "dynamic_resources".into(),
                json!({"lds_config": source(self.lds()), "cds_config": source(self.cds())}),
            );
            obj.insert(
                "node".into(),
                json!({"id": "apigw-edge", "cluster": "apigw-edge"}),
            );
        }
        (
            bootstrap,
            resources(listeners, "listener.v3.Listener"),
            resources(clusters, "cluster.v3.Cluster"),
        )
    }

    /// Writes the clusters, then the listeners (which name them), each replacing its file
    /// at once, as Envoy's file watcher expects.
    fn publish(&self, lds: &Value, cds: &Value) -> Result<(), String> {
        for (path, value) in [(self.cds(), cds), (self.lds(), lds)] {
            let tmp = path.with_extension("json.tmp");
            let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
            std::fs::write(&tmp, text)
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// When a file was last written, and its length (a rewrite within the file system's
/// timestamp tick still changes one of them most of the time).
type Stamp = Option<(SystemTime, u64)>;

fn modified(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The files a deployment is read from (itself and its exports) and when each was last
/// changed.
fn watched(deployment: &Path, cfg: &FilterConfig) -> Vec<(PathBuf, Stamp)> {
    let base = deployment.parent().unwrap_or(Path::new("."));
    [deployment.to_path_buf(), base.join(&cfg.deployment.openapi)]
        .into_iter()
        .chain(cfg.exports.keys().map(|p| base.join(p)))
        .map(|p| {
            let t = modified(&p);
            (p, t)
        })
        .collect()
}

/// Renders the deployment as it is now: the static bootstrap, or the errors.
fn render(
    deployment: &Path,
    module: &FilterModule,
) -> Result<(FilterConfig, Value), Vec<apigw_edge::error::ConfigError>> {
    let cfg = super::load(deployment)?;
    let bootstrap = apigw_edge::render::bootstrap_for(&cfg, module.render())?;
    Ok((cfg, bootstrap))
}

pub fn run(
    deployment: &Path,
    module: &FilterModule,
    envoy: &Path,
    config_out: &Path,
) -> Result<(), ExitCode> {
    let (cfg, bootstrap) = render(deployment, module).map_err(|e| {
        super::print_errors(deployment, &e);
        ExitCode::FAILURE
    })?;
    let dir = config_out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let _ = std::fs::create_dir_all(&dir);
    let files = Files {
        dir: super::absolute(&dir),
    };
    let mut version = 1u64;
    let (boot, lds, cds) = files.split(bootstrap, version);
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    files.publish(&lds, &cds).map_err(fail)?;
    let yaml = serde_yaml::to_string(&boot).map_err(|e| fail(e.to_string()))?;
    std::fs::write(config_out, yaml)
        .map_err(|e| fail(format!("cannot write {}: {e}", config_out.display())))?;
    eprintln!(
        "apigw-edge: starting {} on {} (stage `{}`), configuration in {} (listeners and clusters in {}); changes to {} are picked up while it runs",
        envoy.display(),
        cfg.deployment.listen,
        cfg.deployment.stage,
        config_out.display(),
        files.dir.display(),
        deployment.display()
    );
    let mut child = std::process::Command::new(envoy)
        .arg("-c")
        .arg(config_out)
        .args([
            "--concurrency",
            &cfg.deployment.envoy.concurrency.to_string(),
        ])
        .args(["--log-level", &cfg.deployment.envoy.log_level])
        .arg("--disable-hot-restart")
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", envoy.display())))?;
    let mut seen = watched(deployment, &cfg);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| fail(e.to_string()))? {
            return if status.success() {
                Ok(())
            } else {
                Err(ExitCode::from(
                    u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
                ))
            };
        }
        std::thread::sleep(POLL);
        let changed = seen.iter().any(|(p, t)| modified(p) != *t);
        if !changed {
            continue;
        }
        // Let a writer finish, then take the files as they are. Their stamps are taken
        // before they are read: a write landing while they are read is seen at the next poll
        // instead of being taken for the state just read.
        std::thread::sleep(POLL);
        let read: Vec<(PathBuf, Stamp)> = seen
            .into_iter()
            .map(|(p, _)| {
                let t = modified(&p);
                (p, t)
            })
            .collect();
        match render(deployment, module) {
            Err(errors) => {
                seen = read;
                super::print_errors(deployment, &errors);
                eprintln!("apigw-edge: change refused; the running configuration keeps serving");
            }
            Ok((new_cfg, bootstrap)) => {
                // Files the new configuration adds (a new export) are stamped now.
                seen = watched(deployment, &new_cfg)
                    .into_iter()
                    .map(|(p, now)| {
                        let before = read.iter().find(|(q, _)| *q == p).map(|(_, t)| *t);
                        (p, before.unwrap_or(now))
                    })
                    .collect();
                let restart_needed = new_cfg.deployment.listen != cfg.deployment.listen
                    || new_cfg.deployment.admin != cfg.deployment.admin
                    || new_cfg.deployment.envoy.concurrency != cfg.deployment.envoy.concurrency;
                version += 1;
                let (_, lds, cds) = files.split(bootstrap, version);
                match files.publish(&lds, &cds) {
                    Ok(()) => eprintln!(
                        "apigw-edge: configuration {version} handed to Envoy{}",
                        if restart_needed {
                            " (listen, admin and envoy.concurrency changes need a restart)"
                        } else {
                            ""
                        }
                    ),
                    Err(e) => eprintln!("apigw-edge: {e}; the running configuration keeps serving"),
                }
            }
        }
    }
}
