//! AWS service integrations (`type: aws` with a service other than Lambda): what an
//! integration URI such as `arn:aws:apigateway:us-east-1:sqs:path/123456789012/orders` or
//! `arn:aws:apigateway:us-east-1:kinesis:action/PutRecord` names.
//!
//! Owns: parsing those URIs (stage variables already resolved), the service endpoint (AWS's
//! or the deployment's override), the request path (`path/...`) or `Action` query
//! (`action/...`), the `X-Amz-Target` header of JSON-protocol services and the signing
//! service and region. Must not: build requests (an AWS service integration is an `http`
//! integration to this endpoint, see [`crate::http_integration`]) or sign them.

use std::collections::BTreeMap;

/// Where the request goes: a path of the service's REST API, or one of its actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `path/{rest}`: the path (with `{name}` parameters) after the service's host.
    Path(String),
    /// `action/{Name}`: `Action=Name` in the query, then any `&k=v` written after the name.
    Action { name: String, query: String },
}

/// A parsed AWS service integration URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUri {
    pub region: String,
    /// The service's endpoint prefix and signing name (`sqs`, `s3`, `dynamodb`).
    pub service: String,
    /// A subdomain before the service (`mybucket` in `mybucket.s3`).
    pub subdomain: Option<String>,
    pub operation: Operation,
}

/// `X-Amz-Target` prefixes of the JSON-protocol services whose actions the gateway names
/// itself (the header is `PREFIX.Action`).
const TARGET_PREFIXES: [(&str, &str); 3] = [
    ("dynamodb", "DynamoDB_20120810"),
    ("kinesis", "Kinesis_20131202"),
    ("states", "AWSStepFunctions"),
];

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

impl ServiceUri {
    /// Parses `arn:{partition}:apigateway:{region}:{[subdomain.]service}:{path|action}/{rest}`.
    pub fn parse(uri: &str) -> Result<ServiceUri, String> {
        let bad = |why: &str| format!("`{uri}`: {why}");
        let mut parts = uri.splitn(6, ':');
        let (arn, _partition, apigw, region, service, rest) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if arn != "arn" || apigw != "apigateway" {
            return Err(bad(
                "expected arn:aws:apigateway:{region}:{service}:path/... or :action/...",
            ));
        }
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("the region is not a region name such as us-east-1"));
        }
        let (subdomain, service) = match service.rsplit_once('.') {
            Some((sub, svc)) => (Some(sub.to_string()), svc),
            None => (None, service),
        };
        if !valid_label(service) || subdomain.as_deref().is_some_and(|s| !valid_label(s)) {
            return Err(bad("the service is not a name such as sqs or mybucket.s3"));
        }
        let operation = if let Some(path) = rest.strip_prefix("path/") {
            Operation::Path(format!("/{path}"))
        } else if let Some(action) = rest.strip_prefix("action/") {
            let (name, query) = action
                .split_once(['&', '?'])
                .map_or((action, ""), |(n, q)| (n, q));
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad("the action is not a name such as SendMessage"));
            }
            Operation::Action {
                name: name.to_string(),
                query: query.to_string(),
            }
        } else {
            return Err(bad("expected path/... or action/... after the service"));
        };
        Ok(ServiceUri {
            region: region.to_string(),
            service: service.to_string(),
            subdomain,
            operation,
        })
    }

    /// The service's AWS endpoint: `https://[subdomain.]service.region.amazonaws.com`
    /// (`.com.cn` in China regions).
    pub fn aws_endpoint(&self) -> String {
        let suffix = if self.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        let sub = self
            .subdomain
            .as_ref()
            .map_or(String::new(), |s| format!("{s}."));
        format!("https://{sub}{}.{}.{suffix}", self.service, self.region)
    }

    /// The URL the integration request goes to, on `endpoint` (`scheme://host[:port]`): the
    /// path, or `/` with the action in the query.
    pub fn url(&self, endpoint: &str) -> String {
        let endpoint = endpoint.trim_end_matches('/');
        match &self.operation {
            Operation::Path(p) => format!("{endpoint}{p}"),
            Operation::Action { name, query } if query.is_empty() => {
                format!("{endpoint}/?Action={name}")
            }
            Operation::Action { name, query } => format!("{endpoint}/?Action={name}&{query}"),
        }
    }

    /// `X-Amz-Target` for an action of a JSON-protocol service.
    pub fn target_header(&self) -> Option<String> {
        let Operation::Action { name, .. } = &self.operation else {
            return None;
        };
        TARGET_PREFIXES
            .iter()
            .find(|(s, _)| *s == self.service)
            .map(|(_, prefix)| format!("{prefix}.{name}"))
    }

    /// The endpoint to call: the deployment's override for this service, else AWS's.
    pub fn endpoint(&self, overrides: &BTreeMap<String, String>) -> String {
        overrides
            .get(&self.service)
            .cloned()
            .unwrap_or_else(|| self.aws_endpoint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_table() {
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
        );
        let rows: Vec<Row> = vec![
            (
                "arn:aws:apigateway:us-east-1:sqs:path/123456789012/orders",
                "us-east-1",
                "sqs",
                None,
                "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
                None,
            ),
            (
                "arn:aws:apigateway:eu-west-1:sns:action/Publish",
                "eu-west-1",
                "sns",
                None,
                "https://sns.eu-west-1.amazonaws.com/?Action=Publish",
                None,
            ),
            (
                "arn:aws:apigateway:us-east-1:kinesis:action/PutRecord",
                "us-east-1",
                "kinesis",
                None,
                "https://kinesis.us-east-1.amazonaws.com/?Action=PutRecord",
                Some("Kinesis_20131202.PutRecord"),
            ),
            (
                "arn:aws:apigateway:us-east-1:dynamodb:action/PutItem",
                "us-east-1",
                "dynamodb",
                None,
                "https://dynamodb.us-east-1.amazonaws.com/?Action=PutItem",
                Some("DynamoDB_20120810.PutItem"),
            ),
            (
                "arn:aws:apigateway:us-west-2:s3:path/{bucket}/{key}",
                "us-west-2",
                "s3",
                None,
                "https://s3.us-west-2.amazonaws.com/{bucket}/{key}",
                None,
            ),
            (
                "arn:aws:apigateway:us-west-2:media.s3:path/{key}",
                "us-west-2",
                "s3",
                Some("media"),
                "https://media.s3.us-west-2.amazonaws.com/{key}",
                None,
            ),
            (
                "arn:aws:apigateway:us-west-2:s3:action/GetObject&Bucket={bucket}&Key={key}",
                "us-west-2",
                "s3",
                None,
                "https://s3.us-west-2.amazonaws.com/?Action=GetObject&Bucket={bucket}&Key={key}",
                None,
            ),
            (
                "arn:aws-cn:apigateway:cn-north-1:sqs:action/SendMessage",
                "cn-north-1",
                "sqs",
                None,
                "https://sqs.cn-north-1.amazonaws.com.cn/?Action=SendMessage",
                None,
            ),
        ];
        for (uri, region, service, sub, url, target) in rows {
            let s = ServiceUri::parse(uri).unwrap();
            assert_eq!(s.region, region, "{uri}");
            assert_eq!(s.service, service, "{uri}");
            assert_eq!(s.subdomain.as_deref(), sub, "{uri}");
            assert_eq!(s.url(&s.aws_endpoint()), url, "{uri}");
            assert_eq!(s.target_header().as_deref(), target, "{uri}");
        }
        let overrides: BTreeMap<String, String> =
            [("sqs".to_string(), "http://127.0.0.1:5000/".to_string())].into();
        let s = ServiceUri::parse("arn:aws:apigateway:us-east-1:sqs:path/1/q").unwrap();
        assert_eq!(s.url(&s.endpoint(&overrides)), "http://127.0.0.1:5000/1/q");
    }

    #[test]
    fn malformed_uris_say_what_is_wrong() {
        for (uri, words) in [
            (
                "arn:aws:lambda:us-east-1:1:function:f",
                "expected arn:aws:apigateway",
            ),
            ("arn:aws:apigateway:US:sqs:path/x", "region"),
            ("arn:aws:apigateway:us-east-1:s q s:path/x", "service"),
            (
                "arn:aws:apigateway:us-east-1:sqs:queue/x",
                "path/... or action/...",
            ),
            ("arn:aws:apigateway:us-east-1:sns:action/", "action"),
            ("arn:aws:apigateway:us-east-1", "service"),
        ] {
            let e = ServiceUri::parse(uri).unwrap_err();
            assert!(e.contains(words), "{uri}: {e}");
        }
    }
}
