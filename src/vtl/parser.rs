//! Template source to syntax tree.
//!
//! Owns: recognising text, references, comments (`##`, `#* *#`), unparsed blocks
//! (`#[[ ]]#`) and directives (`#set`, `#if/#elseif/#else/#end`, `#foreach`, `#break`,
//! `#stop`, also in the `#{name}` form), and parsing directive expressions with Velocity's
//! precedence. Whitespace follows Velocity 1.7, which API Gateway runs: a directive's closing
//! `)` (and `#else`, `#end`, `#break`, `#stop`) takes the spaces and the one line break that
//! follow it, and `#set` also takes the spaces and tabs before it. A `#` or `$` that starts
//! nothing is text. Must not: evaluate.

use super::ast::{BinOp, Expr, Node, Part, Pos, Reference};
use super::lexer::{is_ident, is_ident_start, Lexer, Tok, Token};

/// Deepest nesting of blocks and expressions accepted.
pub const MAX_NESTING: usize = 64;

type Error = (Pos, String);

/// What ended a block.
enum End {
    Eof,
    Close,
    Else,
    ElseIf(Expr),
}

struct Parser<'a> {
    src: &'a str,
    i: usize,
    depth: usize,
}

/// Parses a whole template.
pub fn parse(src: &str) -> Result<Vec<Node>, Error> {
    let mut p = Parser {
        src,
        i: 0,
        depth: 0,
    };
    let (nodes, end) = p.block(false, false)?;
    match end {
        End::Eof => Ok(nodes),
        _ => Err((p.i as Pos, "unexpected end of template".into())),
    }
}

const UNSUPPORTED: [&str; 6] = ["macro", "parse", "include", "evaluate", "define", "literal"];

fn flush(text: &mut String, nodes: &mut Vec<Node>) {
    if !text.is_empty() {
        nodes.push(Node::Text(std::mem::take(text)));
    }
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.i..).unwrap_or_default()
    }

    fn enter(&mut self, at: usize) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err((
                at as Pos,
                format!("nesting deeper than {MAX_NESTING} levels"),
            ));
        }
        Ok(())
    }

    /// Takes trailing spaces and one line break, if the line break is there.
    fn gobble_line(&mut self) {
        let rest = self.rest();
        let spaces = rest
            .bytes()
            .take_while(|b| *b == b' ' || *b == b'\t')
            .count();
        let after = rest.get(spaces..).unwrap_or_default();
        for nl in ["\r\n", "\n", "\r"] {
            if after.starts_with(nl) {
                self.i += spaces + nl.len();
                return;
            }
        }
    }

    /// `#name` or `#{name}` at the cursor (which is on `#`): the name and the length.
    fn directive_name(&self) -> Option<(&'a str, usize)> {
        let rest = self.rest().get(1..)?;
        let (braced, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        if !body.chars().next().is_some_and(is_ident_start) {
            return None;
        }
        let len = body
            .char_indices()
            .find(|(_, c)| !c.is_ascii_alphabetic())
            .map_or(body.len(), |(i, _)| i);
        let name = body.get(..len)?;
        if braced {
            body.get(len..)?.strip_prefix('}')?;
            Some((name, len + 3))
        } else {
            Some((name, len + 1))
        }
    }

    fn block(&mut self, in_if: bool, in_block: bool) -> Result<(Vec<Node>, End), Error> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        while let Some(c) = self.rest().chars().next() {
            match c {
                '\\' if self.rest().get(1..2) == Some("$") => {
                    let save = self.i;
                    self.i += 1;
                    match self.reference_at_cursor()? {
                        Some(r) => {
                            flush(&mut text, &mut nodes);
                            nodes.push(Node::Escaped(r));
                        }
                        None => {
                            self.i = save + 2;
                            text.push_str("\\$");
                        }
                    }
                }
                '\\' if self.rest().get(1..2) == Some("#") => {
                    self.i += 2;
                    text.push('#');
                }
                '$' => match self.reference_at_cursor()? {
                    Some(r) => {
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Ref(r));
                    }
                    None => {
                        self.i += 1;
                        text.push('$');
                    }
                },
                '#' => {
                    let rest = self.rest();
                    if rest.starts_with("##") {
                        self.i += rest.find('\n').map_or(rest.len(), |n| n + 1);
                        continue;
                    }
                    if rest.starts_with("#*") {
                        let end = rest
                            .find("*#")
                            .filter(|e| *e >= 2)
                            .ok_or((self.i as Pos, "unterminated `#*` comment".to_string()))?;
                        self.i += end + 2;
                        continue;
                    }
                    if rest.starts_with("#[[") {
                        let end = rest
                            .find("]]#")
                            .ok_or((self.i as Pos, "unterminated `#[[` block".to_string()))?;
                        text.push_str(rest.get(3..end).unwrap_or_default());
                        self.i += end + 3;
                        continue;
                    }
                    let at = self.i;
                    let Some((name, len)) = self.directive_name() else {
                        self.i += 1;
                        text.push('#');
                        continue;
                    };
                    match name {
                        "set" => {
                            let trimmed = text.trim_end_matches([' ', '\t']).len();
                            text.truncate(trimmed);
                            flush(&mut text, &mut nodes);
                            self.i += len;
                            let (target, value) = self.set_args(at)?;
                            self.gobble_line();
                            nodes.push(Node::Set { target, value });
                        }
                        "if" => {
                            flush(&mut text, &mut nodes);
                            self.i += len;
                            let cond = self.paren_expr(at)?;
                            self.gobble_line();
                            nodes.push(self.if_chain(cond, at)?);
                        }
                        "foreach" => {
                            flush(&mut text, &mut nodes);
                            self.i += len;
                            nodes.push(self.foreach(at)?);
                        }
                        "elseif" if in_if => {
                            flush(&mut text, &mut nodes);
                            self.i += len;
                            let cond = self.paren_expr(at)?;
                            self.gobble_line();
                            return Ok((nodes, End::ElseIf(cond)));
                        }
                        "else" if in_if => {
                            flush(&mut text, &mut nodes);
                            self.i += len;
                            self.gobble_line();
                            return Ok((nodes, End::Else));
                        }
                        "end" if in_block => {
                            flush(&mut text, &mut nodes);
                            self.i += len;
                            self.gobble_line();
                            return Ok((nodes, End::Close));
                        }
                        "elseif" | "else" | "end" => {
                            return Err((
                                at as Pos,
                                format!("#{name} without an open #if or #foreach"),
                            ));
                        }
                        "break" | "stop" => {
                            flush(&mut text, &mut nodes);
                            self.i += len;
                            self.gobble_line();
                            nodes.push(if name == "break" {
                                Node::Break
                            } else {
                                Node::Stop
                            });
                        }
                        n if UNSUPPORTED.contains(&n) => {
                            return Err((
                                at as Pos,
                                format!("#{n} is not supported in API Gateway mapping templates"),
                            ));
                        }
                        _ => {
                            self.i += 1;
                            text.push('#');
                        }
                    }
                }
                c => {
                    let run = self
                        .rest()
                        .find(['\\', '$', '#'])
                        .filter(|n| *n > 0)
                        .unwrap_or(c.len_utf8());
                    text.push_str(self.rest().get(..run).unwrap_or_default());
                    self.i += run;
                }
            }
        }
        flush(&mut text, &mut nodes);
        Ok((nodes, End::Eof))
    }

    fn if_chain(&mut self, first: Expr, at: usize) -> Result<Node, Error> {
        self.enter(at)?;
        let mut branches = Vec::new();
        let mut cond = first;
        let otherwise = loop {
            let (body, end) = self.block(true, true)?;
            branches.push((cond, body));
            match end {
                End::ElseIf(next) => cond = next,
                End::Else => {
                    let (body, end) = self.block(false, true)?;
                    if !matches!(end, End::Close) {
                        return Err((at as Pos, "#if is missing its #end".into()));
                    }
                    break Some(body);
                }
                End::Close => break None,
                End::Eof => return Err((at as Pos, "#if is missing its #end".into())),
            }
        };
        self.depth -= 1;
        Ok(Node::If {
            branches,
            otherwise,
        })
    }

    fn foreach(&mut self, at: usize) -> Result<Node, Error> {
        let mut lx = Lexer::new(self.src, self.i);
        expect(&mut lx, "(")?;
        let t = lx.token()?;
        if !matches!(t.tok, Tok::Dollar { brace: false, .. }) {
            return Err((t.pos, "#foreach expects `($item in ...)`".into()));
        }
        let var = match lx.token()? {
            Token {
                tok: Tok::Ident(n),
                spaced: false,
                ..
            } => n,
            t => return Err((t.pos, "#foreach expects a variable name".into())),
        };
        match lx.token()? {
            Token {
                tok: Tok::Ident(k), ..
            } if k == "in" => {}
            t => return Err((t.pos, "#foreach expects `in`".into())),
        }
        let iterable = self.expr(&mut lx)?;
        expect(&mut lx, ")")?;
        self.i = lx.i;
        self.gobble_line();
        self.enter(at)?;
        let (body, end) = self.block(false, true)?;
        if !matches!(end, End::Close) {
            return Err((at as Pos, "#foreach is missing its #end".into()));
        }
        self.depth -= 1;
        Ok(Node::Foreach {
            var,
            iterable,
            body,
            pos: at as Pos,
        })
    }

    fn set_args(&mut self, at: usize) -> Result<(Reference, Expr), Error> {
        let mut lx = Lexer::new(self.src, self.i);
        expect(&mut lx, "(")?;
        let start = lx.peek()?;
        let target = match self.reference(&mut lx)? {
            Some(r) if !matches!(r.parts.last(), Some(Part::Call(..))) => r,
            _ => {
                return Err((
                    start.pos,
                    "#set expects a reference to assign, such as `$name` or `$map.key`".into(),
                ))
            }
        };
        expect(&mut lx, "=")?;
        let value = self.expr(&mut lx)?;
        expect(&mut lx, ")").map_err(|(p, m)| (p.max(at as Pos), m))?;
        self.i = lx.i;
        Ok((target, value))
    }

    fn paren_expr(&mut self, _at: usize) -> Result<Expr, Error> {
        let mut lx = Lexer::new(self.src, self.i);
        expect(&mut lx, "(")?;
        let e = self.expr(&mut lx)?;
        expect(&mut lx, ")")?;
        self.i = lx.i;
        Ok(e)
    }

    /// A reference at the cursor (on `$`) in text; `None` when the `$` starts none.
    fn reference_at_cursor(&mut self) -> Result<Option<Reference>, Error> {
        let mut lx = Lexer::new(self.src, self.i);
        let r = self.reference(&mut lx)?;
        if r.is_some() {
            self.i = lx.i;
        }
        Ok(r)
    }

    /// A reference at the lexer (on `$`), or `None` (lexer untouched) when there is none.
    fn reference(&mut self, lx: &mut Lexer<'a>) -> Result<Option<Reference>, Error> {
        let mut look = lx.clone();
        let start = look.token()?;
        let Tok::Dollar { quiet, brace } = start.tok else {
            return Ok(None);
        };
        let root = match look.token() {
            Ok(Token {
                tok: Tok::Ident(n),
                spaced: false,
                ..
            }) => n,
            _ => return Ok(None),
        };
        let mut parts = Vec::new();
        loop {
            let mut probe = look.clone();
            let Ok(t) = probe.token() else { break };
            match t.tok {
                Tok::Punct(".") if !t.spaced => {
                    let Ok(Token {
                        tok: Tok::Ident(name),
                        spaced: false,
                        pos,
                    }) = probe.token()
                    else {
                        break;
                    };
                    let mut call = probe.clone();
                    match call.token() {
                        Ok(Token {
                            tok: Tok::Punct("("),
                            spaced: false,
                            ..
                        }) => {
                            self.enter(pos as usize)?;
                            let args = self.args(&mut call, ")")?;
                            self.depth -= 1;
                            parts.push(Part::Call(name, args, pos));
                            look = call;
                        }
                        _ => {
                            parts.push(Part::Property(name));
                            look = probe;
                        }
                    }
                }
                Tok::Punct("[") if !t.spaced => {
                    self.enter(t.pos as usize)?;
                    let e = self.expr(&mut probe)?;
                    expect(&mut probe, "]")?;
                    self.depth -= 1;
                    parts.push(Part::Index(e));
                    look = probe;
                }
                _ => break,
            }
        }
        if brace {
            match look.token() {
                Ok(Token {
                    tok: Tok::Punct("}"),
                    ..
                }) => {}
                _ => return Ok(None),
            }
        }
        let src = self
            .src
            .get(start.pos as usize..look.i)
            .unwrap_or_default()
            .to_string();
        *lx = look;
        Ok(Some(Reference {
            quiet,
            root,
            parts,
            src,
            pos: start.pos,
        }))
    }

    /// Comma-separated expressions up to `close`.
    fn args(&mut self, lx: &mut Lexer<'a>, close: &'static str) -> Result<Vec<Expr>, Error> {
        let mut out = Vec::new();
        if matches!(lx.peek()?.tok, Tok::Punct(p) if p == close) {
            lx.token()?;
            return Ok(out);
        }
        loop {
            out.push(self.expr(lx)?);
            let t = lx.token()?;
            match t.tok {
                Tok::Punct(",") => continue,
                Tok::Punct(p) if p == close => return Ok(out),
                _ => return Err((t.pos, format!("expected `,` or `{close}`"))),
            }
        }
    }

    fn expr(&mut self, lx: &mut Lexer<'a>) -> Result<Expr, Error> {
        let at = lx.i;
        self.enter(at)?;
        let e = self.binary(lx, 0);
        self.depth -= 1;
        e
    }

    fn binary(&mut self, lx: &mut Lexer<'a>, level: usize) -> Result<Expr, Error> {
        const LEVELS: [&[(&str, BinOp)]; 6] = [
            &[("||", BinOp::Or), ("or", BinOp::Or)],
            &[("&&", BinOp::And), ("and", BinOp::And)],
            &[
                ("==", BinOp::Eq),
                ("!=", BinOp::Ne),
                ("eq", BinOp::Eq),
                ("ne", BinOp::Ne),
            ],
            &[
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
                ("le", BinOp::Le),
                ("ge", BinOp::Ge),
                ("lt", BinOp::Lt),
                ("gt", BinOp::Gt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Mod)],
        ];
        let Some(ops) = LEVELS.get(level) else {
            return self.unary(lx);
        };
        let mut left = self.binary(lx, level + 1)?;
        loop {
            let t = lx.peek()?;
            let word = match &t.tok {
                Tok::Punct(p) => *p,
                Tok::Ident(w) => w.as_str(),
                _ => break,
            };
            let Some((_, op)) = ops.iter().find(|(s, _)| *s == word) else {
                break;
            };
            lx.token()?;
            let right = self.binary(lx, level + 1)?;
            left = Expr::Binary(*op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, lx: &mut Lexer<'a>) -> Result<Expr, Error> {
        let t = lx.peek()?;
        match &t.tok {
            Tok::Punct("!") => {
                lx.token()?;
                self.enter(t.pos as usize)?;
                let e = self.unary(lx);
                self.depth -= 1;
                Ok(Expr::Not(Box::new(e?)))
            }
            Tok::Ident(w) if w == "not" => {
                lx.token()?;
                self.enter(t.pos as usize)?;
                let e = self.unary(lx);
                self.depth -= 1;
                Ok(Expr::Not(Box::new(e?)))
            }
            Tok::Punct("-") => {
                lx.token()?;
                self.enter(t.pos as usize)?;
                let e = self.unary(lx);
                self.depth -= 1;
                Ok(match e? {
                    Expr::Int(n) => Expr::Int(n.wrapping_neg()),
                    Expr::Float(f) => Expr::Float(-f),
                    e => Expr::Neg(Box::new(e)),
                })
            }
            _ => self.primary(lx),
        }
    }

    fn primary(&mut self, lx: &mut Lexer<'a>) -> Result<Expr, Error> {
        if let Some(r) = self.reference(lx)? {
            return Ok(Expr::Ref(Box::new(r)));
        }
        let t = lx.token()?;
        match t.tok {
            Tok::Int(n) => Ok(Expr::Int(n)),
            Tok::Float(f) => Ok(Expr::Float(f)),
            Tok::Ident(w) if w == "true" => Ok(Expr::Bool(true)),
            Tok::Ident(w) if w == "false" => Ok(Expr::Bool(false)),
            Tok::Str(s, true) if s.contains('$') || s.contains('#') => {
                let mut inner = Parser {
                    src: &s,
                    i: 0,
                    depth: self.depth + 1,
                };
                if inner.depth > MAX_NESTING {
                    return Err((t.pos, format!("nesting deeper than {MAX_NESTING} levels")));
                }
                match inner.block(false, false) {
                    Ok((nodes, End::Eof)) => Ok(Expr::Interpolated(nodes)),
                    Ok(_) => Err((t.pos, "unbalanced directive in string".into())),
                    Err((p, m)) => Err((t.pos + 1 + p, m)),
                }
            }
            Tok::Str(s, _) => Ok(Expr::Str(s)),
            Tok::Punct("(") => {
                let e = self.expr(lx)?;
                expect(lx, ")")?;
                Ok(e)
            }
            Tok::Punct("[") => {
                if matches!(lx.peek()?.tok, Tok::Punct("]")) {
                    lx.token()?;
                    return Ok(Expr::List(Vec::new()));
                }
                let first = self.expr(lx)?;
                if matches!(lx.peek()?.tok, Tok::Punct("..")) {
                    lx.token()?;
                    let last = self.expr(lx)?;
                    expect(lx, "]")?;
                    return Ok(Expr::Range(Box::new(first), Box::new(last)));
                }
                let mut items = vec![first];
                loop {
                    let t = lx.token()?;
                    match t.tok {
                        Tok::Punct(",") => items.push(self.expr(lx)?),
                        Tok::Punct("]") => return Ok(Expr::List(items)),
                        _ => return Err((t.pos, "expected `,` or `]`".into())),
                    }
                }
            }
            Tok::Punct("{") => {
                let mut entries = Vec::new();
                if matches!(lx.peek()?.tok, Tok::Punct("}")) {
                    lx.token()?;
                    return Ok(Expr::Map(entries));
                }
                loop {
                    let k = self.expr(lx)?;
                    expect(lx, ":")?;
                    let v = self.expr(lx)?;
                    entries.push((k, v));
                    let t = lx.token()?;
                    match t.tok {
                        Tok::Punct(",") => continue,
                        Tok::Punct("}") => return Ok(Expr::Map(entries)),
                        _ => return Err((t.pos, "expected `,` or `}`".into())),
                    }
                }
            }
            Tok::Eof => Err((t.pos, "unexpected end of template in an expression".into())),
            Tok::Ident(w) => Err((
                t.pos,
                format!("unexpected word `{w}` (references start with `$`)"),
            )),
            _ => Err((t.pos, "expected a value".into())),
        }
    }
}

fn expect(lx: &mut Lexer, p: &'static str) -> Result<(), Error> {
    let t = lx.token()?;
    match t.tok {
        Tok::Punct(q) if q == p => Ok(()),
        Tok::Eof => Err((
            t.pos,
            format!("expected `{p}`, found the end of the template"),
        )),
        _ => Err((t.pos, format!("expected `{p}`"))),
    }
}

/// Whether `name` is a valid reference name (for messages and checks outside the parser).
pub fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(is_ident_start) && name.chars().all(is_ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Node {
        Node::Text(s.into())
    }

    #[test]
    fn text_and_references() {
        let nodes = parse("a $b.c('x')[0] $!d ${e}f \\$g $ #x").unwrap();
        assert_eq!(nodes.len(), 9, "{nodes:?}");
        assert_eq!(nodes[0], text("a "));
        let Node::Ref(r) = &nodes[1] else { panic!() };
        assert_eq!(r.src, "$b.c('x')[0]");
        assert_eq!(r.parts.len(), 2);
        assert!(matches!(&nodes[3], Node::Ref(r) if r.quiet && r.root == "d"));
        assert!(matches!(&nodes[5], Node::Ref(r) if r.src == "${e}"));
        assert!(matches!(&nodes[7], Node::Escaped(r) if r.src == "$g"));
        assert_eq!(nodes[8], text(" $ #x"));
    }

    #[test]
    fn trailing_dot_and_spaces_are_text() {
        let nodes = parse("$a. $b .c").unwrap();
        assert!(matches!(&nodes[0], Node::Ref(r) if r.parts.is_empty()));
        assert_eq!(nodes[1], text(". "));
        assert_eq!(nodes[3], text(" .c"));
    }

    #[test]
    fn directives_gobble_as_velocity_1_7() {
        let nodes = parse("a\n  #set($x = 1)\n#if($x)\nyes\n#else\nno\n#end\nz").unwrap();
        assert_eq!(nodes[0], text("a\n"));
        assert!(matches!(nodes[1], Node::Set { .. }));
        let Node::If {
            branches,
            otherwise,
        } = &nodes[2]
        else {
            panic!()
        };
        assert_eq!(branches[0].1, vec![text("yes\n")]);
        assert_eq!(otherwise.as_ref().unwrap(), &vec![text("no\n")]);
        assert_eq!(nodes[3], text("z"));
    }

    #[test]
    fn comments_and_unparsed() {
        assert_eq!(
            parse("a## c\nb#* x\n *#c#[[$d #if]]#").unwrap(),
            vec![text("abc$d #if")]
        );
    }

    #[test]
    fn precedence() {
        let Node::Set { value, .. } = &parse("#set($a = 1 + 2 * 3 == 7 && !false)").unwrap()[0]
        else {
            panic!()
        };
        let Expr::Binary(BinOp::And, l, _) = value else {
            panic!("{value:?}")
        };
        assert!(matches!(**l, Expr::Binary(BinOp::Eq, _, _)));
    }

    #[test]
    fn errors_have_offsets() {
        for (src, at, msg) in [
            ("#if($a)x", 0, "missing its #end"),
            ("ab#end", 2, "without an open"),
            ("#set($a = )", 10, "expected a value"),
            ("#macro(x)#end", 0, "not supported"),
            ("x #* y", 2, "unterminated"),
            ("#foreach($a $b)#end", 12, "expects `in`"),
            ("$a.b('x'", 8, "expected `,` or `)`"),
        ] {
            let (p, m) = parse(src).unwrap_err();
            assert!(m.contains(msg), "{src}: {m}");
            assert_eq!(p as usize, at, "{src}: {m}");
        }
        let deep = format!("{}{}", "#if(true)".repeat(70), "#end".repeat(70));
        assert!(parse(&deep).unwrap_err().1.contains("nesting"));
    }
}
