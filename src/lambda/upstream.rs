//! The Lambda upstreams of a deployment.
//!
//! Owns: which endpoints a deployment reaches (Invoke APIs and function URLs), each one's
//! Envoy cluster, signing region and signer (Envoy, this filter, or none), and the mapping of
//! an integration's function reference onto an [`InvokeTarget`]. The gateway and the Envoy
//! renderer both read it, so the clusters the filter calls are the clusters Envoy defines.
//! Must not: read the environment (credentials come in through a lookup) or dispatch calls.

use std::collections::BTreeMap;

use crate::config::{
    CredentialSettings, Deployment, FunctionSpec, FunctionTarget, SigningMode, UrlAuthType,
};
use crate::error::ConfigError;
use crate::lambda::arn::{function_from_uri, parse_function};
use crate::lambda::invoke::{Endpoint, InvokeTarget, TargetKind};
use crate::sigv4::{Credentials, Signer, LAMBDA_SERVICE};

/// One Envoy cluster the gateway calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub endpoint: Endpoint,
    /// Signing region (from the host name, else `lambda.region`, else `api.region`).
    pub region: String,
    /// Who signs calls to this cluster; [`SigningMode::None`] for unsigned ones.
    pub signing: SigningMode,
}

/// Where one `lambda.functions` entry sends its calls.
#[derive(Debug, Clone)]
enum Mapped {
    /// Invoke API: function name (and qualifier), endpoint, payload format 2.0 or not.
    Invoke {
        name: String,
        endpoint: Option<Endpoint>,
        v2: bool,
    },
    /// A function URL: endpoint and path prefix.
    Url { endpoint: Endpoint, prefix: String },
}

/// The compiled Lambda side of a deployment.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    default: Option<Endpoint>,
    mapped: BTreeMap<String, Mapped>,
    /// Every cluster, by name.
    pub clusters: BTreeMap<String, Upstream>,
    credentials: CredentialSettings,
    /// `lambda.endpoint` is not set.
    endpoint_missing: bool,
}

/// The region in an AWS host name: `lambda.<region>.amazonaws.com[.cn]` or
/// `<id>.lambda-url.<region>.on.aws`.
pub fn region_of_host(host: &str) -> Option<&str> {
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        ["lambda", region, "amazonaws", "com", ..] => Some(region),
        [_, "lambda-url", region, "on", "aws"] => Some(region),
        _ => None,
    }
}

fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Upstreams {
    /// Compiles `lambda`: endpoints, function URLs, signing. Problems are pushed to `errors`.
    pub fn compile(d: &Deployment, errors: &mut Vec<ConfigError>) -> Upstreams {
        let l = &d.lambda;
        if let Some(r) = &l.region {
            if !valid_region(r) {
                errors.push(ConfigError::new(
                    "deployment.lambda.region",
                    format!("`{r}` is not a region name such as eu-west-1"),
                ));
            }
        }
        let custom_env = l.credentials.access_key_id_env != "AWS_ACCESS_KEY_ID"
            || l.credentials.secret_access_key_env != "AWS_SECRET_ACCESS_KEY"
            || l.credentials.session_token_env != "AWS_SESSION_TOKEN";
        let mut out = Upstreams {
            credentials: l.credentials.clone(),
            ..Upstreams::default()
        };
        // An API without Lambda integrations (HTTP backends, mocks) needs no endpoint.
        out.default = (!l.endpoint.is_empty())
            .then(|| {
                Endpoint::parse(&l.endpoint)
                    .map_err(|m| errors.push(ConfigError::new("deployment.lambda.endpoint", m)))
                    .ok()
            })
            .flatten();
        out.endpoint_missing = l.endpoint.is_empty();
        if let Some(e) = out.default.clone() {
            let signing = out.signing_for(d, &e);
            out.add_cluster(d, e, signing, "deployment.lambda.endpoint", errors);
        }
        for (key, target) in &l.functions {
            let at = format!("deployment.lambda.functions.{key}");
            let FunctionTarget::Full(spec) = target else {
                continue;
            };
            if let Some(m) = out.compile_spec(d, spec, &at, errors) {
                out.mapped.insert(key.clone(), m);
            }
        }
        let envoy_signs = out
            .clusters
            .values()
            .any(|u| u.signing == SigningMode::Envoy);
        if envoy_signs && custom_env {
            errors.push(ConfigError::new(
                "deployment.lambda.credentials",
                "Envoy's signer reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; other variable names need signing: FILTER",
            ));
        }
        out
    }

    fn signing_for(&self, d: &Deployment, e: &Endpoint) -> SigningMode {
        d.lambda.signing.unwrap_or(if e.tls {
            SigningMode::Envoy
        } else {
            SigningMode::None
        })
    }

    fn add_cluster(
        &mut self,
        d: &Deployment,
        endpoint: Endpoint,
        signing: SigningMode,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) {
        let region = region_of_host(&endpoint.host)
            .map(str::to_string)
            .or_else(|| d.lambda.region.clone())
            .unwrap_or_else(|| d.api.region.clone());
        let upstream = Upstream {
            endpoint,
            region,
            signing,
        };
        let name = upstream.endpoint.cluster_name();
        match self.clusters.get(&name) {
            Some(existing) if existing.signing != upstream.signing => {
                errors.push(ConfigError::new(
                    at,
                    format!(
                        "`{}` is also used unsigned elsewhere (or signed elsewhere); one host cannot be both",
                        upstream.endpoint.authority()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                self.clusters.insert(name, upstream);
            }
        }
    }

    fn compile_spec(
        &mut self,
        d: &Deployment,
        spec: &FunctionSpec,
        at: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Mapped> {
        let v2 = match spec.payload_format_version.as_deref() {
            None | Some("1.0") => false,
            Some("2.0") => true,
            Some(other) => {
                errors.push(ConfigError::new(
                    format!("{at}.payloadFormatVersion"),
                    format!("`{other}` is not 1.0 or 2.0"),
                ));
                return None;
            }
        };
        if let Some(url) = &spec.url {
            if spec.name.is_some()
                || spec.endpoint.is_some()
                || spec.payload_format_version.is_some()
            {
                errors.push(ConfigError::new(
                    at,
                    "a function URL target takes `url` and `authType` only (the URL builds the 2.0 event itself)",
                ));
                return None;
            }
            let (endpoint, prefix) = match Endpoint::parse_url(url) {
                Ok(p) => p,
                Err(m) => {
                    errors.push(ConfigError::new(format!("{at}.url"), m));
                    return None;
                }
            };
            let auth = spec.auth_type.unwrap_or(UrlAuthType::AwsIam);
            let signing = match auth {
                UrlAuthType::None => SigningMode::None,
                UrlAuthType::AwsIam => {
                    let mode = self.signing_for(d, &endpoint);
                    if mode == SigningMode::None {
                        errors.push(ConfigError::new(
                            format!("{at}.authType"),
                            "AWS_IAM function URLs need signed calls: set lambda.signing to ENVOY or FILTER, or authType: NONE",
                        ));
                        return None;
                    }
                    mode
                }
            };
            self.add_cluster(d, endpoint.clone(), signing, &format!("{at}.url"), errors);
            return Some(Mapped::Url { endpoint, prefix });
        }
        if spec.auth_type.is_some() {
            errors.push(ConfigError::new(
                format!("{at}.authType"),
                "authType goes with `url` (a function URL target)",
            ));
            return None;
        }
        let Some(name) = spec.name.clone() else {
            errors.push(ConfigError::new(
                at,
                "needs `name` (a function invoked through an Invoke API) or `url` (a function URL)",
            ));
            return None;
        };
        let endpoint = match &spec.endpoint {
            None => None,
            Some(url) => match Endpoint::parse(url) {
                Ok(e) => {
                    let signing = self.signing_for(d, &e);
                    self.add_cluster(d, e.clone(), signing, &format!("{at}.endpoint"), errors);
                    Some(e)
                }
                Err(m) => {
                    errors.push(ConfigError::new(format!("{at}.endpoint"), m));
                    return None;
                }
            },
        };
        Some(Mapped::Invoke { name, endpoint, v2 })
    }

    /// `lambda.endpoint`, or the error of a function that needs it when there is none.
    fn default_endpoint(&self, at: &str, errors: &mut Vec<ConfigError>) -> Option<&Endpoint> {
        if self.endpoint_missing {
            errors.push(ConfigError::new(
                "deployment.lambda.endpoint",
                format!("missing: {at} invokes a Lambda function, which needs the Invoke API's address (or a lambda.functions entry with its own endpoint or url)"),
            ));
        }
        self.default.as_ref()
    }

    /// Where an integration `uri` invokes: the function it names, remapped by
    /// `lambda.functions`, on its endpoint or function URL.
    pub fn target(
        &self,
        d: &Deployment,
        uri: &str,
        at: String,
        errors: &mut Vec<ConfigError>,
    ) -> Option<InvokeTarget> {
        let function = match function_from_uri(uri, &d.stage_variables) {
            Ok(f) => f,
            Err(m) => {
                errors.push(ConfigError::new(at, m));
                return None;
            }
        };
        let by_name_q = function
            .qualifier
            .as_ref()
            .map(|q| format!("{}:{q}", function.name));
        let functions = &d.lambda.functions;
        let found = functions
            .get_key_value(&function.reference)
            .or_else(|| by_name_q.as_ref().and_then(|k| functions.get_key_value(k)))
            .map(|(k, t)| (k, t, true))
            .or_else(|| {
                functions
                    .get_key_value(&function.name)
                    .map(|(k, t)| (k, t, false))
            });
        let Some((key, target, replaces_qualifier)) = found else {
            let endpoint = self.default_endpoint(&at, errors)?;
            return Some(InvokeTarget::new(
                endpoint,
                &function.name,
                function.qualifier.as_deref(),
            ));
        };
        let (name, endpoint, v2) = match (target, self.mapped.get(key)) {
            (FunctionTarget::Name(n), _) => (n.clone(), None, false),
            (_, Some(Mapped::Url { endpoint, prefix })) => {
                return Some(InvokeTarget::function_url(endpoint, prefix));
            }
            (_, Some(Mapped::Invoke { name, endpoint, v2 })) => {
                (name.clone(), endpoint.clone(), *v2)
            }
            // The entry failed to compile; its error is already reported.
            (FunctionTarget::Full(_), None) => return None,
        };
        let mapped = match parse_function(&name) {
            Ok(f) => f,
            Err(m) => {
                errors.push(ConfigError::new(
                    format!("deployment.lambda.functions.{key}"),
                    m,
                ));
                return None;
            }
        };
        let qualifier = mapped.qualifier.or(if replaces_qualifier {
            None
        } else {
            function.qualifier.clone()
        });
        let endpoint = match endpoint {
            Some(e) => e,
            None => self.default_endpoint(&at, errors)?.clone(),
        };
        let mut t = InvokeTarget::new(&endpoint, &mapped.name, qualifier.as_deref());
        if v2 {
            t.kind = TargetKind::InvokeV2;
        }
        Some(t)
    }

    /// Signers for the clusters this filter signs (`signing: FILTER`), with credentials
    /// looked up by the configured environment variable names. A missing variable is an
    /// error naming the field and the variable; values never appear in messages.
    pub fn signers(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, Signer>, ConfigError> {
        let mut out = BTreeMap::new();
        let filter_signed: Vec<(&String, &Upstream)> = self
            .clusters
            .iter()
            .filter(|(_, u)| u.signing == SigningMode::Filter)
            .collect();
        if filter_signed.is_empty() {
            return Ok(out);
        }
        let credentials = self.credentials(lookup)?;
        for (name, u) in filter_signed {
            out.insert(
                name.clone(),
                Signer::new(&u.region, LAMBDA_SERVICE, credentials.clone()),
            );
        }
        Ok(out)
    }

    /// The gateway's credentials (`lambda.credentials`), looked up by their variable names.
    /// A missing variable is an error naming the field and the variable; values never
    /// appear in messages.
    pub fn credentials(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credentials, ConfigError> {
        let c = &self.credentials;
        let need = |field: &str, var: &str| {
            lookup(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                ConfigError::new(
                    format!("deployment.lambda.credentials.{field}"),
                    format!("environment variable {var} is not set where the filter runs (Envoy's environment; the wasm build also needs it in vm_config.environment_variables.host_env_keys, which `render` writes)"),
                )
            })
        };
        Ok(Credentials {
            access_key_id: need("accessKeyIdEnv", &c.access_key_id_env)?,
            secret_access_key: need("secretAccessKeyEnv", &c.secret_access_key_env)?,
            session_token: lookup(&c.session_token_env).filter(|v| !v.is_empty()),
        })
    }

    /// The names of the credential variables (`lambda.credentials`).
    pub fn credential_env_keys(&self) -> Vec<String> {
        let c = &self.credentials;
        vec![
            c.access_key_id_env.clone(),
            c.secret_access_key_env.clone(),
            c.session_token_env.clone(),
        ]
    }

    /// The environment variables the wasm VM needs (`signing: FILTER`), else none.
    pub fn env_keys(&self) -> Vec<String> {
        if !self
            .clusters
            .values()
            .any(|u| u.signing == SigningMode::Filter)
        {
            return Vec::new();
        }
        self.credential_env_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_deployment;
    use serde_json::json;

    fn deployment(lambda: serde_json::Value) -> Deployment {
        parse_deployment(json!({"openapi": "a.json", "stage": "prod", "lambda": lambda})).unwrap()
    }

    fn compile(lambda: serde_json::Value) -> Result<(Deployment, Upstreams), Vec<ConfigError>> {
        let d = deployment(lambda);
        let mut errors = Vec::new();
        let u = Upstreams::compile(&d, &mut errors);
        if errors.is_empty() {
            Ok((d, u))
        } else {
            Err(errors)
        }
    }

    const URI: &str = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:orders/invocations";

    #[test]
    fn region_of_host_table() {
        for (host, want) in [
            ("lambda.eu-west-1.amazonaws.com", Some("eu-west-1")),
            ("lambda.cn-north-1.amazonaws.com.cn", Some("cn-north-1")),
            (
                "abcdefghij.lambda-url.ap-south-1.on.aws",
                Some("ap-south-1"),
            ),
            ("localhost", None),
            ("127.0.0.1", None),
        ] {
            assert_eq!(region_of_host(host), want, "{host}");
        }
    }

    #[test]
    fn signing_defaults_by_scheme_and_region_by_host() {
        let (_, u) =
            compile(json!({"endpoint": "https://lambda.eu-west-1.amazonaws.com"})).unwrap();
        let c = u.clusters.values().next().unwrap();
        assert_eq!(
            (c.signing, c.region.as_str()),
            (SigningMode::Envoy, "eu-west-1")
        );
        let (_, u) = compile(json!({"endpoint": "http://127.0.0.1:9000"})).unwrap();
        let c = u.clusters.values().next().unwrap();
        assert_eq!(
            (c.signing, c.region.as_str()),
            (SigningMode::None, "us-east-1")
        );
        let (_, u) = compile(json!({"endpoint": "https://localhost:8443", "region": "sa-east-1", "signing": "FILTER"})).unwrap();
        let c = u.clusters.values().next().unwrap();
        assert_eq!(
            (c.signing, c.region.as_str()),
            (SigningMode::Filter, "sa-east-1")
        );
    }

    #[test]
    fn function_url_targets() {
        let (d, u) = compile(json!({
            "endpoint": "https://lambda.eu-west-1.amazonaws.com",
            "functions": {
                "orders": {"url": "https://abcdefghij.lambda-url.eu-west-1.on.aws", "authType": "AWS_IAM"},
                "public": {"url": "http://127.0.0.1:9000/lambda-url/public/", "authType": "NONE"}
            }
        }))
        .unwrap();
        let mut errors = Vec::new();
        let t = u.target(&d, URI, "uri".into(), &mut errors).unwrap();
        assert_eq!(
            t.kind,
            TargetKind::FunctionUrl {
                prefix: String::new()
            }
        );
        assert_eq!(t.authority, "abcdefghij.lambda-url.eu-west-1.on.aws");
        let url_cluster = &u.clusters[&t.cluster];
        assert_eq!(url_cluster.signing, SigningMode::Envoy);
        assert_eq!(url_cluster.region, "eu-west-1");
        let public = u
            .target(
                &d,
                &URI.replace("function:orders", "function:public"),
                "uri".into(),
                &mut errors,
            )
            .unwrap();
        assert_eq!(
            public.kind,
            TargetKind::FunctionUrl {
                prefix: "/lambda-url/public".into()
            }
        );
        assert_eq!(u.clusters[&public.cluster].signing, SigningMode::None);
        assert!(errors.is_empty());
    }

    #[test]
    fn payload_v2_targets_use_the_invoke_api() {
        let (d, u) = compile(json!({
            "endpoint": "http://127.0.0.1:9000",
            "functions": {"orders": {"name": "orders-v2", "payloadFormatVersion": "2.0"}}
        }))
        .unwrap();
        let t = u.target(&d, URI, "uri".into(), &mut Vec::new()).unwrap();
        assert_eq!(t.kind, TargetKind::InvokeV2);
        assert_eq!(t.path, "/2015-03-31/functions/orders-v2/invocations");
    }

    #[test]
    fn configuration_errors_name_the_field() {
        for (lambda, field, needle) in [
            (
                json!({"endpoint": "http://x:1", "functions": {"f": {"url": "http://127.0.0.1:9/u"}}}),
                "deployment.lambda.functions.f.authType",
                "need signed calls",
            ),
            (
                json!({"endpoint": "http://x:1", "functions": {"f": {"url": "https://a.lambda-url.us-east-1.on.aws", "name": "x"}}}),
                "deployment.lambda.functions.f",
                "`url` and `authType` only",
            ),
            (
                json!({"endpoint": "http://x:1", "functions": {"f": {"name": "x", "authType": "NONE"}}}),
                "deployment.lambda.functions.f.authType",
                "goes with `url`",
            ),
            (
                json!({"endpoint": "http://x:1", "functions": {"f": {"name": "x", "payloadFormatVersion": "3"}}}),
                "deployment.lambda.functions.f.payloadFormatVersion",
                "not 1.0 or 2.0",
            ),
            (
                json!({"endpoint": "http://x:1", "functions": {"f": {"endpoint": "http://y:2"}}}),
                "deployment.lambda.functions.f",
                "needs `name`",
            ),
            (
                json!({"endpoint": "http://x:1", "functions": {"f": {"url": "ftp://y"}}}),
                "deployment.lambda.functions.f.url",
                "must start with http",
            ),
            (
                json!({"endpoint": "http://x:1", "region": "Mars 1"}),
                "deployment.lambda.region",
                "not a region name",
            ),
            (
                json!({"endpoint": "https://x", "signing": "ENVOY", "credentials": {"accessKeyIdEnv": "MY_KEY"}}),
                "deployment.lambda.credentials",
                "need signing: FILTER",
            ),
            (
                json!({"endpoint": "https://x", "credentials": {"secretAccessKeyEnv": "MY_SECRET"}}),
                "deployment.lambda.credentials",
                "need signing: FILTER",
            ),
            (
                json!({"endpoint": "https://x", "functions": {"f": {"url": "https://x", "authType": "NONE"}}}),
                "deployment.lambda.functions.f.url",
                "one host cannot be both",
            ),
        ] {
            let errors = compile(lambda.clone()).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|e| e.location == field && e.message.contains(needle)),
                "{lambda}: {errors:?}"
            );
        }
    }

    #[test]
    fn filter_signers_read_the_named_variables_and_never_print_values() {
        let (_, u) = compile(json!({
            "endpoint": "https://lambda.eu-west-1.amazonaws.com",
            "signing": "FILTER",
            "credentials": {"accessKeyIdEnv": "K", "secretAccessKeyEnv": "S", "sessionTokenEnv": "T"}
        }))
        .unwrap();
        assert_eq!(u.env_keys(), vec!["K", "S", "T"]);
        let env = |name: &str| match name {
            "K" => Some("AKIDEXAMPLE".to_string()),
            "S" => Some("secret-value".to_string()),
            _ => None,
        };
        let signers = u.signers(&env).unwrap();
        let signer = signers.values().next().unwrap();
        assert_eq!(signer.region(), "eu-west-1");
        let none = |_: &str| None;
        let err = u.signers(&none).unwrap_err();
        assert_eq!(err.location, "deployment.lambda.credentials.accessKeyIdEnv");
        assert!(
            err.message.contains("environment variable K is not set"),
            "{err}"
        );
        let only_key = |name: &str| (name == "K").then(|| "AKID".to_string());
        let err = u.signers(&only_key).unwrap_err();
        assert_eq!(
            err.location,
            "deployment.lambda.credentials.secretAccessKeyEnv"
        );
        // Envoy-signed and unsigned deployments need no variables.
        let (_, u) =
            compile(json!({"endpoint": "https://lambda.eu-west-1.amazonaws.com"})).unwrap();
        assert!(u.env_keys().is_empty());
        assert!(u.signers(&none).unwrap().is_empty());
    }
}
