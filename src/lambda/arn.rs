//! Integration URIs and Lambda function ARNs.
//!
//! Owns: extracting the function ARN from
//! `arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{functionArn}/invocations`,
//! substituting `${stageVariables.x}`, and splitting a function reference into name and
//! qualifier. Must not: know about endpoints or clusters.

use std::collections::BTreeMap;

const URI_PREFIX: &str = "arn:aws:apigateway:";
const PATH_MARK: &str = ":lambda:path/2015-03-31/functions/";
/// The same with the doubled slash API Gateway also accepts (`path//2015-03-31/…`).
const PATH_MARK_DOUBLED: &str = ":lambda:path//2015-03-31/functions/";
const URI_SUFFIX: &str = "/invocations";

/// A function as the Invoke API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// The full reference as written (ARN, partial ARN or name, with qualifier).
    pub reference: String,
    /// Function name alone.
    pub name: String,
    /// Version or alias, if the reference carries one.
    pub qualifier: Option<String>,
}

/// Extracts the function reference from an integration URI, with stage variables
/// substituted. Errors are messages for the `uri` field.
pub fn function_from_uri(
    uri: &str,
    stage_variables: &BTreeMap<String, String>,
) -> Result<FunctionRef, String> {
    let uri = substitute_stage_variables(uri, stage_variables)?;
    let rest = uri
        .strip_prefix(URI_PREFIX)
        .and_then(|r| {
            r.split_once(PATH_MARK)
                .or_else(|| r.split_once(PATH_MARK_DOUBLED))
                .map(|(_, f)| f)
        })
        .and_then(|f| f.strip_suffix(URI_SUFFIX))
        .ok_or_else(|| {
            format!("not a Lambda integration URI (expected {URI_PREFIX}{{region}}{PATH_MARK}{{functionArn}}{URI_SUFFIX}): {uri}")
        })?;
    parse_function(rest)
}

/// Splits `arn:aws:lambda:region:account:function:name[:qualifier]`,
/// `account:function:name[:qualifier]` or `name[:qualifier]`.
pub fn parse_function(reference: &str) -> Result<FunctionRef, String> {
    let parts: Vec<&str> = reference.split(':').collect();
    let (name, qualifier) = match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", name] => (*name, None),
        ["arn", _, "lambda", _, _, "function", name, q] => (*name, Some(*q)),
        [_, "function", name] => (*name, None),
        [_, "function", name, q] => (*name, Some(*q)),
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        _ => return Err(format!("not a Lambda function reference: {reference}")),
    };
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(format!(
            "invalid Lambda function name `{name}` (1-64 of A-Z a-z 0-9 - _)"
        ));
    }
    if let Some(q) = qualifier {
        let valid_q = !q.is_empty()
            && q.len() <= 128
            && q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$');
        if !valid_q {
            return Err(format!("invalid Lambda qualifier `{q}`"));
        }
    }
    Ok(FunctionRef {
        reference: reference.to_string(),
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
    })
}

/// Replaces every `${stageVariables.NAME}`; an undefined name is an error.
pub fn substitute_stage_variables(
    input: &str,
    vars: &BTreeMap<String, String>,
) -> Result<String, String> {
    const OPEN: &str = "${stageVariables.";
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + OPEN.len()..).unwrap_or_default();
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{stageVariables.…}} in {input}"))?;
        let name = after.get(..end).unwrap_or_default();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("stage variable `{name}` is not defined in the deployment"))?;
        out.push_str(value);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("fn".to_string(), "orders".to_string()),
            ("alias".to_string(), "live".to_string()),
        ])
    }

    #[test]
    fn uri_table() {
        let base = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/";
        for (func, name, qualifier) in [
            ("arn:aws:lambda:us-east-1:123456789012:function:hello", "hello", None),
            ("arn:aws:lambda:us-east-1:123456789012:function:hello:prod", "hello", Some("prod")),
            ("arn:aws:lambda:us-east-1:123456789012:function:${stageVariables.fn}", "orders", None),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:${stageVariables.fn}:${stageVariables.alias}",
                "orders",
                Some("live"),
            ),
            ("123456789012:function:hello", "hello", None),
            ("hello:$LATEST", "hello", Some("$LATEST")),
        ] {
            let f = function_from_uri(&format!("{base}{func}/invocations"), &vars()).unwrap();
            assert_eq!((f.name.as_str(), f.qualifier.as_deref()), (name, qualifier), "{func}");
            // API Gateway also takes the URI with a doubled slash after `path`.
            let doubled = base.replace("path/", "path//");
            let f = function_from_uri(&format!("{doubled}{func}/invocations"), &vars()).unwrap();
            assert_eq!((f.name.as_str(), f.qualifier.as_deref()), (name, qualifier), "{func}");
        }
    }

    #[test]
    fn uri_errors() {
        let base = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/";
        for (uri, needle) in [
            ("http://example.com", "not a Lambda integration URI"),
            (
                &format!("{base}arn:aws:lambda:r:1:function:${{stageVariables.nope}}/invocations")
                    as &str,
                "`nope` is not defined",
            ),
            (
                &format!("{base}arn:aws:lambda:r:1:function:bad name/invocations"),
                "invalid Lambda function name",
            ),
            (
                &format!("{base}a:b:c:d:e/invocations"),
                "not a Lambda function reference",
            ),
            (
                &format!("{base}${{stageVariables.fn/invocations"),
                "unterminated",
            ),
        ] {
            let err = function_from_uri(uri, &vars()).unwrap_err();
            assert!(err.contains(needle), "{uri}: {err}");
        }
    }
}
