//! The syntax tree of a compiled template.
//!
//! Owns: the node and expression types the parser builds and the evaluator walks. Every node
//! that can fail or print its own source keeps the byte offset it started at
//! ([`Pos`]); [`super::TemplateError`] turns offsets into lines and columns. Must not:
//! evaluate anything.

/// Byte offset into the template source.
pub type Pos = u32;

/// A reference: `$name`, `$!name`, `${name}`, followed by properties, indexes and calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub quiet: bool,
    pub root: String,
    pub parts: Vec<Part>,
    /// The reference as written, printed when it evaluates to null and is not quiet.
    pub src: String,
    pub pos: Pos,
}

/// One step after a reference's root.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// `.name`: a map entry, or a Java getter (`.size` on nothing else).
    Property(String),
    /// `[expr]`.
    Index(Expr),
    /// `.name(args)`.
    Call(String, Vec<Expr>, Pos),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// An expression inside a directive, an index or a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Ref(Box<Reference>),
    /// `'literal'`, or a `"double-quoted"` string without references or directives.
    Str(String),
    /// A `"double-quoted"` string with references or directives in it.
    Interpolated(Vec<Node>),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    /// `[a..b]`.
    Range(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// A template node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Ref(Reference),
    /// `\$ref`: prints the reference's source without the backslash when it is defined, and
    /// as written otherwise.
    Escaped(Reference),
    Set {
        target: Reference,
        value: Expr,
    },
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
    Foreach {
        var: String,
        iterable: Expr,
        body: Vec<Node>,
        pos: Pos,
    },
    Break,
    Stop,
}
