//! Cognito and JWT authorizers from the export and the deployment file.
//!
//! Owns: reading `cognito_user_pools` security schemes (`providerARNs`, `identitySource`)
//! and HTTP-API-style `jwt` schemes (`jwtConfiguration.issuer` / `audience`) from an
//! export ([`read_scheme`]), and compiling them with the deployment file's `jwt` section
//! (per-pool issuer, JWKS URL and CA overrides; generic authorizers attached to methods;
//! refresh and clock-skew settings) into [`Authorizer`]s and their JWKS [`Source`]s.
//! Every mistake names its field. Must not: fetch keys or verify tokens.

use serde_json::Value;

use super::{Authorizer, Flavor, Source};
use crate::config::{Deployment, JwtIssuer};
use crate::error::ConfigError;
use crate::lambda::invoke::Endpoint;
use crate::openapi::{resolve_method_key, MethodKey, Operation};

/// A token authorizer as the export declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    pub name: String,
    pub location: String,
    pub flavor: Flavor,
    /// The identity header, lower-case.
    pub header: String,
    /// Cognito: `(region, pool id)` of each provider ARN.
    pub pools: Vec<(String, String)>,
    /// JWT: `jwtConfiguration.issuer` and `audience`.
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
}

/// The header an identity source names: `method.request.header.X` (REST) or
/// `$request.header.X` (HTTP APIs).
fn identity_header(source: &str) -> Option<String> {
    let s = source.trim();
    let name = s
        .strip_prefix("method.request.header.")
        .or_else(|| s.strip_prefix("$request.header."))?;
    (!name.is_empty() && !name.contains([',', ' '])).then(|| name.to_ascii_lowercase())
}

/// `arn:aws:cognito-idp:{region}:{account}:userpool/{poolId}`.
fn pool_of(arn: &str) -> Option<(String, String)> {
    let a = crate::arn::parse(arn).filter(|a| a.service == "cognito-idp")?;
    let region = a.region;
    let pool = a.resource.strip_prefix("userpool/")?;
    (!region.is_empty() && !pool.is_empty() && !pool.contains('/'))
        .then(|| (region.to_string(), pool.to_string()))
}

/// Reads a security scheme; `None` when it is neither a Cognito nor a JWT authorizer.
pub fn read_scheme(name: &str, scheme: &Value, at: &str) -> Option<Result<Scheme, ConfigError>> {
    let auth = scheme.get("x-amazon-apigateway-authorizer");
    let authtype = scheme
        .get("x-amazon-apigateway-authtype")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let kind = auth
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let flavor = match (authtype.as_deref(), kind.as_deref()) {
        (_, Some("cognito_user_pools")) | (Some("cognito_user_pools"), _) => Flavor::Cognito,
        (_, Some("jwt")) => Flavor::Jwt,
        _ => return None,
    };
    let at = format!("{at}.x-amazon-apigateway-authorizer");
    let empty = Value::Null;
    let auth = auth.unwrap_or(&empty);
    Some(read_spec(name, flavor, auth, &at))
}

fn read_spec(name: &str, flavor: Flavor, auth: &Value, at: &str) -> Result<Scheme, ConfigError> {
    let header = match auth.get("identitySource") {
        None => "authorization".to_string(),
        Some(v) => v.as_str().and_then(identity_header).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.identitySource"),
                "expected one header, `method.request.header.NAME` or `$request.header.NAME`",
            )
        })?,
    };
    let mut out = Scheme {
        name: name.to_string(),
        location: at.to_string(),
        flavor,
        header,
        pools: Vec::new(),
        issuer: None,
        audiences: Vec::new(),
    };
    match flavor {
        Flavor::Cognito => {
            let arns = auth
                .get("providerARNs")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    ConfigError::new(
                        format!("{at}.providerARNs"),
                        "expected a non-empty array of user pool ARNs",
                    )
                })?;
            for (i, arn) in arns.iter().enumerate() {
                let pool = arn.as_str().and_then(pool_of).ok_or_else(|| {
                    ConfigError::new(
                        format!("{at}.providerARNs[{i}]"),
                        "expected arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID",
                    )
                })?;
                out.pools.push(pool);
            }
        }
        Flavor::Jwt => {
            let cfg = auth.get("jwtConfiguration");
            out.issuer = cfg
                .and_then(|c| c.get("issuer"))
                .and_then(Value::as_str)
                .map(str::to_string);
            out.audiences = match cfg.and_then(|c| c.get("audience")) {
                None => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            ConfigError::new(
                                format!("{at}.jwtConfiguration.audience"),
                                "expected strings",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(ConfigError::new(
                        format!("{at}.jwtConfiguration.audience"),
                        "expected an array of strings",
                    ))
                }
            };
        }
    }
    Ok(out)
}

/// The compiled token authorizers of a stage.
#[derive(Debug, Default)]
pub struct Compiled {
    pub authorizers: Vec<Authorizer>,
    pub sources: Vec<Source>,
    /// Per operation: the token authorizer guarding it and the method's scopes.
    pub guards: Vec<Option<(usize, Vec<String>)>>,
}

/// The Envoy cluster of a JWKS endpoint.
pub fn cluster_name(e: &Endpoint) -> String {
    e.cluster_named("jwks")
}

struct Builder<'a> {
    d: &'a Deployment,
    sources: Vec<Source>,
}

impl Builder<'_> {
    /// The source for `issuer` at `url`, shared by authorizers that name the same pair.
    fn source(
        &mut self,
        issuer: &str,
        url: &str,
        ca_file: Option<&str>,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<usize> {
        if let Some(i) = self
            .sources
            .iter()
            .position(|s| s.issuer == issuer && s.url == url)
        {
            return Some(i);
        }
        let (endpoint, path) = match Endpoint::parse_url(url) {
            Ok(x) => x,
            Err(why) => {
                errors.push(ConfigError::new(format!("{at}.jwksUrl"), why));
                return None;
            }
        };
        let cluster = cluster_name(&endpoint);
        if self
            .sources
            .iter()
            .any(|s| s.cluster == cluster && s.ca_file.as_deref() != ca_file)
        {
            errors.push(ConfigError::new(
                format!("{at}.caFile"),
                format!("another JWKS URL on {}:{} names a different caFile; one host has one trust store", endpoint.host, endpoint.port),
            ));
            return None;
        }
        let j = &self.d.jwt;
        let refresh_s = j.refresh_seconds.unwrap_or(super::DEFAULT_REFRESH_S);
        let min_refresh_s = j
            .min_refresh_seconds
            .unwrap_or(super::DEFAULT_MIN_REFRESH_S);
        if refresh_s == 0 || min_refresh_s == 0 || min_refresh_s > refresh_s {
            errors.push(ConfigError::new(
                "deployment.jwt.minRefreshSeconds",
                "refreshSeconds and minRefreshSeconds must be positive, minRefreshSeconds at most refreshSeconds",
            ));
            return None;
        }
        let default_port = if endpoint.tls { 443 } else { 80 };
        let authority = if endpoint.port == default_port {
            endpoint.host.clone()
        } else {
            format!("{}:{}", endpoint.host, endpoint.port)
        };
        self.sources.push(Source {
            issuer: issuer.to_string(),
            url: url.to_string(),
            cluster,
            authority,
            path: if path.is_empty() { "/".into() } else { path },
            host: endpoint.host.clone(),
            port: endpoint.port,
            tls: endpoint.tls,
            ca_file: ca_file.map(str::to_string),
            refresh_ms: refresh_s.saturating_mul(1000),
            min_refresh_ms: min_refresh_s.saturating_mul(1000),
        });
        Some(self.sources.len() - 1)
    }
}

fn header_of(
    settings: &JwtIssuer,
    default: &str,
    at: &str,
    errors: &mut Vec<ConfigError>,
) -> String {
    match &settings.identity_source {
        None => default.to_string(),
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b':') => {
            h.to_ascii_lowercase()
        }
        Some(_) => {
            errors.push(ConfigError::new(
                format!("{at}.identitySource"),
                "expected a header name",
            ));
            default.to_string()
        }
    }
}

/// Compiles the export's token authorizers with the deployment file's `jwt` section.
/// `uses` holds, per operation, the scheme its `security` names and the scopes it lists.
pub fn compile(
    d: &Deployment,
    schemes: &[Scheme],
    operations: &[Operation],
    errors: &mut Vec<ConfigError>,
) -> Compiled {
    let mut b = Builder {
        d,
        sources: Vec::new(),
    };
    let skew_s = d.jwt.clock_skew_seconds.unwrap_or(super::DEFAULT_SKEW_S);
    let mut authorizers = Vec::new();
    for (name, _) in d.jwt.pools.iter() {
        if !schemes
            .iter()
            .any(|s| s.pools.iter().any(|(_, p)| p == name))
        {
            errors.push(ConfigError::new(
                format!("deployment.jwt.pools.{name}"),
                "no Cognito authorizer of the export names this user pool",
            ));
        }
    }
    for s in schemes {
        let over = d.jwt.authorizers.get(&s.name);
        let at = format!("deployment.jwt.authorizers.{}", s.name);
        let mut issuers = Vec::new();
        match s.flavor {
            Flavor::Cognito => {
                if over.is_some() {
                    errors.push(ConfigError::new(
                        at.clone(),
                        "a Cognito authorizer is configured per user pool, under deployment.jwt.pools",
                    ));
                }
                for (region, pool) in &s.pools {
                    let p = d.jwt.pools.get(pool);
                    let issuer = p.and_then(|p| p.issuer.clone()).unwrap_or_else(|| {
                        format!("https://cognito-idp.{region}.amazonaws.com/{pool}")
                    });
                    let url = p
                        .and_then(|p| p.jwks_url.clone())
                        .unwrap_or_else(|| {
                            format!("https://cognito-idp.{region}.amazonaws.com/{pool}/.well-known/jwks.json")
                        });
                    let ca = p.and_then(|p| p.ca_file.as_deref());
                    let pat = format!("deployment.jwt.pools.{pool}");
                    issuers.extend(b.source(&issuer, &url, ca, &pat, errors));
                }
            }
            Flavor::Jwt => {
                let issuer = over
                    .and_then(|o| o.issuer.clone())
                    .or_else(|| s.issuer.clone());
                let Some(issuer) = issuer else {
                    errors.push(ConfigError::new(
                        format!("{}.jwtConfiguration.issuer", s.location),
                        "missing: set it in the export or in deployment.jwt.authorizers",
                    ));
                    continue;
                };
                let url = over.and_then(|o| o.jwks_url.clone()).unwrap_or_else(|| {
                    format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
                });
                let ca = over.and_then(|o| o.ca_file.as_deref());
                issuers.extend(b.source(&issuer, &url, ca, &at, errors));
            }
        }
        let header = match over {
            Some(o) => header_of(o, &s.header, &at, errors),
            None => s.header.clone(),
        };
        let audiences = over
            .and_then(|o| o.audiences.clone())
            .unwrap_or_else(|| s.audiences.clone());
        authorizers.push(Authorizer {
            name: s.name.clone(),
            flavor: s.flavor,
            header,
            issuers,
            audiences,
            skew_s,
        });
    }
    // Authorizers only the deployment file declares.
    for (name, o) in &d.jwt.authorizers {
        if schemes.iter().any(|s| &s.name == name) {
            continue;
        }
        let at = format!("deployment.jwt.authorizers.{name}");
        let Some(issuer) = o.issuer.clone() else {
            errors.push(ConfigError::new(format!("{at}.issuer"), "missing"));
            continue;
        };
        if o.methods.is_empty() {
            errors.push(ConfigError::new(
                format!("{at}.methods"),
                "an authorizer the export does not name must list the methods it guards",
            ));
        }
        let url = o
            .jwks_url
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')));
        let issuers: Vec<usize> = b
            .source(&issuer, &url, o.ca_file.as_deref(), &at, errors)
            .into_iter()
            .collect();
        authorizers.push(Authorizer {
            name: name.clone(),
            flavor: Flavor::Jwt,
            header: header_of(o, "authorization", &at, errors),
            issuers,
            audiences: o.audiences.clone().unwrap_or_default(),
            skew_s,
        });
    }
    // Which operations each guards: the export's `security`, then the deployment file.
    let mut guards: Vec<Option<(usize, Vec<String>)>> = operations
        .iter()
        .map(|op| {
            let name = op.authorizer.as_deref()?;
            let i = authorizers.iter().position(|a| a.name == name)?;
            Some((i, op.authorization_scopes.clone()))
        })
        .collect();
    for (name, o) in &d.jwt.authorizers {
        let Some(ai) = authorizers.iter().position(|a| &a.name == name) else {
            continue;
        };
        for (key, scopes) in &o.methods {
            let at = format!("deployment.jwt.authorizers.{name}.methods.{key}");
            let ops: Vec<usize> = match resolve_method_key(operations, key) {
                Ok(MethodKey::All) => (0..operations.len()).collect(),
                Ok(MethodKey::One(i)) => vec![i],
                Err(m) => {
                    errors.push(ConfigError::new(at, m));
                    continue;
                }
            };
            for i in ops {
                let Some(op) = operations.get(i) else {
                    continue;
                };
                if let Some(other) = op.authorizer.as_deref().filter(|o| o != name) {
                    errors.push(ConfigError::new(
                        at.clone(),
                        format!(
                            "{} {} is already guarded by the export's authorizer `{other}`",
                            op.method.as_str(),
                            op.resource
                        ),
                    ));
                    continue;
                }
                if let Some(g) = guards.get_mut(i) {
                    *g = Some((ai, scopes.clone()));
                }
            }
        }
    }
    Compiled {
        authorizers,
        sources: b.sources,
        guards,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemes_table() {
        let cognito = json!({
            "type": "apiKey", "name": "Authorization", "in": "header",
            "x-amazon-apigateway-authtype": "cognito_user_pools",
            "x-amazon-apigateway-authorizer": {
                "type": "cognito_user_pools",
                "providerARNs": ["arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbC"]
            }
        });
        let s = read_scheme("pool", &cognito, "openapi.securityDefinitions.pool")
            .unwrap()
            .unwrap();
        assert_eq!(s.flavor, Flavor::Cognito);
        assert_eq!(s.header, "authorization");
        assert_eq!(s.pools, vec![("eu-west-1".into(), "eu-west-1_AbC".into())]);

        let jwt = json!({
            "type": "oauth2",
            "x-amazon-apigateway-authorizer": {
                "type": "jwt", "identitySource": "$request.header.X-Token",
                "jwtConfiguration": {"issuer": "https://id.example.com/", "audience": ["api"]}
            }
        });
        let s = read_scheme("corp", &jwt, "x").unwrap().unwrap();
        assert_eq!(s.flavor, Flavor::Jwt);
        assert_eq!(s.header, "x-token");
        assert_eq!(s.issuer.as_deref(), Some("https://id.example.com/"));
        assert_eq!(s.audiences, vec!["api".to_string()]);

        // Not ours.
        let lambda = json!({"x-amazon-apigateway-authtype": "custom",
            "x-amazon-apigateway-authorizer": {"type": "token"}});
        assert!(read_scheme("l", &lambda, "x").is_none());

        let bad = [
            (
                json!({"x-amazon-apigateway-authorizer": {"type": "cognito_user_pools"}}),
                "providerARNs",
            ),
            (
                json!({"x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": ["arn:aws:s3:::b"]}}),
                "providerARNs[0]",
            ),
            (
                json!({"x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": ["arn:aws:cognito-idp:r:1:userpool/p"], "identitySource": "method.request.querystring.t"}}),
                "identitySource",
            ),
            (
                json!({"x-amazon-apigateway-authorizer": {"type": "jwt", "jwtConfiguration": {"audience": "a"}}}),
                "audience",
            ),
        ];
        for (scheme, field) in bad {
            let e = read_scheme("b", &scheme, "s").unwrap().unwrap_err();
            assert!(e.location.ends_with(field), "{e:?}");
        }
    }

    #[test]
    fn cluster_names_are_envoy_safe() {
        let (e, _) =
            Endpoint::parse_url("https://cognito-idp.us-east-1.amazonaws.com/p/x").unwrap();
        assert_eq!(
            cluster_name(&e),
            "apigw_jwks_https_cognito_idp_us_east_1_amazonaws_com_443"
        );
    }
}
