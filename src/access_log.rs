//! Access logs in API Gateway's style: a stage's `accessLogSettings.format`, one line per
//! request.
//!
//! Owns: compiling a format (text with `$context.*` variables, as the console's CLF, JSON,
//! XML and CSV presets write them) once, and rendering a line from a lookup of variable
//! values, with `-` for a value the request does not have, as API Gateway writes it.
//! Must not: know where values come from (the gateway answers the lookup) or where lines go
//! (the glue hands them to the host).

use crate::error::ConfigError;

/// One piece of a compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A `$context` variable's path, such as `["identity", "sourceIp"]`.
    Var(Vec<String>),
}

/// A compiled access log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pieces: Vec<Piece>,
}

/// The name the filter gives a request's line in the host's per-request state; Envoy's
/// access logger prints it with `%FILTER_STATE(wasm.apigw_edge_access_log:PLAIN)%`.
pub const STATE_NAME: &str = "apigw_edge_access_log";

/// The state name of the `i`-th access log file of a deployment (stages may write to
/// files of their own): [`STATE_NAME`], then `apigw_edge_access_log_1`, ...
pub fn state_name(i: usize) -> String {
    if i == 0 {
        STATE_NAME.to_string()
    } else {
        format!("{STATE_NAME}_{i}")
    }
}

/// The longest format accepted (API Gateway documents none; a line is built per request).
pub const MAX_FORMAT_BYTES: usize = 16 * 1024;

const PREFIX: &str = "$context.";

impl AccessLog {
    /// Compiles `format`; `field` names it in errors. As in API Gateway, the format is one
    /// line and must log `$context.requestId` or `$context.extendedRequestId`.
    pub fn compile(format: &str, field: &str) -> Result<AccessLog, ConfigError> {
        if format.contains(['\n', '\r']) {
            return Err(ConfigError::new(
                field,
                "the access log format cannot contain line breaks",
            ));
        }
        if format.len() > MAX_FORMAT_BYTES {
            return Err(ConfigError::new(
                field,
                format!("the access log format is over {MAX_FORMAT_BYTES} bytes"),
            ));
        }
        let mut pieces = Vec::new();
        let mut rest = format;
        while let Some(at) = rest.find(PREFIX) {
            let (text, tail) = rest.split_at(at);
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_string()));
            }
            let name_len = tail
                .get(PREFIX.len()..)
                .unwrap_or_default()
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
                .unwrap_or(tail.len() - PREFIX.len());
            let name = tail
                .get(PREFIX.len()..PREFIX.len() + name_len)
                .unwrap_or_default();
            // A sentence's full stop after a variable is text, not part of its name.
            let name = name.trim_end_matches('.');
            let consumed = PREFIX.len() + name.len();
            if name.is_empty() {
                pieces.push(Piece::Text(PREFIX.to_string()));
            } else {
                pieces.push(Piece::Var(name.split('.').map(str::to_string).collect()));
            }
            rest = tail.get(consumed..).unwrap_or_default();
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        let logs_an_id = pieces.iter().any(|p| {
            matches!(p, Piece::Var(path) if path.len() == 1
                && matches!(path.first().map(String::as_str), Some("requestId" | "extendedRequestId")))
        });
        if !logs_an_id {
            return Err(ConfigError::new(
                field,
                "the access log format must include $context.requestId or $context.extendedRequestId",
            ));
        }
        Ok(AccessLog { pieces })
    }

    /// The variables the format uses, as dotted names.
    pub fn variables(&self) -> Vec<String> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Var(path) => Some(path.join(".")),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// A line: each variable replaced by `lookup`'s value for its path, or `-`.
    pub fn render(&self, lookup: impl Fn(&[String]) -> Option<String>) -> String {
        let mut line = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => line.push_str(t),
                Piece::Var(path) => match lookup(path) {
                    Some(v) if !v.is_empty() => line.push_str(&v),
                    _ => line.push('-'),
                },
            }
        }
        line
    }
}

#[cfg(test)]
mod tests;
