//! Compiling a deployment and its export into a [`Gateway`], once per VM.
//!
//! Owns: stage and base-path validation, resolving every integration's and authorizer's
//! function to a target (methods that call the same function share one), the route table
//! with each method's integration, cache rule and authorizer, and the ids derived from the
//! configuration. Every problem is collected with its location. Must not: look at
//! requests.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::context::{base36, fnv1a};
use super::*;
use crate::apikeys::ApiKeys;
use crate::cache::StageCache;
use crate::config::{FilterConfig, SigningMode};
use crate::cors::CorsPolicy;
use crate::error::ConfigError;
use crate::gateway_responses::GatewayResponses;
use crate::http_integration::{self, HttpIntegration};
use crate::lambda::invoke::{InvokeTarget, TargetKind};
use crate::lambda::upstream::Upstreams;
use crate::mapping::aws::AwsMapping;
use crate::mock::Mock;
use crate::openapi::{self, Integration};
use crate::router::Router;
use crate::sigv4::Signer;
use crate::usage::UsagePlans;

pub(super) const STAGE_NAME_MAX: usize = 128;

pub(super) fn validate_stage(d: &crate::config::Deployment, errors: &mut Vec<ConfigError>) {
    let valid = !d.stage.is_empty()
        && d.stage.len() <= STAGE_NAME_MAX
        && d.stage
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        errors.push(ConfigError::new(
            "deployment.stage",
            "stage names are 1-128 of A-Z a-z 0-9 - _",
        ));
    }
    for (name, value) in &d.stage_variables {
        let at = format!("deployment.stageVariables.{name}");
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            errors.push(ConfigError::new(&at, "names are 1-64 of A-Z a-z 0-9 _"));
        }
        let ok_value = !value.is_empty()
            && value.len() <= 512
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#&=,".contains(&b));
        if !ok_value {
            errors.push(ConfigError::new(
                &at,
                "values are 1-512 of A-Z a-z 0-9 - . _ ~ : / ? # & = ,",
            ));
        }
    }
}

pub(super) fn base_path(d: &crate::config::Deployment, errors: &mut Vec<ConfigError>) -> BasePath {
    match d.base_path.as_deref() {
        None => BasePath::Stage,
        Some("/") | Some("") => BasePath::Mapping(String::new()),
        Some(p) => {
            let trimmed = p.trim_end_matches('/');
            let valid = trimmed.starts_with('/')
                && trimmed.split('/').skip(1).all(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                });
            if !valid {
                errors.push(ConfigError::new(
                    "deployment.basePath",
                    "expected `/` or a path such as `/v1` (segments of A-Z a-z 0-9 - . _)",
                ));
            }
            BasePath::Mapping(trimmed.to_string())
        }
    }
}

impl Gateway {
    /// Compiles a configuration; every problem is reported, each with its location.
    pub fn compile(cfg: &FilterConfig) -> Result<Compiled, Vec<ConfigError>> {
        Gateway::compile_parsed(&cfg.deployment, openapi::parse(&cfg.openapi))
    }

    /// Compiles a deployment and its export, already read (see [`openapi::parse_text`]).
    pub fn compile_parsed(
        d: &crate::config::Deployment,
        parsed: openapi::Parsed,
    ) -> Result<Compiled, Vec<ConfigError>> {
        let mut errors = Vec::new();
        validate_stage(d, &mut errors);
        let base_path = base_path(d, &mut errors);
        if d.limits.max_body_bytes == 0 {
            errors.push(ConfigError::new(
                "deployment.limits.maxBodyBytes",
                "must be greater than 0",
            ));
        }
        let upstreams = Upstreams::compile(d, &mut errors);
        let digest = parsed.digest;
        errors.extend(parsed.errors);
        let mut export = parsed.export;
        let gateway_responses =
            GatewayResponses::compile(export.gateway_responses.as_ref(), &mut errors);
        let api_keys = ApiKeys::compile(&d.api_keys, &mut errors);
        let usage = UsagePlans::compile(d, &api_keys, &export.operations, &mut errors);
        let cors = d.cors.as_ref().map(|c| CorsPolicy::compile(c, &mut errors));
        let (stage_cache, mut route_caches) = StageCache::compile(
            d.cache.as_ref(),
            &api_keys,
            &d.api.id,
            &d.stage,
            &export.operations,
            &mut errors,
        );
        let access_log = d.access_log_settings.as_ref().and_then(|a| {
            crate::access_log::AccessLog::compile(&a.format, "deployment.accessLogSettings.format")
                .map_err(|e| errors.push(e))
                .ok()
        });
        let router = match Router::build(&export.operations) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.extend(e);
                None
            }
        };

        let mut warnings = parsed.warnings;
        let requests: Vec<(&crate::validation::MethodRequest, &str)> = export
            .operations
            .iter()
            .map(|op| (&op.request, op.location.as_str()))
            .collect();
        let (models, mut checks) =
            crate::validation::compile(&export.validation, &requests, &mut errors);
        let mut routes = Vec::with_capacity(export.operations.len());
        let api_key_from_authorizer = export.api_key_from_authorizer;
        // Methods that call the same function share one target (large APIs have thousands
        // of methods and a handful of functions).
        let mut targets: HashMap<String, Rc<InvokeTarget>> = HashMap::new();
        let mut target_of = |uri: &str, at: String, errors: &mut Vec<ConfigError>| {
            if let Some(t) = targets.get(uri) {
                return Some(t.clone());
            }
            let t = Rc::new(upstreams.target(d, uri, at, errors)?);
            targets.insert(uri.to_string(), t.clone());
            Some(t)
        };
        let mut authorizers = Vec::with_capacity(export.authorizers.len());
        for spec in std::mem::take(&mut export.authorizers) {
            let at = format!(
                "{}.x-amazon-apigateway-authorizer.authorizerUri",
                spec.location
            );
            let Some(target) = target_of(&spec.uri, at.clone(), &mut errors) else {
                continue;
            };
            if target.kind != TargetKind::Invoke {
                errors.push(ConfigError::new(at, "an authorizer is invoked through the Invoke API; its function cannot be a function URL or a payload 2.0 target"));
                continue;
            }
            authorizers.push(Authorizer { spec, target });
        }
        let arn_prefix = format!(
            "arn:aws:execute-api:{}:{}:{}",
            d.api.region, d.api.account_id, d.api.id
        );
        let policy_settings = d.resource_policy.clone().unwrap_or_default();
        let resource_policy = match (&policy_settings.document, &export.policy) {
            (Some(doc), _) => Some((doc, "deployment.resourcePolicy.document")),
            (None, Some(doc)) => Some((doc, "openapi.x-amazon-apigateway-policy")),
            (None, None) => None,
        }
        .and_then(|(doc, at)| {
            crate::resource_policy::Policy::compile(doc, &arn_prefix, at)
                .map_err(|e| errors.push(e))
                .ok()
        });
        let token = crate::jwt::config::compile(
            d,
            &export.token_authorizers,
            &export.operations,
            &mut errors,
        );
        let iam = crate::iam::Callers::compile(d, &arn_prefix, &mut errors);
        crate::client_cert::check_settings(d, &mut errors);
        for (i, op) in export.operations.iter().enumerate() {
            let signed = op
                .authorizer
                .as_deref()
                .is_some_and(|name| export.iam_schemes.iter().any(|s| s == name));
            let authorizer = match op.authorizer.as_deref() {
                None => None,
                Some(_) if signed => None,
                Some(name) if token.authorizers.iter().any(|a| a.name == name) => None,
                Some(name) => match authorizers.iter().position(|a| a.spec.name == name) {
                    Some(a) => Some(a),
                    None => {
                        let what = export
                            .unsupported_schemes
                            .iter()
                            .find(|(n, _)| n == name)
                            .map_or("this kind of authorizer", |(_, w)| w.as_str());
                        errors.push(ConfigError::new(
                            format!("{}.security", op.location),
                            format!("`{name}`: {what} are not supported yet; the method cannot be served without its authorizer"),
                        ));
                        continue;
                    }
                },
            };
            let action = match &op.integration {
                Integration::Unsupported { kind } => RouteAction::Refused {
                    reason: format!("integration type `{kind}` is not served yet"),
                },
                Integration::Failing { reason } => RouteAction::Refused {
                    reason: reason.clone(),
                },
                Integration::Mock(integ) => {
                    let at = format!("{}.x-amazon-apigateway-integration", op.location);
                    RouteAction::Mock(Box::new(Mock::compile(
                        integ,
                        op.method_responses.clone(),
                        &at,
                        &mut errors,
                    )))
                }
                Integration::Http {
                    kind,
                    uri,
                    http_method,
                    timeout_ms,
                    spec,
                } => {
                    let at = format!("{}.x-amazon-apigateway-integration", op.location);
                    let Some(h) = HttpIntegration::compile(
                        http_integration::Spec {
                            integration: spec,
                            kind: *kind,
                            uri,
                            http_method,
                            timeout_ms: *timeout_ms,
                        },
                        d,
                        (&at, op.method_responses.clone()),
                        &mut errors,
                        &mut warnings,
                    ) else {
                        continue;
                    };
                    RouteAction::Http(Box::new(h))
                }
                Integration::AwsProxy { uri, timeout_ms } => {
                    let at = format!("{}.x-amazon-apigateway-integration.uri", op.location);
                    let Some(target) = target_of(uri, at, &mut errors) else {
                        continue;
                    };
                    RouteAction::LambdaProxy {
                        target,
                        timeout_ms: *timeout_ms,
                    }
                }
                Integration::Aws {
                    uri,
                    timeout_ms,
                    spec,
                } => {
                    let at = format!("{}.x-amazon-apigateway-integration", op.location);
                    let mapping = AwsMapping::compile(
                        spec,
                        op.method_responses.clone(),
                        &at,
                        &mut errors,
                        &mut warnings,
                    );
                    let Some(target) = target_of(uri, format!("{at}.uri"), &mut errors) else {
                        continue;
                    };
                    if target.kind != TargetKind::Invoke {
                        errors.push(ConfigError::new(
                            format!("{at}.uri"),
                            "a non-proxy integration invokes through the Invoke API with its template's payload; its function cannot be a function URL or a payload 2.0 target",
                        ));
                        continue;
                    }
                    RouteAction::LambdaAws {
                        target,
                        timeout_ms: *timeout_ms,
                        mapping: Box::new(mapping),
                    }
                }
            };
            routes.push(Route {
                resource: op.resource.clone(),
                method: op.method.as_str(),
                resource_id: base36(fnv1a(op.resource.as_bytes()), 6),
                action,
                cache: route_caches.get_mut(i).and_then(Option::take),
                authorizer,
                token_auth: token.guards.get(i).cloned().flatten(),
                iam: signed,
                validation: checks.get_mut(i).and_then(Option::take),
            });
        }

        let (Some(router), true) = (router, errors.is_empty()) else {
            return Err(errors);
        };
        // A canary is a deployment of its own, even of the same export.
        let canary = match d.canary_role {
            crate::config::CanaryRole::Canary { .. } => "/canary",
            _ => "",
        };
        let deployment_id = base36(
            fnv1a(format!("{}/{}/{digest:x}{canary}", d.api.id, d.stage).as_bytes()),
            6,
        );
        Ok(Compiled {
            gateway: Gateway {
                stage: d.stage.clone(),
                base_path,
                router,
                routes,
                stage_variables: d.stage_variables.clone(),
                binary_media_types: export.binary_media_types,
                user_agent: format!("AmazonAPIGateway_{}", d.api.id),
                api: d.api.clone(),
                deployment_id,
                max_body_bytes: d.limits.max_body_bytes,
                max_response_bytes: d.limits.max_response_bytes,
                forwarding: d.forwarding,
                api_keys,
                cache: stage_cache,
                usage,
                cors,
                gateway_responses,
                upstreams,
                signers: BTreeMap::new(),
                authorizers,
                resource_policy,
                policy_network: (policy_settings.source_vpc, policy_settings.source_vpce),
                xff_trusted: d.envoy.xff_num_trusted_hops > 0,
                connection_header: d.envoy.connection_header,
                access_log,
                access_log_state: crate::access_log::STATE_NAME.to_string(),
                data_trace: d.data_trace_enabled,
                models,
                mtls: d.tls.as_ref().is_some_and(|t| t.truststore.is_some()),
                iam,
                token_authorizers: token.authorizers,
                jwks: token.sources,
                api_key_from_authorizer,
                canary: d.canary_role,
            },
            warnings,
        })
    }

    /// Loads the credentials of the clusters this filter signs (`lambda.signing: FILTER`)
    /// through `lookup`, the wasm VM's environment. Without them the configuration is
    /// refused; nothing is loaded for other signing modes.
    pub fn load_credentials(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        self.signers = self.upstreams.signers(lookup)?;
        // AWS services this filter signs, with the same credentials.
        let mut filter_signed: Vec<(String, String, String)> = Vec::new();
        for b in self.http_backends() {
            if let Some(s) = b.signing.filter(|s| s.mode == SigningMode::Filter) {
                filter_signed.push((b.cluster.to_string(), s.region.clone(), s.service.clone()));
            }
        }
        if !filter_signed.is_empty() {
            let credentials = self.upstreams.credentials(lookup)?;
            for (cluster, region, service) in filter_signed {
                self.signers
                    .insert(cluster, Signer::new(&region, &service, credentials.clone()));
            }
        }
        self.iam.load(lookup)?;
        Ok(())
    }
}
