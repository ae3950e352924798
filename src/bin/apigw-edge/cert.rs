//! `apigw-edge cert new|show`, and the checks and path resolution of the deployment's
//! certificate files (`tls`, `clientCertificate`).
//!
//! Owns: generating the gateway's client certificate for backends (a key pair and a
//! self-signed certificate, as API Gateway's `generate-client-certificate` makes one),
//! printing the PEM a backend should trust, and reading the files a deployment names so
//! that `validate` reports an unreadable or malformed one by its field. Must not: decide
//! what the files mean to Envoy (the renderer does).

use std::path::{Path, PathBuf};

use apigw_edge::client_cert::{certificate_files, ClientCert, PemKind};
use apigw_edge::config::Deployment;
use apigw_edge::error::ConfigError;

pub const USAGE: &str = "\
    apigw-edge cert new [--out DIR] [--days N] [--name CN]
    apigw-edge cert show <certificate.pem | deployment.yaml>";

pub const HELP: &str = "\
    cert new       Generate the gateway's client certificate for HTTPS backends: a P-256
                   key and a self-signed certificate (valid --days, default 365) written to
                   DIR/client-cert.pem and DIR/client-key.pem; prints the
                   `clientCertificate` entry for the deployment file.
    cert show      Print a certificate's subject, issuer, serial and validity, then its PEM
                   (what a backend adds to its truststore). Given a deployment file, the
                   certificate of its `clientCertificate`.";

/// Default validity of a generated certificate, in days (API Gateway's is a year).
const DEFAULT_DAYS: u32 = 365;

/// Makes the deployment's certificate paths absolute (relative ones are relative to the
/// deployment file), so Envoy finds them whatever its working directory.
pub fn resolve_paths(d: &mut Deployment, base: &Path) {
    let resolve = |p: &mut String| {
        if !p.is_empty() && Path::new(p.as_str()).is_relative() {
            *p = crate::absolute(&base.join(p.as_str()))
                .to_string_lossy()
                .into_owned();
        }
    };
    if let Some(t) = d.tls.as_mut() {
        resolve(&mut t.certificate_file);
        resolve(&mut t.private_key_file);
        if let Some(ts) = t.truststore.as_mut() {
            resolve(ts);
        }
    }
    if let Some(c) = d.client_certificate.as_mut() {
        resolve(&mut c.certificate_file);
        resolve(&mut c.private_key_file);
    }
}

/// Reads every certificate file the deployment names: certificates must hold a PEM X.509
/// certificate, keys a PEM private key.
pub fn check_files(d: &Deployment) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (at, path, kind) in certificate_files(d) {
        if path.trim().is_empty() {
            continue; // the library's check names it
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigError::new(at, format!("cannot read {path}: {e}")));
                continue;
            }
        };
        let problem = if kind == PemKind::Certificate {
            first_certificate(&text).err()
        } else if text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----") {
            None
        } else {
            Some("not a PEM private key".to_string())
        };
        if let Some(p) = problem {
            errors.push(ConfigError::new(at, format!("{path}: {p}")));
        }
    }
    errors
}

/// The first certificate of a PEM text (a chain or a truststore may hold several).
fn first_certificate(text: &str) -> Result<ClientCert, String> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or("no PEM certificate (-----BEGIN CERTIFICATE-----) in it")?;
    let rest = text.get(start..).unwrap_or_default();
    let end = rest
        .find(END)
        .ok_or("a PEM certificate without its END line")?;
    ClientCert::from_pem(rest.get(..end + END.len()).unwrap_or_default())
}

pub struct NewOptions {
    pub out: PathBuf,
    pub days: u32,
    pub name: String,
}

impl NewOptions {
    pub fn parse(args: &[String]) -> Result<NewOptions, String> {
        let mut o = NewOptions {
            out: PathBuf::from("."),
            days: DEFAULT_DAYS,
            name: "apigw-edge client certificate".into(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--out" => o.out = PathBuf::from(value()?),
                "--days" => {
                    o.days = value()?
                        .parse()
                        .ok()
                        .filter(|d| (1..=36_500).contains(d))
                        .ok_or("--days takes a whole number of days from 1 to 36500")?;
                }
                "--name" => o.name = value()?.clone(),
                other => return Err(format!("`cert new` does not take {other}")),
            }
        }
        Ok(o)
    }
}

/// `cert new` where there is no key generator (a wasm32 build of the CLI).
#[cfg(target_arch = "wasm32")]
pub fn new(_: &NewOptions) -> Result<(), String> {
    Err("`cert new` is not available in this build".into())
}

/// `cert new`: writes the key (owner-only) and the certificate, prints the entry.
#[cfg(not(target_arch = "wasm32"))]
pub fn new(o: &NewOptions) -> Result<(), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, o.name.as_str());
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(u64::from(o.days) * 86_400)).into();
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let cert_path = o.out.join("client-cert.pem");
    let key_path = o.out.join("client-key.pem");
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let shown = ClientCert::from_pem(&cert.pem())?;
    eprintln!(
        "Wrote {} and {} (valid until {}).",
        cert_path.display(),
        key_path.display(),
        shown.validity.not_after
    );
    eprintln!(
        "Add to the deployment file (backends trust the certificate: `apigw-edge cert show`):"
    );
    println!("clientCertificate:");
    println!("  certificateFile: {}", cert_path.display());
    println!("  privateKeyFile: {}", key_path.display());
    Ok(())
}

#[cfg(all(unix, not(target_arch = "wasm32")))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(all(not(unix), not(target_arch = "wasm32")))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// `cert show`: a certificate file, or the `clientCertificate` of a deployment file.
pub fn show(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (pem_path, text) = if text.contains("-----BEGIN CERTIFICATE-----") {
        (path.to_path_buf(), text)
    } else {
        let cfg = crate::load(path).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            lines.join("; ")
        })?;
        let files = cfg.deployment.client_certificate.ok_or(format!(
            "{}: the deployment has no clientCertificate (create one with `apigw-edge cert new`)",
            path.display()
        ))?;
        let p = PathBuf::from(files.certificate_file);
        let t = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        (p, t)
    };
    let c = first_certificate(&text).map_err(|e| format!("{}: {e}", pem_path.display()))?;
    println!("# {}", pem_path.display());
    println!("# subject:    {}", c.subject_dn);
    println!("# issuer:     {}", c.issuer_dn);
    println!("# serial:     {}", c.serial_number);
    println!("# not before: {}", c.validity.not_before);
    println!("# not after:  {}", c.validity.not_after);
    print!("{}", c.client_cert_pem);
    if !c.client_cert_pem.ends_with('\n') {
        println!();
    }
    Ok(())
}
