//! Template values and how they print.
//!
//! Owns: [`Value`], the runtime type of every VTL expression, with the Java behaviour
//! templates can observe: maps print as `{a=1, b=x}`, lists from JSON print as JSON while
//! lists built in a template print as `[1, x]`, doubles print as Java's `Double.toString`,
//! `==` compares numbers by value and other mixed types by their printed form. Lists and maps
//! are shared references, as Java collections are (`#set($b = $a)` then `$b.put(..)` changes
//! `$a`). Must not: know about API Gateway objects (see [`super::builtins`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

/// Nesting printed before a collection is taken to contain itself.
const MAX_PRINT_DEPTH: usize = 160;

/// Printing stops once this much is written; the render budget then fails the render.
pub const MAX_PRINT_BYTES: usize = 16 << 20;

/// A list and whether it came from JSON (prints as JSON) or from the template (prints as a
/// Java `ArrayList`).
#[derive(Debug)]
pub struct List {
    pub items: RefCell<Vec<Value>>,
    pub json: bool,
}

/// Maps up to this many entries are searched in order; larger ones keep a hash index, so
/// building or reading a map of n entries costs O(n) however many keys a client sends.
const INDEX_FROM: usize = 16;

/// An insertion-ordered map. Header maps look names up case-insensitively.
#[derive(Debug, Default)]
pub struct Map {
    pub entries: RefCell<Vec<(Rc<str>, Value)>>,
    pub case_insensitive: bool,
    /// Position of each key (ASCII lower-cased when case-insensitive), once the map is
    /// larger than [`INDEX_FROM`].
    index: RefCell<Option<HashMap<Box<str>, usize>>>,
}

impl Map {
    /// A map holding `entries`, whose keys are distinct.
    pub fn from_entries(entries: Vec<(Rc<str>, Value)>, case_insensitive: bool) -> Map {
        let map = Map {
            entries: RefCell::new(entries),
            case_insensitive,
            index: RefCell::new(None),
        };
        map.reindex();
        map
    }

    fn index_key(&self, key: &str) -> Box<str> {
        if self.case_insensitive {
            key.to_ascii_lowercase().into()
        } else {
            key.into()
        }
    }

    /// Rebuilds the index from the entries (after a removal shifted positions).
    fn reindex(&self) {
        let entries = self.entries.borrow();
        let index = (entries.len() > INDEX_FROM).then(|| {
            let mut index = HashMap::with_capacity(entries.len());
            for (i, (k, _)) in entries.iter().enumerate() {
                index.entry(self.index_key(k)).or_insert(i);
            }
            index
        });
        *self.index.borrow_mut() = index;
    }

    fn position(&self, key: &str) -> Option<usize> {
        if let Some(index) = self.index.borrow().as_ref() {
            return index.get(&*self.index_key(key)).copied();
        }
        let entries = self.entries.borrow();
        if self.case_insensitive {
            entries
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(key))
        } else {
            entries.iter().position(|(k, _)| &**k == key)
        }
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        self.entries.borrow().get(i).map(|(_, v)| v.clone())
    }

    /// Inserts or replaces; returns the previous value.
    pub fn put(&self, key: &str, value: Value) -> Option<Value> {
        if let Some(i) = self.position(key) {
            let mut entries = self.entries.borrow_mut();
            return entries
                .get_mut(i)
                .map(|slot| std::mem::replace(&mut slot.1, value));
        }
        let len = {
            let mut entries = self.entries.borrow_mut();
            entries.push((Rc::from(key), value));
            entries.len()
        };
        let mut index = self.index.borrow_mut();
        match index.as_mut() {
            Some(index) => {
                index.insert(self.index_key(key), len - 1);
            }
            None if len > INDEX_FROM => {
                drop(index);
                self.reindex();
            }
            None => {}
        }
        None
    }

    /// Removes a key; the positions after it shift, so the index is rebuilt (O(n), charged
    /// to the render budget by the caller).
    pub fn remove(&self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        let removed = {
            let mut entries = self.entries.borrow_mut();
            (i < entries.len()).then(|| entries.remove(i).1)
        };
        self.reindex();
        removed
    }
}

/// The objects templates reach through well-known names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `$input`.
    Input,
    /// `$util`.
    Util,
}

/// A loop's `$foreach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loop {
    pub index: usize,
    pub len: usize,
}

/// Any template value.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<List>),
    Map(Rc<Map>),
    Builtin(Builtin),
    Foreach(Loop),
}

impl Value {
    pub fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub fn list(items: Vec<Value>, json: bool) -> Value {
        Value::List(Rc::new(List {
            items: RefCell::new(items),
            json,
        }))
    }

    /// A map of distinct keys, in order.
    pub fn map(entries: Vec<(Rc<str>, Value)>) -> Value {
        Value::Map(Rc::new(Map::from_entries(entries, false)))
    }

    /// A map of strings, optionally looked up case-insensitively (headers).
    pub fn string_map(pairs: &[(String, String)], case_insensitive: bool) -> Value {
        let map = Map {
            entries: RefCell::new(Vec::with_capacity(pairs.len())),
            case_insensitive,
            index: RefCell::new(None),
        };
        for (k, v) in pairs {
            map.put(k, Value::str(v.as_str()));
        }
        Value::Map(Rc::new(map))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// `#if` truth: `null` and `false` are false, everything else (the empty string too, as
    /// in Velocity 1.7) is true.
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(false))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<Number> {
        match self {
            Value::Int(i) => Some(Number::Int(*i)),
            Value::Float(f) => Some(Number::Float(*f)),
            _ => None,
        }
    }

    /// An integer argument (`substring(1)`, `get(0)`).
    pub fn as_index(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Java's `toString()`, as the value prints into a template's output.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    pub fn write_text(&self, out: &mut String) {
        self.write_text_at(out, &mut Vec::new());
    }

    /// `path` holds the collections being printed, to print a cycle as Java does.
    fn write_text_at(&self, out: &mut String, path: &mut Vec<*const ()>) {
        let depth = path.len();
        if out.len() > MAX_PRINT_BYTES {
            return;
        }
        if depth > MAX_PRINT_DEPTH {
            out.push_str("(this Collection)");
            return;
        }
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&java_double(*f)),
            Value::Str(s) => out.push_str(s),
            Value::List(l) if l.json => write_json_at(self, out, path),
            v @ (Value::List(_) | Value::Map(_)) if on_path(v, path) => {
                out.push_str("(this Collection)");
            }
            Value::List(l) => {
                out.push('[');
                path.push(identity(self));
                for (i, item) in l.items.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_text_at(out, path);
                }
                path.pop();
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                path.push(identity(self));
                for (i, (k, v)) in m.entries.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push('=');
                    v.write_text_at(out, path);
                }
                path.pop();
                out.push('}');
            }
            Value::Builtin(Builtin::Input) => out.push_str("$input"),
            Value::Builtin(Builtin::Util) => out.push_str("$util"),
            Value::Foreach(l) => {
                let _ = write!(out, "{{index={}, count={}}}", l.index, l.index + 1);
            }
        }
    }

    /// Velocity's `==`: numbers by value, equal types by content, other pairs by their
    /// printed form; `null` equals `null` and, as in API Gateway (where a null reference
    /// renders as the empty string), the empty string.
    pub fn loose_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Null, Value::Str(s)) | (Value::Str(s), Value::Null) => s.is_empty(),
            (Value::Null, _) | (_, Value::Null) => false,
            (a, b) if a.as_number().is_some() && b.as_number().is_some() => {
                a.as_number().map(Number::as_f64) == b.as_number().map(Number::as_f64)
            }
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) if Rc::ptr_eq(a, b) => true,
            (Value::Map(a), Value::Map(b)) if Rc::ptr_eq(a, b) => true,
            (a, b) => a.to_text() == b.to_text(),
        }
    }

    /// Approximate heap size, for the render budget.
    pub fn weight(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            _ => 8,
        }
    }
}

/// A number operand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// Java's `Double.toString`: plain notation with at least one decimal for 10^-3 <= |x| <
/// 10^7, computerised scientific notation (`1.0E7`) outside it.
pub fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = f.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{f}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Writes a value as compact JSON (the form of `$input.json`). Maps and lists nest as JSON
/// whatever their origin; builtins print as `null`.
pub fn write_json(v: &Value, out: &mut String) {
    write_json_at(v, out, &mut Vec::new());
}

/// The address of a list or map, to recognise it on a print path.
fn identity(v: &Value) -> *const () {
    match v {
        Value::List(l) => Rc::as_ptr(l).cast(),
        Value::Map(m) => Rc::as_ptr(m).cast(),
        _ => std::ptr::null(),
    }
}

fn on_path(v: &Value, path: &[*const ()]) -> bool {
    path.contains(&identity(v))
}

fn write_json_at(v: &Value, out: &mut String, path: &mut Vec<*const ()>) {
    let depth = path.len();
    if out.len() > MAX_PRINT_BYTES {
        return;
    }
    if depth > MAX_PRINT_DEPTH {
        out.push_str("null");
        return;
    }
    match v {
        Value::Null | Value::Builtin(_) | Value::Foreach(_) => out.push_str("null"),
        Value::Bool(_) | Value::Int(_) => v.write_text(out),
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:?}");
        }
        Value::Float(_) => out.push_str("null"),
        Value::Str(s) => json_string(s, out),
        Value::List(_) | Value::Map(_) if on_path(v, path) => out.push_str("null"),
        Value::List(l) => {
            out.push('[');
            path.push(identity(v));
            for (i, item) in l.items.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_at(item, out, path);
            }
            path.pop();
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            path.push(identity(v));
            for (i, (k, item)) in m.entries.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                write_json_at(item, out, path);
            }
            path.pop();
            out.push('}');
        }
    }
}

/// A JSON string literal.
pub fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java() {
        for (f, want) in [
            (1.5, "1.5"),
            (1000.0, "1000.0"),
            (1e7, "1.0E7"),
            (1.25e-5, "1.25E-5"),
            (0.001, "0.001"),
            (-2.0, "-2.0"),
            (0.0, "0.0"),
            (123456789.0, "1.23456789E8"),
        ] {
            assert_eq!(java_double(f), want, "{f}");
        }
    }

    #[test]
    fn maps_print_as_java_and_json_lists_as_json() {
        let inner = Value::list(vec![Value::Int(1), Value::str("a")], true);
        let m = Value::map(vec![
            (Rc::from("a"), Value::str("x")),
            (Rc::from("b"), inner),
            (
                Rc::from("c"),
                Value::map(vec![(Rc::from("d"), Value::Null)]),
            ),
        ]);
        assert_eq!(m.to_text(), "{a=x, b=[1,\"a\"], c={d=null}}");
        let mut json = String::new();
        write_json(&m, &mut json);
        assert_eq!(json, r#"{"a":"x","b":[1,"a"],"c":{"d":null}}"#);
        let made = Value::list(vec![Value::Int(1), Value::str("a")], false);
        assert_eq!(made.to_text(), "[1, a]");
    }

    #[test]
    fn loose_equality() {
        assert!(Value::Int(1).loose_eq(&Value::Float(1.0)));
        assert!(Value::str("1").loose_eq(&Value::Int(1)));
        assert!(Value::Null.loose_eq(&Value::Null));
        // A null reference is the empty string in API Gateway, and only that.
        assert!(Value::Null.loose_eq(&Value::str("")));
        assert!(!Value::Null.loose_eq(&Value::str(" ")));
        assert!(!Value::str("a").loose_eq(&Value::str("b")));
    }
}
