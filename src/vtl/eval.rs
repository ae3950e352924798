//! Walking a template tree against an environment.
//!
//! Owns: Velocity's runtime semantics: reference resolution (`#set` variables, then
//! `$input`, `$util`, `$context`, `$stageVariables`, `$foreach`, `$velocityCount`), printing
//! (a null reference prints as nothing, as API Gateway renders it), `#set` (a null value leaves the
//! target unchanged), `#if` truth, `#foreach` (its variable restored afterwards, at most
//! [`MAX_FOREACH`] iterations), `#break`, `#stop`, arithmetic and comparison, and the
//! render budget ([`MAX_STEPS`], [`MAX_BYTES`]). Also compiles, once per template, the
//! regexes and JSONPaths it names literally. Must not: implement methods (see
//! [`super::builtins`]).

use std::collections::HashMap;
use std::rc::Rc;

use super::ast::{BinOp, Expr, Node, Part, Pos, Reference};
use super::builtins;
use super::jsonpath::JsonPath;
use super::value::{Loop, Number, Value};
use super::{Env, Prepared, RenderError, MAX_BYTES, MAX_FOREACH, MAX_OUTPUT, MAX_STEPS, MAX_WORK};

/// Methods whose first argument is a Java regex.
pub const REGEX_METHODS: [&str; 4] = ["replaceAll", "replaceFirst", "matches", "split"];

/// Compiles the literal regexes and JSONPaths of a tree into `prepared`.
pub fn prepare(nodes: &[Node], prepared: &mut Prepared) -> std::result::Result<(), (Pos, String)> {
    for n in nodes {
        match n {
            Node::Text(_) | Node::Break | Node::Stop => {}
            Node::Ref(r) | Node::Escaped(r) => prepare_ref(r, prepared)?,
            Node::Set { target, value } => {
                prepare_ref(target, prepared)?;
                prepare_expr(value, prepared)?;
            }
            Node::If {
                branches,
                otherwise,
            } => {
                for (c, body) in branches {
                    prepare_expr(c, prepared)?;
                    prepare(body, prepared)?;
                }
                if let Some(body) = otherwise {
                    prepare(body, prepared)?;
                }
            }
            Node::Foreach { iterable, body, .. } => {
                prepare_expr(iterable, prepared)?;
                prepare(body, prepared)?;
            }
        }
    }
    Ok(())
}

fn prepare_ref(r: &Reference, prepared: &mut Prepared) -> std::result::Result<(), (Pos, String)> {
    for (i, part) in r.parts.iter().enumerate() {
        match part {
            Part::Property(_) => {}
            Part::Index(e) => prepare_expr(e, prepared)?,
            Part::Call(name, args, pos) => {
                for a in args {
                    prepare_expr(a, prepared)?;
                }
                let Some(Expr::Str(lit)) = args.first() else {
                    continue;
                };
                if REGEX_METHODS.contains(&name.as_str()) {
                    let key = if name == "matches" {
                        builtins::anchored(lit)
                    } else {
                        lit.clone()
                    };
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        prepared.regexes.entry(key)
                    {
                        let re = builtins::java_regex(slot.key()).map_err(|m| (*pos, m))?;
                        slot.insert(Rc::new(re));
                    }
                }
                let on_input = i == 0 && r.root == "input";
                if on_input
                    && (name == "path" || name == "json")
                    && !prepared.paths.contains_key(lit)
                {
                    let p = JsonPath::compile(lit).map_err(|m| (*pos, m))?;
                    prepared.paths.insert(lit.clone(), Rc::new(p));
                }
            }
        }
    }
    Ok(())
}

fn prepare_expr(e: &Expr, prepared: &mut Prepared) -> std::result::Result<(), (Pos, String)> {
    match e {
        Expr::Ref(r) => prepare_ref(r, prepared),
        Expr::Interpolated(nodes) => prepare(nodes, prepared),
        Expr::Str(_) | Expr::Int(_) | Expr::Float(_) | Expr::Bool(_) => Ok(()),
        Expr::List(items) => items.iter().try_for_each(|i| prepare_expr(i, prepared)),
        Expr::Map(entries) => entries.iter().try_for_each(|(k, v)| {
            prepare_expr(k, prepared)?;
            prepare_expr(v, prepared)
        }),
        Expr::Range(a, b) | Expr::Binary(_, a, b) => {
            prepare_expr(a, prepared)?;
            prepare_expr(b, prepared)
        }
        Expr::Not(a) | Expr::Neg(a) => prepare_expr(a, prepared),
    }
}

/// How control leaves a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    Break,
    Stop,
}

/// One render in progress.
pub struct Eval<'t, 'e> {
    pub prepared: &'t Prepared,
    pub env: &'e Env<'e>,
    vars: HashMap<String, Value>,
    loops: Vec<Loop>,
    steps: u64,
    bytes: usize,
    output: usize,
    work: u64,
    /// `$input` parsed as JSON, once.
    body_json: Option<Value>,
    /// Regexes and paths built at render time (from non-literal arguments).
    pub regexes: HashMap<String, Rc<regex_lite::Regex>>,
    pub paths: HashMap<String, Rc<JsonPath>>,
}

pub type Result<T> = std::result::Result<T, RenderError>;

/// Renders a tree.
pub fn render(nodes: &[Node], prepared: &Prepared, env: &Env, size_hint: usize) -> Result<String> {
    let mut ev = Eval {
        prepared,
        env,
        vars: HashMap::new(),
        loops: Vec::new(),
        steps: 0,
        bytes: 0,
        output: 0,
        work: 0,
        body_json: None,
        regexes: HashMap::new(),
        paths: HashMap::new(),
    };
    let mut out = String::with_capacity(size_hint);
    ev.block(nodes, &mut out)?;
    Ok(out)
}

impl Eval<'_, '_> {
    fn tick(&mut self) -> Result<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(RenderError::Budget(format!(
                "template exceeded {MAX_STEPS} evaluation steps"
            )));
        }
        Ok(())
    }

    /// Counts bytes of intermediate strings against the budget.
    pub fn charge(&mut self, n: usize) -> Result<()> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_BYTES {
            return Err(RenderError::Budget(format!(
                "template built more than {MAX_BYTES} bytes of strings"
            )));
        }
        Ok(())
    }

    /// Counts bytes written to the output against the budget.
    fn emit(&mut self, n: usize) -> Result<()> {
        self.output = self.output.saturating_add(n);
        if self.output > MAX_OUTPUT {
            return Err(RenderError::Budget(format!(
                "template produced more than {MAX_OUTPUT} bytes"
            )));
        }
        Ok(())
    }

    /// Counts work proportional to an input's size (bytes parsed, elements scanned).
    pub fn work(&mut self, n: usize) -> Result<()> {
        self.work = self
            .work
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        if self.work > MAX_WORK {
            return Err(RenderError::Budget(format!(
                "template exceeded {MAX_WORK} units of work on its input"
            )));
        }
        Ok(())
    }

    /// The body as JSON (an empty body is `{}`), parsed on first use.
    pub fn body_json(&mut self) -> Result<Value> {
        if let Some(v) = &self.body_json {
            return Ok(v.clone());
        }
        let body = self.env.input.body;
        self.work(body.len())?;
        let v = if body.trim().is_empty() {
            Value::map(Vec::new())
        } else {
            super::json::parse(body).map_err(|e| {
                RenderError::InvalidBody(format!("Could not parse request body into json: {e}"))
            })?
        };
        self.body_json = Some(v.clone());
        Ok(v)
    }

    /// `==`, with collections compared by their printed form charged as work.
    fn loose_eq(&mut self, l: &Value, r: &Value) -> Result<bool> {
        let printed = |v: &Value| matches!(v, Value::List(_) | Value::Map(_));
        if (printed(l) || printed(r)) && !l.is_null() && !r.is_null() {
            let (a, b) = (l.to_text(), r.to_text());
            self.work(a.len() + b.len())?;
            return Ok(a == b);
        }
        Ok(l.loose_eq(r))
    }

    /// Compiled regex for `pattern` (prepared, cached, or compiled now).
    pub fn regex(&mut self, pattern: &str) -> Result<Rc<regex_lite::Regex>> {
        if let Some(r) = self
            .prepared
            .regexes
            .get(pattern)
            .or(self.regexes.get(pattern))
        {
            return Ok(r.clone());
        }
        self.charge(pattern.len() * 64)?;
        let re = Rc::new(builtins::java_regex(pattern).map_err(RenderError::Failed)?);
        self.regexes.insert(pattern.to_string(), re.clone());
        Ok(re)
    }

    /// Compiled JSONPath for `path`.
    pub fn path(&mut self, path: &str) -> Result<Rc<JsonPath>> {
        if let Some(p) = self.prepared.paths.get(path).or(self.paths.get(path)) {
            return Ok(p.clone());
        }
        self.charge(path.len() * 16)?;
        let p = Rc::new(JsonPath::compile(path).map_err(RenderError::Failed)?);
        self.paths.insert(path.to_string(), p.clone());
        Ok(p)
    }

    fn block(&mut self, nodes: &[Node], out: &mut String) -> Result<Flow> {
        for n in nodes {
            self.tick()?;
            match n {
                Node::Text(t) => {
                    self.emit(t.len())?;
                    out.push_str(t);
                }
                Node::Ref(r) => {
                    let v = self.reference(r)?;
                    let start = out.len();
                    match v {
                        // API Gateway prints a null reference as nothing, quiet or not
                        // (Velocity would print it as written).
                        Value::Null => {}
                        v => v.write_text(out),
                    }
                    self.emit(out.len() - start)?;
                }
                Node::Escaped(r) => {
                    let v = self.reference(r)?;
                    if v.is_null() {
                        out.push('\\');
                    }
                    self.emit(r.src.len() + 1)?;
                    out.push_str(&r.src);
                }
                Node::Set { target, value } => {
                    let v = self.expr(value)?;
                    if !v.is_null() {
                        self.assign(target, v)?;
                    }
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let mut taken = None;
                    for (cond, body) in branches {
                        if self.expr(cond)?.truthy() {
                            taken = Some(body);
                            break;
                        }
                    }
                    if let Some(body) = taken.or(otherwise.as_ref()) {
                        let flow = self.block(body, out)?;
                        if flow != Flow::Next {
                            return Ok(flow);
                        }
                    }
                }
                Node::Foreach {
                    var,
                    iterable,
                    body,
                    ..
                } => {
                    if self.foreach(var, iterable, body, out)? == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Stop => return Ok(Flow::Stop),
            }
        }
        Ok(Flow::Next)
    }

    fn foreach(
        &mut self,
        var: &str,
        iterable: &Expr,
        body: &[Node],
        out: &mut String,
    ) -> Result<Flow> {
        let items: Vec<Value> = match self.expr(iterable)? {
            Value::List(l) => l.items.borrow().iter().take(MAX_FOREACH).cloned().collect(),
            Value::Map(m) => m
                .entries
                .borrow()
                .iter()
                .take(MAX_FOREACH)
                .map(|(_, v)| v.clone())
                .collect(),
            _ => return Ok(Flow::Next),
        };
        let saved = self.vars.get(var).cloned();
        let saved_count = self.vars.get("velocityCount").cloned();
        let len = items.len();
        let mut flow = Flow::Next;
        for (index, item) in items.into_iter().enumerate() {
            self.vars.insert(var.to_string(), item);
            self.vars
                .insert("velocityCount".into(), Value::Int(index as i64 + 1));
            self.loops.push(Loop { index, len });
            let f = self.block(body, out);
            self.loops.pop();
            match f? {
                Flow::Next => {}
                Flow::Break => break,
                Flow::Stop => {
                    flow = Flow::Stop;
                    break;
                }
            }
        }
        for (name, old) in [(var, saved), ("velocityCount", saved_count)] {
            match old {
                Some(v) => self.vars.insert(name.to_string(), v),
                None => self.vars.remove(name),
            };
        }
        Ok(flow)
    }

    fn root(&self, name: &str) -> Value {
        if let Some(v) = self.vars.get(name) {
            return v.clone();
        }
        match name {
            "input" => Value::Builtin(super::value::Builtin::Input),
            "util" => Value::Builtin(super::value::Builtin::Util),
            "context" => self.env.context.clone(),
            "stageVariables" => self.env.stage_variables.clone(),
            "foreach" => self
                .loops
                .last()
                .map_or(Value::Null, |l| Value::Foreach(*l)),
            _ => Value::Null,
        }
    }

    fn reference(&mut self, r: &Reference) -> Result<Value> {
        let mut v = self.root(&r.root);
        for part in &r.parts {
            if v.is_null() {
                return Ok(Value::Null);
            }
            self.tick()?;
            v = match part {
                Part::Property(name) => builtins::property(self, &v, name)?,
                Part::Index(e) => {
                    let key = self.expr(e)?;
                    builtins::index(&v, &key)
                }
                Part::Call(name, args, _) => {
                    let mut values = Vec::with_capacity(args.len());
                    for a in args {
                        values.push(self.expr(a)?);
                    }
                    builtins::call(self, &v, name, &values)?
                }
            };
        }
        Ok(v)
    }

    fn assign(&mut self, target: &Reference, v: Value) -> Result<()> {
        let Some((last, init)) = target.parts.split_last() else {
            self.vars.insert(target.root.clone(), v);
            return Ok(());
        };
        let holder = Reference {
            parts: init.to_vec(),
            ..target.clone()
        };
        let container = self.reference(&holder)?;
        match (last, &container) {
            (Part::Property(name), Value::Map(m)) => {
                m.put(name, v);
            }
            (Part::Index(e), Value::Map(m)) => {
                let key = self.expr(e)?.to_text();
                m.put(&key, v);
            }
            (Part::Index(e), Value::List(l)) => {
                let i = self.expr(e)?.as_index();
                let mut items = l.items.borrow_mut();
                if let Some(slot) = i
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| items.get_mut(i))
                {
                    *slot = v;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn interpolate(&mut self, nodes: &[Node]) -> Result<Value> {
        let mut s = String::new();
        // `#break` and `#stop` inside a string end the string.
        self.block(nodes, &mut s)?;
        Ok(Value::str(s))
    }

    pub fn expr(&mut self, e: &Expr) -> Result<Value> {
        self.tick()?;
        Ok(match e {
            Expr::Ref(r) => self.reference(r)?,
            Expr::Str(s) => Value::str(s.as_str()),
            Expr::Interpolated(nodes) => self.interpolate(nodes)?,
            Expr::Int(n) => Value::Int(*n),
            Expr::Float(f) => Value::Float(*f),
            Expr::Bool(b) => Value::Bool(*b),
            Expr::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.expr(i)?);
                }
                Value::list(out, false)
            }
            Expr::Map(entries) => {
                let map = Value::map(Vec::with_capacity(entries.len()));
                if let Value::Map(m) = &map {
                    for (k, v) in entries {
                        let k = self.expr(k)?.to_text();
                        let v = self.expr(v)?;
                        m.put(&k, v);
                    }
                }
                map
            }
            Expr::Range(a, b) => {
                let (Some(a), Some(b)) = (self.expr(a)?.as_index(), self.expr(b)?.as_index())
                else {
                    return Ok(Value::Null);
                };
                let n = a.abs_diff(b).saturating_add(1);
                self.charge(usize::try_from(n).unwrap_or(usize::MAX).saturating_mul(8))?;
                let items = if a <= b {
                    (a..=b).map(Value::Int).collect()
                } else {
                    (b..=a).rev().map(Value::Int).collect()
                };
                Value::list(items, false)
            }
            Expr::Not(a) => Value::Bool(!self.expr(a)?.truthy()),
            Expr::Neg(a) => match self.expr(a)?.as_number() {
                Some(Number::Int(i)) => Value::Int(i.wrapping_neg()),
                Some(Number::Float(f)) => Value::Float(-f),
                None => Value::Null,
            },
            Expr::Binary(op, a, b) => self.binary(*op, a, b)?,
        })
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr) -> Result<Value> {
        match op {
            BinOp::And => {
                return Ok(Value::Bool(
                    self.expr(a)?.truthy() && self.expr(b)?.truthy(),
                ))
            }
            BinOp::Or => {
                return Ok(Value::Bool(
                    self.expr(a)?.truthy() || self.expr(b)?.truthy(),
                ))
            }
            _ => {}
        }
        let l = self.expr(a)?;
        let r = self.expr(b)?;
        Ok(match op {
            BinOp::Eq => Value::Bool(self.loose_eq(&l, &r)?),
            BinOp::Ne => Value::Bool(!self.loose_eq(&l, &r)?),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let (Some(x), Some(y)) = (l.as_number(), r.as_number()) else {
                    return Ok(Value::Bool(false));
                };
                let ord = match (x, y) {
                    (Number::Int(x), Number::Int(y)) => Some(x.cmp(&y)),
                    _ => x.as_f64().partial_cmp(&y.as_f64()),
                };
                Value::Bool(ord.is_some_and(|o| match op {
                    BinOp::Lt => o.is_lt(),
                    BinOp::Le => o.is_le(),
                    BinOp::Gt => o.is_gt(),
                    _ => o.is_ge(),
                }))
            }
            BinOp::Add if matches!(l, Value::Str(_)) || matches!(r, Value::Str(_)) => {
                if l.is_null() || r.is_null() {
                    return Ok(Value::Null);
                }
                let mut s = l.to_text();
                r.write_text(&mut s);
                self.charge(s.len())?;
                Value::str(s)
            }
            _ => arithmetic(op, l.as_number(), r.as_number()),
        })
    }
}

fn arithmetic(op: BinOp, l: Option<Number>, r: Option<Number>) -> Value {
    let (Some(l), Some(r)) = (l, r) else {
        return Value::Null;
    };
    if let (Number::Int(x), Number::Int(y)) = (l, r) {
        let v = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div if y == 0 => return Value::Null,
            BinOp::Div => x.checked_div(y),
            BinOp::Mod if y == 0 => return Value::Null,
            BinOp::Mod => x.checked_rem(y),
            _ => None,
        };
        if let Some(v) = v {
            return Value::Int(v);
        }
    }
    let (x, y) = (l.as_f64(), r.as_f64());
    match op {
        BinOp::Add => Value::Float(x + y),
        BinOp::Sub => Value::Float(x - y),
        BinOp::Mul => Value::Float(x * y),
        BinOp::Div if y == 0.0 => Value::Null,
        BinOp::Div => Value::Float(x / y),
        BinOp::Mod if y == 0.0 => Value::Null,
        BinOp::Mod => Value::Float(x % y),
        _ => Value::Null,
    }
}
