//! The JSONPath subset of `$input.path`, `$input.json` and `integration.response.body.*`.
//!
//! Owns: compiling a path once and selecting from a [`Value`] tree. Supported: `$` (a path
//! without it is taken relative to `$`), `.name`, `['name']`, `[n]` and `[-n]`, `[*]` and
//! `.*`, `..name` and `..*` (deep scan), unions `[0,2]` / `['a','b']`, slices `[s:e]`,
//! filters `[?(@.k)]` and `[?(@.k op literal)]` with `== != < <= > >=`, and the `length()`
//! function. A definite path (no wildcard, scan, union, slice or filter) selects one value or
//! null; any other path selects a JSON list, as Jayway JsonPath does. Must not: parse JSON
//! text (see [`super::json`]).

use super::value::Value;

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Exists(Vec<String>),
    Compare(Vec<String>, &'static str, Literal),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Name(String),
    Index(i64),
    Wildcard,
    Scan(Option<String>),
    Names(Vec<String>),
    Indexes(Vec<i64>),
    Slice(Option<i64>, Option<i64>),
    Filter(Filter),
    Length,
}

/// A compiled path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
    definite: bool,
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        self.s.get(self.i..).unwrap_or_default()
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn eat(&mut self, p: &str) -> bool {
        if self.rest().starts_with(p) {
            self.i += p.len();
            true
        } else {
            false
        }
    }
    fn ws(&mut self) {
        while self.peek() == Some(' ') {
            self.i += 1;
        }
    }
    fn name(&mut self) -> Option<String> {
        let n: String = self
            .rest()
            .chars()
            .take_while(|c| {
                !matches!(
                    c,
                    '.' | '[' | ']' | ' ' | '(' | ')' | '=' | '!' | '<' | '>' | ','
                )
            })
            .collect();
        self.i += n.len();
        (!n.is_empty()).then_some(n)
    }
    fn quoted(&mut self) -> Option<String> {
        let q = self.peek().filter(|c| *c == '\'' || *c == '"')?;
        self.i += 1;
        let end = self.rest().find(q)?;
        let s = self.rest().get(..end)?.to_string();
        self.i += end + 1;
        Some(s)
    }
    fn int(&mut self) -> Option<i64> {
        let n: String = self
            .rest()
            .chars()
            .enumerate()
            .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
            .map(|(_, c)| c)
            .collect();
        let v = n.parse().ok()?;
        self.i += n.len();
        Some(v)
    }
}

impl JsonPath {
    /// Compiles a path; the error says what is wrong and where.
    pub fn compile(path: &str) -> Result<JsonPath, String> {
        let path = path.trim();
        let owned;
        let path = if path.starts_with('$') {
            path
        } else {
            owned = if path.starts_with('[') || path.starts_with('.') {
                format!("${path}")
            } else {
                format!("$.{path}")
            };
            &owned
        };
        let mut c = Cursor { s: path, i: 1 };
        let mut steps = Vec::new();
        let bad = |c: &Cursor, what: &str| format!("JSONPath `{path}` at {}: {what}", c.i);
        while c.peek().is_some() {
            if c.eat("..") {
                if c.eat("*") {
                    steps.push(Step::Scan(None));
                } else {
                    let n = c
                        .name()
                        .ok_or_else(|| bad(&c, "expected a name after `..`"))?;
                    steps.push(Step::Scan(Some(n)));
                }
            } else if c.eat(".") {
                if c.eat("*") {
                    steps.push(Step::Wildcard);
                } else if c.eat("length()") {
                    steps.push(Step::Length);
                } else {
                    let n = c
                        .name()
                        .ok_or_else(|| bad(&c, "expected a name after `.`"))?;
                    steps.push(Step::Name(n));
                }
            } else if c.eat("[") {
                c.ws();
                let step = if c.eat("*") {
                    Step::Wildcard
                } else if c.eat("?(") {
                    let f = filter(&mut c).ok_or_else(|| bad(&c, "unsupported filter"))?;
                    if !c.eat(")") {
                        return Err(bad(&c, "expected `)` closing the filter"));
                    }
                    Step::Filter(f)
                } else if matches!(c.peek(), Some('\'' | '"')) {
                    let mut names = Vec::new();
                    loop {
                        c.ws();
                        names.push(c.quoted().ok_or_else(|| bad(&c, "unterminated name"))?);
                        c.ws();
                        if !c.eat(",") {
                            break;
                        }
                    }
                    match <[String; 1]>::try_from(names) {
                        Ok([one]) => Step::Name(one),
                        Err(names) => Step::Names(names),
                    }
                } else {
                    let first = c.int();
                    c.ws();
                    if c.eat(":") {
                        c.ws();
                        Step::Slice(first, c.int())
                    } else {
                        let mut idx = vec![first.ok_or_else(|| bad(&c, "expected an index"))?];
                        while c.eat(",") {
                            c.ws();
                            idx.push(c.int().ok_or_else(|| bad(&c, "expected an index"))?);
                            c.ws();
                        }
                        match <[i64; 1]>::try_from(idx) {
                            Ok([one]) => Step::Index(one),
                            Err(idx) => Step::Indexes(idx),
                        }
                    }
                };
                c.ws();
                if !c.eat("]") {
                    return Err(bad(&c, "expected `]`"));
                }
                steps.push(step);
            } else {
                return Err(bad(&c, "expected `.` or `[`"));
            }
        }
        let definite = steps
            .iter()
            .all(|s| matches!(s, Step::Name(_) | Step::Index(_) | Step::Length));
        Ok(JsonPath { steps, definite })
    }

    /// Selects from `root`.
    pub fn select(&self, root: &Value) -> Value {
        self.select_counted(root).0
    }

    /// Selects from `root`, also returning how many values the steps produced (the work
    /// done, for the render budget).
    pub fn select_counted(&self, root: &Value) -> (Value, usize) {
        let mut current = vec![root.clone()];
        let mut visited = 1usize;
        for step in &self.steps {
            let mut next = Vec::new();
            for v in &current {
                apply(step, v, &mut next);
            }
            visited = visited.saturating_add(next.len());
            current = next;
        }
        let value = if self.definite {
            current.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::list(current, true)
        };
        (value, visited)
    }
}

fn field_path(c: &mut Cursor) -> Option<Vec<String>> {
    c.ws();
    if !c.eat("@") {
        return None;
    }
    let mut names = Vec::new();
    while c.eat(".") {
        names.push(c.name()?);
    }
    Some(names)
}

fn filter(c: &mut Cursor) -> Option<Filter> {
    let field = field_path(c)?;
    c.ws();
    let op = ["==", "!=", "<=", ">=", "<", ">"]
        .into_iter()
        .find(|op| c.eat(op));
    let Some(op) = op else {
        return Some(Filter::Exists(field));
    };
    c.ws();
    let lit = if let Some(s) = c.quoted() {
        Literal::Str(s)
    } else if c.eat("true") {
        Literal::Bool(true)
    } else if c.eat("false") {
        Literal::Bool(false)
    } else if c.eat("null") {
        Literal::Null
    } else {
        let n: String = c
            .rest()
            .chars()
            .take_while(|ch| ch.is_ascii_digit() || matches!(ch, '-' | '.' | 'e' | 'E' | '+'))
            .collect();
        c.i += n.len();
        Literal::Num(n.parse().ok()?)
    };
    c.ws();
    Some(Filter::Compare(field, op, lit))
}

fn child(v: &Value, name: &str) -> Option<Value> {
    match v {
        Value::Map(m) => m.get(name),
        _ => None,
    }
}

fn index(v: &Value, i: i64) -> Option<Value> {
    let Value::List(l) = v else { return None };
    let items = l.items.borrow();
    let i = if i < 0 { items.len() as i64 + i } else { i };
    usize::try_from(i).ok().and_then(|i| items.get(i).cloned())
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Map(m) => m.entries.borrow().iter().map(|(_, v)| v.clone()).collect(),
        Value::List(l) => l.items.borrow().clone(),
        _ => Vec::new(),
    }
}

fn scan(v: &Value, name: Option<&str>, out: &mut Vec<Value>, depth: usize) {
    if depth > super::json::MAX_DEPTH {
        return;
    }
    match name {
        Some(n) => out.extend(child(v, n)),
        None => out.extend(children(v)),
    }
    for c in children(v) {
        scan(&c, name, out, depth + 1);
    }
}

fn holds(f: &Filter, v: &Value) -> bool {
    let get = |path: &[String]| path.iter().try_fold(v.clone(), |cur, n| child(&cur, n));
    match f {
        Filter::Exists(p) => get(p).is_some(),
        Filter::Compare(p, op, lit) => {
            let Some(found) = get(p) else { return false };
            let ord = match (&found, lit) {
                (Value::Str(a), Literal::Str(b)) => Some((**a).cmp(b.as_str())),
                (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
                (Value::Null, Literal::Null) => Some(std::cmp::Ordering::Equal),
                (n, Literal::Num(b)) => n.as_number().and_then(|a| a.as_f64().partial_cmp(b)),
                _ => None,
            };
            match (*op, ord) {
                ("==", Some(o)) => o.is_eq(),
                ("!=", Some(o)) => o.is_ne(),
                ("!=", None) => true,
                ("<", Some(o)) => o.is_lt(),
                ("<=", Some(o)) => o.is_le(),
                (">", Some(o)) => o.is_gt(),
                (">=", Some(o)) => o.is_ge(),
                _ => false,
            }
        }
    }
}

fn apply(step: &Step, v: &Value, out: &mut Vec<Value>) {
    match step {
        Step::Name(n) => out.extend(child(v, n)),
        Step::Index(i) => out.extend(index(v, *i)),
        Step::Wildcard => out.extend(children(v)),
        Step::Scan(n) => scan(v, n.as_deref(), out, 0),
        Step::Names(ns) => out.extend(ns.iter().filter_map(|n| child(v, n))),
        Step::Indexes(is) => out.extend(is.iter().filter_map(|i| index(v, *i))),
        Step::Slice(s, e) => {
            if let Value::List(l) = v {
                let items = l.items.borrow();
                let len = items.len() as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = norm(s.unwrap_or(0));
                let e = norm(e.unwrap_or(len));
                if s < e {
                    out.extend(
                        items
                            .iter()
                            .skip(s as usize)
                            .take((e - s) as usize)
                            .cloned(),
                    );
                }
            }
        }
        Step::Filter(f) => match v {
            Value::List(_) => out.extend(children(v).into_iter().filter(|c| holds(f, c))),
            _ if holds(f, v) => out.push(v.clone()),
            _ => {}
        },
        Step::Length => match v {
            Value::List(l) => out.push(Value::Int(l.items.borrow().len() as i64)),
            Value::Map(m) => out.push(Value::Int(m.entries.borrow().len() as i64)),
            Value::Str(s) => out.push(Value::Int(s.chars().count() as i64)),
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vtl::json;
    use crate::vtl::value::write_json;

    #[test]
    fn table() {
        let doc = json::parse(
            r#"{"store":{"book":[{"t":"a","p":8,"isbn":"x"},{"t":"b","p":12},{"t":"c","p":9}],"bike":{"p":20}},"n":null,"odd key":1}"#,
        )
        .unwrap();
        for (path, want) in [
            (
                "$",
                r#"{"store":{"book":[{"t":"a","p":8,"isbn":"x"},{"t":"b","p":12},{"t":"c","p":9}],"bike":{"p":20}},"n":null,"odd key":1}"#,
            ),
            ("$.store.bike.p", "20"),
            ("store.bike", r#"{"p":20}"#),
            ("$['odd key']", "1"),
            ("$.store.book[1].t", r#""b""#),
            ("$.store.book[-1].t", r#""c""#),
            ("$.store.book[*].t", r#"["a","b","c"]"#),
            ("$.store.book[0,2].p", "[8,9]"),
            ("$.store.book[1:].t", r#"["b","c"]"#),
            ("$.store.book[:1].t", r#"["a"]"#),
            ("$..p", "[8,12,9,20]"),
            ("$.store.book[?(@.p > 8)].t", r#"["b","c"]"#),
            ("$.store.book[?(@.t == 'a')].p", "[8]"),
            ("$.store.book[?(@.isbn)].t", r#"["a"]"#),
            ("$.store.book.length()", "3"),
            ("$.missing", "null"),
            ("$.missing[*]", "[]"),
            ("$.n", "null"),
        ] {
            let p = JsonPath::compile(path).unwrap();
            let mut out = String::new();
            write_json(&p.select(&doc), &mut out);
            assert_eq!(out, want, "{path}");
        }
    }

    #[test]
    fn errors_say_where() {
        for bad in ["$.a[", "$.a[?(@.x ~ 1)]", "$a", "$.", "$['a"] {
            let e = JsonPath::compile(bad).unwrap_err();
            assert!(e.starts_with("JSONPath"), "{bad}: {e}");
        }
    }
}
