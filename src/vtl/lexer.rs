//! Tokens of the expression language inside directives, indexes and call arguments.
//!
//! Owns: turning source text at a position into tokens with their offsets and whether
//! whitespace preceded them (`$a.b` is a property, `$a .b` is not). String literals are kept
//! raw, as Velocity keeps them: backslashes are not escapes, except that a backslash or a
//! doubled quote does not end the string. Must not: build the tree (see [`super::parser`]).

use super::ast::Pos;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `$`, `$!`, `${` or `$!{`.
    Dollar {
        quiet: bool,
        brace: bool,
    },
    Ident(String),
    Int(i64),
    Float(f64),
    /// Raw contents and whether it was double-quoted.
    Str(String, bool),
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
    pub spaced: bool,
}

/// A cursor over the source; cheap to clone for lookahead.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pub i: usize,
}

const PUNCT: [&str; 22] = [
    "==", "!=", "<=", ">=", "&&", "||", "..", "(", ")", "[", "]", "{", "}", ",", ":", ".", "<",
    ">", "+", "-", "*", "/",
];

pub fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, i: usize) -> Self {
        Lexer { src, i }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.i..).unwrap_or_default()
    }

    pub fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// The next token; errors carry the offset of the offending character.
    pub fn token(&mut self) -> Result<Token, (Pos, String)> {
        let before = self.i;
        while self.peek_char().is_some_and(char::is_whitespace) {
            self.i += self.peek_char().map_or(1, char::len_utf8);
        }
        let spaced = self.i > before;
        let pos = self.i as Pos;
        let tok = |tok| Ok(Token { tok, pos, spaced });
        let Some(c) = self.peek_char() else {
            return tok(Tok::Eof);
        };
        let rest = self.rest();
        if c == '$' {
            let mut n = 1;
            let quiet = rest.get(1..2) == Some("!");
            if quiet {
                n += 1;
            }
            let brace = rest.get(n..n + 1) == Some("{");
            if brace {
                n += 1;
            }
            self.i += n;
            return tok(Tok::Dollar { quiet, brace });
        }
        if is_ident_start(c) {
            let len = rest
                .char_indices()
                .find(|(i, ch)| *i > 0 && !is_ident(*ch))
                .map_or(rest.len(), |(i, _)| i);
            self.i += len;
            return tok(Tok::Ident(rest.get(..len).unwrap_or_default().to_string()));
        }
        if c.is_ascii_digit() {
            let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
            let int_len = digits(rest);
            let after = rest.get(int_len..).unwrap_or_default();
            let frac =
                after.starts_with('.') && after.as_bytes().get(1).is_some_and(u8::is_ascii_digit);
            if frac {
                let len = int_len + 1 + digits(after.get(1..).unwrap_or_default());
                let text = rest.get(..len).unwrap_or_default();
                self.i += len;
                return match text.parse() {
                    Ok(f) => tok(Tok::Float(f)),
                    Err(_) => Err((pos, format!("invalid number `{text}`"))),
                };
            }
            let text = rest.get(..int_len).unwrap_or_default();
            self.i += int_len;
            return match text.parse() {
                Ok(n) => tok(Tok::Int(n)),
                Err(_) => Err((pos, format!("integer `{text}` is too large"))),
            };
        }
        if c == '"' || c == '\'' {
            let mut out = String::new();
            let mut chars = rest.char_indices().skip(1).peekable();
            while let Some((i, ch)) = chars.next() {
                if ch == c {
                    if chars.peek().is_some_and(|(_, n)| *n == c) {
                        chars.next();
                        out.push(c);
                        continue;
                    }
                    self.i += i + 1;
                    return tok(Tok::Str(out, c == '"'));
                }
                out.push(ch);
                if ch == '\\' {
                    if let Some((_, n)) = chars.next() {
                        out.push(n);
                    }
                }
            }
            return Err((pos, "unterminated string literal".into()));
        }
        for p in PUNCT {
            if rest.starts_with(p) {
                self.i += p.len();
                return tok(Tok::Punct(p));
            }
        }
        for (p, canonical) in [("=", "="), ("!", "!"), ("%", "%")] {
            if rest.starts_with(p) {
                self.i += p.len();
                return tok(Tok::Punct(canonical));
            }
        }
        Err((pos, format!("unexpected character `{c}`")))
    }

    /// The next token without consuming it.
    pub fn peek(&self) -> Result<Token, (Pos, String)> {
        self.clone().token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut l = Lexer::new(s, 0);
        let mut out = Vec::new();
        loop {
            let t = l.token().unwrap();
            if t.tok == Tok::Eof {
                return out;
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn table() {
        use Tok::*;
        assert_eq!(
            toks("$!{a}.b(1, 2.5) == 'x''y' && \"a\\\"b\""),
            vec![
                Dollar {
                    quiet: true,
                    brace: true
                },
                Ident("a".into()),
                Punct("}"),
                Punct("."),
                Ident("b".into()),
                Punct("("),
                Int(1),
                Punct(","),
                Float(2.5),
                Punct(")"),
                Punct("=="),
                Str("x'y".into(), false),
                Punct("&&"),
                Str("a\\\"b".into(), true),
            ]
        );
        assert_eq!(
            toks("[1..3]"),
            vec![Punct("["), Int(1), Punct(".."), Int(3), Punct("]")]
        );
        let mut l = Lexer::new("a  b", 0);
        assert!(!l.token().unwrap().spaced);
        assert!(l.token().unwrap().spaced);
    }

    #[test]
    fn errors() {
        assert_eq!(Lexer::new("'abc", 0).token().unwrap_err().0, 0);
        assert_eq!(Lexer::new("  @", 0).token().unwrap_err().0, 2);
        assert!(Lexer::new("99999999999999999999", 0).token().is_err());
    }
}
