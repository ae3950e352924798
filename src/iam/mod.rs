//! Callers of IAM-authorised methods (`AWS_IAM`) and the check of their SigV4 signatures.
//!
//! Owns: the callers the deployment file declares (access key id, the environment variable
//! that holds the secret, session token, ARN, identity policy), loading their secrets once
//! per VM, reading a signature from the `Authorization` header or a presigned query
//! ([`presented`]), and verifying it: the credential scope (this API's region, service
//! `execute-api`), the date within 5 minutes of now (or a presigned URL's `X-Amz-Expires`),
//! the session token, and the signature recomputed over the headers the client signed with
//! the caller's key, compared in constant time. Must not: read the environment or clocks
//! itself (the glue lends a lookup and `now`), or decide access (the policy stage does).

pub mod presented;

use crate::config::Deployment;
use crate::error::ConfigError;
use crate::http::Header;
use crate::resource_policy::Policy;
use crate::sigv4::{amz_date, constant_time_eq, sha256_hex, Credentials, Signer};

pub use presented::{Presented, Scope};

/// The signing name of API Gateway's execute API.
pub const EXECUTE_API: &str = "execute-api";
/// How far a header-signed request's date may be from now.
pub const MAX_SKEW_MS: u64 = 5 * 60_000;
/// The longest `X-Amz-Expires` of a presigned URL (seven days, as in SigV4).
pub const MAX_PRESIGNED_EXPIRES_S: u64 = 604_800;

/// One declared caller.
#[derive(Debug)]
pub struct Caller {
    pub access_key_id: String,
    pub arn: String,
    pub account: String,
    pub user_id: String,
    policy: Option<Policy>,
    secret_env: String,
    token_env: Option<String>,
    signer: Option<Signer>,
    token: Option<String>,
    location: String,
}

/// Why a signed request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No signature at all: `Missing Authentication Token`.
    Missing,
    /// An `Authorization` header that is not a complete SigV4 one.
    Incomplete(String),
    /// An access key nobody declared, or a session token that does not belong to it.
    UnknownKey,
    /// The scope names another region or service.
    WrongScope(String),
    /// Too old or too new; the message is API Gateway's.
    Expired(String),
    BadSignature,
}

/// The callers of a stage.
#[derive(Debug, Default)]
pub struct Callers {
    list: Vec<Caller>,
    region: String,
}

/// `arn:aws:iam::123456789012:user/alice` → (`123456789012`, `alice`).
fn account_and_name(arn: &str) -> Option<(String, String)> {
    let crate::arn::Arn {
        service,
        account,
        resource,
        ..
    } = crate::arn::parse(arn)?;
    let valid = matches!(service, "iam" | "sts")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit());
    let name = resource.rsplit('/').next().unwrap_or(resource);
    (valid && !name.is_empty()).then(|| (account.to_string(), name.to_string()))
}

/// `20150830T123600Z` to epoch milliseconds.
fn parse_stamp(stamp: &str) -> Option<u64> {
    if stamp.len() != 16 || !stamp.ends_with('Z') || stamp.as_bytes().get(8) != Some(&b'T') {
        return None;
    }
    let num = |a: usize, b: usize| stamp.get(a..b).and_then(|s| s.parse::<i64>().ok());
    let (y, m, d) = (num(0, 4)?, num(4, 6)?, num(6, 8)?);
    let (h, mi, s) = (num(9, 11)?, num(11, 13)?, num(13, 15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = crate::time::days_from_civil(y, m as u32, d as u32);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s)
        .ok()?
        .checked_mul(1000)
}

impl Callers {
    /// The deployment's callers; mistakes name their field.
    pub fn compile(d: &Deployment, arn_prefix: &str, errors: &mut Vec<ConfigError>) -> Callers {
        let mut list = Vec::new();
        for (i, c) in d.iam.callers.iter().enumerate() {
            let at = format!("deployment.iam.callers[{i}]");
            let key_ok = c.access_key_id.len() >= 16
                && c.access_key_id.len() <= 128
                && c.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !key_ok {
                errors.push(ConfigError::new(
                    format!("{at}.accessKeyId"),
                    "expected 16-128 letters and digits",
                ));
                continue;
            }
            if d.iam
                .callers
                .iter()
                .take(i)
                .any(|o| o.access_key_id == c.access_key_id)
            {
                errors.push(ConfigError::new(
                    format!("{at}.accessKeyId"),
                    "declared twice",
                ));
                continue;
            }
            let Some((account, name)) = account_and_name(&c.arn) else {
                errors.push(ConfigError::new(
                    format!("{at}.arn"),
                    "expected arn:aws:iam::ACCOUNT:user/NAME (or an sts assumed-role ARN)",
                ));
                continue;
            };
            let policy = match &c.policy {
                None => None,
                Some(doc) => {
                    match Policy::compile_identity(doc, arn_prefix, &format!("{at}.policy")) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            errors.push(e);
                            continue;
                        }
                    }
                }
            };
            list.push(Caller {
                access_key_id: c.access_key_id.clone(),
                arn: c.arn.clone(),
                account,
                user_id: c.user_id.clone().unwrap_or(name),
                policy,
                secret_env: c.secret_access_key_env.clone(),
                token_env: c.session_token_env.clone(),
                signer: None,
                token: None,
                location: at,
            });
        }
        Callers {
            list,
            region: d.api.region.clone(),
        }
    }

    /// Names of the environment variables the callers' secrets come from.
    pub fn env_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .list
            .iter()
            .flat_map(|c| std::iter::once(c.secret_env.clone()).chain(c.token_env.clone()))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Loads every caller's secret (and session token) through `lookup`, once per VM.
    pub fn load(&mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for c in &mut self.list {
            let secret = lookup(&c.secret_env)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ConfigError::new(
                        format!("{}.secretAccessKeyEnv", c.location),
                        format!("the environment variable `{}` is not set", c.secret_env),
                    )
                })?;
            c.token = match &c.token_env {
                None => None,
                Some(env) => Some(lookup(env).filter(|s| !s.is_empty()).ok_or_else(|| {
                    ConfigError::new(
                        format!("{}.sessionTokenEnv", c.location),
                        format!("the environment variable `{env}` is not set"),
                    )
                })?),
            };
            c.signer = Some(Signer::new(
                &self.region,
                EXECUTE_API,
                Credentials {
                    access_key_id: c.access_key_id.clone(),
                    secret_access_key: secret,
                    session_token: None,
                },
            ));
        }
        Ok(())
    }

    pub fn get(&self, i: usize) -> Option<&Caller> {
        self.list.get(i)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Verifies a request's signature; the index of the caller who signed it.
    /// `body` is needed unless the signature covers `x-amz-content-sha256` or is presigned.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        headers: &[Header],
        body: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<usize, Failure> {
        let p = Presented::read(path, headers)?;
        self.verify_presented(&p, method, headers, body, now_ms)
    }

    /// [`Callers::verify`] for a signature already read from the request.
    pub fn verify_presented(
        &self,
        p: &Presented,
        method: &str,
        headers: &[Header],
        body: Option<&[u8]>,
        now_ms: u64,
    ) -> Result<usize, Failure> {
        let (index, caller) = self
            .list
            .iter()
            .enumerate()
            .find(|(_, c)| c.access_key_id == p.scope.access_key_id)
            .ok_or(Failure::UnknownKey)?;
        match (&caller.token, &p.token) {
            (None, None) => {}
            (Some(want), Some(got)) if constant_time_eq(want, got) => {}
            _ => return Err(Failure::UnknownKey),
        }
        if p.scope.region != self.region {
            return Err(Failure::WrongScope(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                p.scope.region
            )));
        }
        if p.scope.service != EXECUTE_API {
            return Err(Failure::WrongScope(format!(
                "Credential should be scoped to correct service: '{EXECUTE_API}'. "
            )));
        }
        let signed_at = parse_stamp(&p.stamp).ok_or_else(|| {
            Failure::Incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{}'.",
                p.stamp
            ))
        })?;
        if p.stamp.get(..8) != Some(p.scope.day.as_str()) {
            return Err(Failure::BadSignature);
        }
        let stamp = |ms: u64| amz_date(ms).0;
        match p.expires_s {
            None if signed_at.saturating_add(MAX_SKEW_MS) < now_ms => {
                return Err(Failure::Expired(format!(
                    "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                    p.stamp,
                    stamp(now_ms - MAX_SKEW_MS),
                    stamp(now_ms)
                )))
            }
            None if signed_at > now_ms.saturating_add(MAX_SKEW_MS) => {
                return Err(Failure::Expired(format!(
                    "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                    p.stamp,
                    stamp(now_ms + MAX_SKEW_MS),
                    stamp(now_ms)
                )))
            }
            Some(expires) if signed_at.saturating_add(expires * 1000) < now_ms => {
                return Err(Failure::Expired(format!(
                    "Signature expired: {} is now earlier than {} ({} - {expires} sec.)",
                    stamp(signed_at.saturating_add(expires * 1000)),
                    stamp(now_ms),
                    stamp(now_ms)
                )))
            }
            _ => {}
        }
        // The payload hash signed: the declared one, else the body's; presigned URLs are
        // made both ways (the body's hash by most SDKs, `UNSIGNED-PAYLOAD` as S3 does).
        let payloads: Vec<String> = match (&p.content_sha256, body) {
            (Some(h), _) => vec![h.clone()],
            (None, Some(b)) if p.expires_s.is_some() => {
                vec![sha256_hex(b), "UNSIGNED-PAYLOAD".to_string()]
            }
            (None, Some(b)) => vec![sha256_hex(b)],
            (None, None) => return Err(Failure::BadSignature),
        };
        let signer = caller.signer.as_ref().ok_or(Failure::UnknownKey)?;
        let signed = p.signed_values(headers).ok_or(Failure::BadSignature)?;
        let matches = payloads.iter().any(|payload| {
            let sig =
                signer.signature_of(method, &p.canonical_path, signed.clone(), payload, &p.stamp);
            constant_time_eq(&sig.signature, &p.signature)
        });
        if !matches {
            return Err(Failure::BadSignature);
        }
        // A body whose hash was declared must match it.
        if let (Some(h), Some(b)) = (&p.content_sha256, body) {
            if h != "UNSIGNED-PAYLOAD" && !constant_time_eq(h, &sha256_hex(b)) {
                return Err(Failure::BadSignature);
            }
        }
        Ok(index)
    }
}

impl Caller {
    /// What the caller's identity policy says about invoking `arn`.
    pub fn allows(
        &self,
        arn: &str,
        facts: &crate::resource_policy::Facts,
    ) -> crate::resource_policy::Verdict {
        match &self.policy {
            None => crate::resource_policy::Verdict::Silent,
            Some(p) => p.evaluate(arn, None, facts),
        }
    }
}

#[cfg(test)]
mod tests;
