//! The Velocity Template Language, as API Gateway's mapping templates use it.
//!
//! Owns: compiling a template once (at configure time) into a tree, with errors reported
//! by line and column, and rendering it against a request or an integration response under
//! a work budget, so no template and no input can hang or exhaust a worker. Module tree:
//! [`lexer`] (expression tokens), [`parser`] (text, references, directives), [`ast`],
//! [`eval`] (the tree walker and Velocity's semantics), [`builtins`] (`$input`, `$util`,
//! Java methods on strings, lists and maps), [`value`] (runtime values and how they print),
//! [`json`] and [`jsonpath`]. Must not: know where values come from; the caller builds the
//! [`Env`] (`$context`, `$stageVariables`, the body and parameters behind `$input`).

pub mod ast;
pub mod builtins;
pub mod eval;
pub mod json;
pub mod jsonpath;
pub mod lexer;
pub mod parser;
pub mod value;

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

pub use value::Value;

/// API Gateway's limit on one mapping template.
pub const MAX_TEMPLATE_BYTES: usize = 300 * 1024;
/// Iterations one `#foreach` runs at most (API Gateway's limit); further items are skipped.
pub const MAX_FOREACH: usize = 1000;
/// Evaluation steps one render may take.
pub const MAX_STEPS: u64 = 2_000_000;
/// Bytes of intermediate strings one render may build (method results, `$input.json`,
/// `toString`, regex and path compilation).
pub const MAX_BYTES: usize = value::MAX_PRINT_BYTES;
/// Bytes one render may write to its output (interpolated strings included).
pub const MAX_OUTPUT: usize = value::MAX_PRINT_BYTES;
/// Units of work (about one byte or element visited each) one render may do besides its
/// steps and strings: parsing the body as JSON, scanning long strings and collections in
/// methods. Each byte is counted once, in the budget that matches what it costs.
pub const MAX_WORK: u64 = 256 << 20;

/// A template that failed to compile, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = src.get(..pos.min(src.len())).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Why a render failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The body is not JSON but the template reads it as JSON (`$input.path`/`json`).
    InvalidBody(String),
    /// The work or size budget ran out.
    Budget(String),
    /// A method failed as Java's would (index out of range, invalid JSON to `parseJson`...).
    Failed(String),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::InvalidBody(m) | RenderError::Budget(m) | RenderError::Failed(m) => {
                f.write_str(m)
            }
        }
    }
}

/// Request or response data behind `$input`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    /// The payload as text (`$input.body`).
    pub body: &'a str,
    pub path: &'a [(String, String)],
    pub querystring: &'a [(String, String)],
    pub header: &'a [(String, String)],
}

/// What a template sees.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    pub input: Input<'a>,
    /// `$context` (a map; overrides written by the template stay in it).
    pub context: Value,
    /// `$stageVariables`.
    pub stage_variables: Value,
}

/// Regexes and JSONPaths a template names literally, compiled with the template.
#[derive(Debug, Default)]
pub struct Prepared {
    pub regexes: HashMap<String, Rc<regex_lite::Regex>>,
    pub paths: HashMap<String, Rc<jsonpath::JsonPath>>,
}

/// A compiled template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<ast::Node>,
    prepared: Prepared,
    source_len: usize,
}

impl Template {
    /// Compiles a template; literal regexes and JSONPaths in it are compiled now too, and an
    /// invalid one is an error here rather than at request time.
    pub fn compile(src: &str) -> Result<Template, TemplateError> {
        if src.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError {
                line: 1,
                column: 1,
                message: format!(
                    "template is {} bytes; API Gateway's limit is 300 KB ({MAX_TEMPLATE_BYTES} bytes)",
                    src.len()
                ),
            });
        }
        let at = |pos: ast::Pos, message: String| {
            let (line, column) = line_col(src, pos as usize);
            TemplateError {
                line,
                column,
                message,
            }
        };
        let nodes = parser::parse(src).map_err(|(p, m)| at(p, m))?;
        let mut prepared = Prepared::default();
        eval::prepare(&nodes, &mut prepared).map_err(|(p, m)| at(p, m))?;
        Ok(Template {
            nodes,
            prepared,
            source_len: src.len(),
        })
    }

    /// Renders against `env`.
    pub fn render(&self, env: &Env) -> Result<String, RenderError> {
        eval::render(&self.nodes, &self.prepared, env, self.source_len)
    }
}

#[cfg(test)]
mod tests;
