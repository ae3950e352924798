//! What templates can call: `$input`, `$util`, `$foreach`, and Java's methods on strings,
//! lists, maps and numbers.
//!
//! Owns: property access (map entries, then Java getters: `$list.empty` is `isEmpty()`),
//! indexing, and every method with the Java behaviour templates rely on:
//! `String.replaceAll` takes a Java regex and `$1` in the replacement, `split` drops trailing
//! empty strings, `substring` out of range fails the render as Java throws. Indexes count
//! characters (Java counts UTF-16 units, which differs only outside the Basic Multilingual
//! Plane). `$util.escapeJavaScript` escapes exactly as API Gateway's (Apache Commons Lang
//! 2): quotes, `\`, `/`, control characters and every non-ASCII character as `\uXXXX`. An
//! unknown method evaluates to null, so its reference prints as written. Must not: walk the
//! tree (see [`super::eval`]).

use std::rc::Rc;

use base64::Engine;

use super::eval::{Eval, Result};
use super::value::{Builtin, Loop, Value};
use super::RenderError;

/// Compiles a Java regex. The syntax Java and this engine share (classes, groups,
/// quantifiers, anchors, `\d\w\s`, `(?i)`) covers what templates write; possessive
/// quantifiers and lookaround are refused with the reason.
pub fn java_regex(pattern: &str) -> std::result::Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(pattern).map_err(|e| format!("regex `{pattern}` is not supported: {e}"))
}

/// The regex that matches `pattern` against a whole string (Java's `String.matches`).
pub fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// Java replacement syntax (`$1`, `\$`) to this engine's (`${1}`, `$$`).
fn java_replacement(r: &str) -> String {
    let mut out = String::with_capacity(r.len());
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(n) => out.push(n),
                None => {}
            },
            '$' => {
                let digits: String =
                    std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str("${");
                    out.push_str(&digits);
                    out.push('}');
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn text(args: &[Value], i: usize) -> Option<String> {
    args.get(i).filter(|v| !v.is_null()).map(Value::to_text)
}

fn int(args: &[Value], i: usize) -> Option<i64> {
    args.get(i).and_then(Value::as_index)
}

fn failed(m: String) -> RenderError {
    RenderError::Failed(m)
}

fn capitalise(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `$v.name`.
pub fn property(ev: &mut Eval, v: &Value, name: &str) -> Result<Value> {
    match v {
        Value::Map(m) => Ok(m.get(name).unwrap_or(Value::Null)),
        Value::Builtin(Builtin::Input) if name == "body" => {
            let body = ev.env.input.body;
            Ok(Value::str(if body.is_empty() { "{}" } else { body }))
        }
        Value::Foreach(l) => Ok(loop_property(*l, name)),
        _ => {
            let cap = capitalise(name);
            let got = call(ev, v, &format!("get{cap}"), &[])?;
            if got.is_null() {
                call(ev, v, &format!("is{cap}"), &[])
            } else {
                Ok(got)
            }
        }
    }
}

fn loop_property(l: Loop, name: &str) -> Value {
    match name {
        "index" => Value::Int(l.index as i64),
        "count" => Value::Int(l.index as i64 + 1),
        "hasNext" => Value::Bool(l.index + 1 < l.len),
        "first" => Value::Bool(l.index == 0),
        "last" => Value::Bool(l.index + 1 == l.len),
        _ => Value::Null,
    }
}

/// `$v[key]`.
pub fn index(v: &Value, key: &Value) -> Value {
    match v {
        Value::List(l) => key
            .as_index()
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| l.items.borrow().get(i).cloned())
            .unwrap_or(Value::Null),
        Value::Map(m) => m.get(&key.to_text()).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// `$v.name(args)`.
pub fn call(ev: &mut Eval, v: &Value, name: &str, args: &[Value]) -> Result<Value> {
    ev.work(linear_cost(v, name, args))?;
    match (name, args.len()) {
        ("toString", 0) => {
            let s = v.to_text();
            ev.charge(s.len())?;
            return Ok(Value::str(s));
        }
        ("equals", 1) => return Ok(Value::Bool(args.first().is_some_and(|a| v.loose_eq(a)))),
        _ => {}
    }
    match v {
        Value::Str(s) => string_method(ev, s, name, args),
        Value::List(_) => list_method(v, name, args),
        Value::Map(_) => map_method(v, name, args),
        Value::Int(_) | Value::Float(_) => Ok(number_method(v, name)),
        Value::Bool(b) if name == "booleanValue" => Ok(Value::Bool(*b)),
        Value::Builtin(Builtin::Input) => input_method(ev, name, args),
        Value::Builtin(Builtin::Util) => util_method(ev, name, args),
        Value::Foreach(l) => Ok(loop_property(*l, name)),
        _ => Ok(Value::Null),
    }
}

/// Methods whose cost grows with the receiver (or argument) collection.
const LINEAR_METHODS: [&str; 10] = [
    "contains",
    "indexOf",
    "containsValue",
    "keySet",
    "values",
    "entrySet",
    "addAll",
    "putAll",
    "remove",
    "equals",
];

/// Work a method call does beyond a step: a string method scans its receiver; a linear
/// collection method visits every element of its receiver and of a collection argument.
fn linear_cost(v: &Value, name: &str, args: &[Value]) -> usize {
    let size = |v: &Value| match v {
        Value::Str(s) => s.len(),
        Value::List(l) => l.items.borrow().len(),
        Value::Map(m) => m.len(),
        _ => 0,
    };
    match v {
        Value::Str(s) => s.len(),
        Value::List(_) | Value::Map(_) if LINEAR_METHODS.contains(&name) => {
            size(v) + args.iter().map(size).sum::<usize>()
        }
        _ => 0,
    }
}

fn char_range(s: &str, from: i64, to: i64) -> Option<String> {
    let len = s.chars().count() as i64;
    if from < 0 || to > len || from > to {
        return None;
    }
    Some(
        s.chars()
            .skip(from as usize)
            .take((to - from) as usize)
            .collect(),
    )
}

fn char_index(s: &str, byte: usize) -> i64 {
    s.get(..byte).map_or(-1, |p| p.chars().count() as i64)
}

fn string_method(ev: &mut Eval, s: &Rc<str>, name: &str, args: &[Value]) -> Result<Value> {
    let a0 = text(args, 0);
    let produced = |ev: &mut Eval, out: String| -> Result<Value> {
        ev.charge(out.len())?;
        Ok(Value::str(out))
    };
    Ok(match (name, args.len()) {
        ("length", 0) => Value::Int(s.chars().count() as i64),
        ("isEmpty", 0) => Value::Bool(s.is_empty()),
        ("toLowerCase", 0) => return produced(ev, s.to_lowercase()),
        ("toUpperCase", 0) => return produced(ev, s.to_uppercase()),
        ("trim", 0) => Value::str(s.trim_matches(|c: char| c <= ' ')),
        ("contains", 1) => Value::Bool(a0.is_some_and(|a| s.contains(a.as_str()))),
        ("startsWith", 1) => Value::Bool(a0.is_some_and(|a| s.starts_with(a.as_str()))),
        ("endsWith", 1) => Value::Bool(a0.is_some_and(|a| s.ends_with(a.as_str()))),
        ("equalsIgnoreCase", 1) => {
            Value::Bool(a0.is_some_and(|a| a.to_lowercase() == s.to_lowercase()))
        }
        ("indexOf", 1 | 2) => {
            let Some(a) = a0 else {
                return Ok(Value::Int(-1));
            };
            let from = int(args, 1).unwrap_or(0).max(0) as usize;
            let start = s.char_indices().nth(from).map_or(s.len(), |(b, _)| b);
            let found = s.get(start..).and_then(|rest| rest.find(a.as_str()));
            Value::Int(found.map_or(-1, |b| char_index(s, start + b)))
        }
        ("lastIndexOf", 1) => {
            let Some(a) = a0 else {
                return Ok(Value::Int(-1));
            };
            Value::Int(s.rfind(a.as_str()).map_or(-1, |b| char_index(s, b)))
        }
        ("charAt", 1) => {
            let i = int(args, 0).unwrap_or(-1);
            match usize::try_from(i).ok().and_then(|i| s.chars().nth(i)) {
                Some(c) => Value::str(c.to_string()),
                None => return Err(failed(format!("charAt({i}): index out of range"))),
            }
        }
        ("substring", 1 | 2) => {
            let len = s.chars().count() as i64;
            let from = int(args, 0).unwrap_or(-1);
            let to = if args.len() == 2 {
                int(args, 1).unwrap_or(-1)
            } else {
                len
            };
            match char_range(s, from, to) {
                Some(out) => Value::str(out),
                None => {
                    return Err(failed(format!(
                        "substring({from}, {to}) is out of range for a string of length {len}"
                    )))
                }
            }
        }
        ("concat", 1) => return produced(ev, format!("{s}{}", a0.unwrap_or_default())),
        ("replace", 2) => {
            let (Some(from), Some(to)) = (a0, text(args, 1)) else {
                return Ok(Value::Null);
            };
            return produced(ev, s.replace(from.as_str(), &to));
        }
        ("replaceAll" | "replaceFirst", 2) => {
            let (Some(pattern), Some(to)) = (a0, text(args, 1)) else {
                return Ok(Value::Null);
            };
            let re = ev.regex(&pattern)?;
            let to = java_replacement(&to);
            let out = if name == "replaceAll" {
                re.replace_all(s, to.as_str()).into_owned()
            } else {
                re.replace(s, to.as_str()).into_owned()
            };
            return produced(ev, out);
        }
        ("matches", 1) => {
            let Some(pattern) = a0 else {
                return Ok(Value::Bool(false));
            };
            let re = ev.regex(&anchored(&pattern))?;
            Value::Bool(re.is_match(s))
        }
        ("split", 1) => {
            let Some(pattern) = a0 else {
                return Ok(Value::Null);
            };
            let re = ev.regex(&pattern)?;
            let mut parts: Vec<&str> = re.split(s).collect();
            // Java drops a leading empty string left by a zero-width match at the start,
            // and all trailing empty strings.
            if parts.len() > 1
                && parts.first() == Some(&"")
                && re.find(s).is_some_and(|m| m.is_empty())
            {
                parts.remove(0);
            }
            while parts.len() > 1 && parts.last() == Some(&"") {
                parts.pop();
            }
            if s.is_empty() {
                parts = vec![""];
            }
            ev.charge(s.len() + parts.len() * 8)?;
            Value::list(parts.into_iter().map(Value::str).collect(), false)
        }
        _ => Value::Null,
    })
}

fn list_method(v: &Value, name: &str, args: &[Value]) -> Result<Value> {
    let Value::List(l) = v else {
        return Ok(Value::Null);
    };
    let a0 = args.first();
    Ok(match (name, args.len()) {
        ("size", 0) => Value::Int(l.items.borrow().len() as i64),
        ("isEmpty", 0) => Value::Bool(l.items.borrow().is_empty()),
        ("get", 1) => {
            let i = int(args, 0).unwrap_or(-1);
            let items = l.items.borrow();
            match usize::try_from(i).ok().and_then(|i| items.get(i)) {
                Some(v) => v.clone(),
                None => {
                    return Err(failed(format!(
                        "get({i}) is out of range for a list of size {}",
                        items.len()
                    )))
                }
            }
        }
        ("contains", 1) => {
            Value::Bool(a0.is_some_and(|a| l.items.borrow().iter().any(|x| x.loose_eq(a))))
        }
        ("indexOf", 1) => Value::Int(
            a0.and_then(|a| l.items.borrow().iter().position(|x| x.loose_eq(a)))
                .map_or(-1, |i| i as i64),
        ),
        ("add", 1) => {
            l.items
                .borrow_mut()
                .push(a0.cloned().unwrap_or(Value::Null));
            Value::Bool(true)
        }
        ("addAll", 1) => {
            if let Some(Value::List(other)) = a0 {
                let extra = other.items.borrow().clone();
                l.items.borrow_mut().extend(extra);
            }
            Value::Bool(true)
        }
        ("set", 2) => {
            let i = int(args, 0).and_then(|i| usize::try_from(i).ok());
            let mut items = l.items.borrow_mut();
            match i.and_then(|i| items.get_mut(i)) {
                Some(slot) => std::mem::replace(slot, args.get(1).cloned().unwrap_or(Value::Null)),
                None => return Err(failed("set(..) index out of range".into())),
            }
        }
        ("remove", 1) => {
            let i = int(args, 0).and_then(|i| usize::try_from(i).ok());
            let mut items = l.items.borrow_mut();
            match i.filter(|i| *i < items.len()) {
                Some(i) => items.remove(i),
                None => Value::Null,
            }
        }
        ("clear", 0) => {
            l.items.borrow_mut().clear();
            Value::Null
        }
        _ => Value::Null,
    })
}

fn map_method(v: &Value, name: &str, args: &[Value]) -> Result<Value> {
    let Value::Map(m) = v else {
        return Ok(Value::Null);
    };
    let key = text(args, 0);
    Ok(match (name, args.len()) {
        ("size", 0) => Value::Int(m.len() as i64),
        ("isEmpty", 0) => Value::Bool(m.is_empty()),
        ("get", 1) => key.and_then(|k| m.get(&k)).unwrap_or(Value::Null),
        ("containsKey", 1) => Value::Bool(key.is_some_and(|k| m.get(&k).is_some())),
        ("containsValue", 1) => Value::Bool(
            args.first()
                .is_some_and(|a| m.entries.borrow().iter().any(|(_, x)| x.loose_eq(a))),
        ),
        ("keySet", 0) => Value::list(
            m.entries
                .borrow()
                .iter()
                .map(|(k, _)| Value::Str(k.clone()))
                .collect(),
            false,
        ),
        ("values", 0) => Value::list(
            m.entries.borrow().iter().map(|(_, v)| v.clone()).collect(),
            false,
        ),
        ("entrySet", 0) => Value::list(
            m.entries
                .borrow()
                .iter()
                .map(|(k, v)| {
                    Value::map(vec![
                        (Rc::from("key"), Value::Str(k.clone())),
                        (Rc::from("value"), v.clone()),
                    ])
                })
                .collect(),
            false,
        ),
        ("put", 2) => match key {
            Some(k) => m
                .put(&k, args.get(1).cloned().unwrap_or(Value::Null))
                .unwrap_or(Value::Null),
            None => Value::Null,
        },
        ("putAll", 1) => {
            if let Some(Value::Map(other)) = args.first() {
                let entries = other.entries.borrow().clone();
                for (k, v) in entries {
                    m.put(&k, v);
                }
            }
            Value::Null
        }
        ("remove", 1) => key.and_then(|k| m.remove(&k)).unwrap_or(Value::Null),
        _ => Value::Null,
    })
}

fn number_method(v: &Value, name: &str) -> Value {
    let Some(n) = v.as_number() else {
        return Value::Null;
    };
    match name {
        "intValue" | "longValue" => Value::Int(n.as_f64() as i64),
        "doubleValue" | "floatValue" => Value::Float(n.as_f64()),
        _ => Value::Null,
    }
}

fn input_method(ev: &mut Eval, name: &str, args: &[Value]) -> Result<Value> {
    let input = ev.env.input;
    match (name, text(args, 0)) {
        ("path", Some(p)) => {
            let path = ev.path(&p)?;
            let body = ev.body_json()?;
            let (found, visited) = path.select_counted(&body);
            ev.work(visited)?;
            Ok(found)
        }
        ("json", Some(p)) => {
            let path = ev.path(&p)?;
            let body = ev.body_json()?;
            let (found, visited) = path.select_counted(&body);
            ev.work(visited)?;
            let mut out = String::new();
            super::value::write_json(&found, &mut out);
            ev.charge(out.len())?;
            Ok(Value::str(out))
        }
        ("params", None) if args.is_empty() => Ok(Value::map(vec![
            (Rc::from("path"), Value::string_map(input.path, false)),
            (
                Rc::from("querystring"),
                Value::string_map(input.querystring, false),
            ),
            (Rc::from("header"), Value::string_map(input.header, true)),
        ])),
        ("params", Some(n)) => {
            let found = input
                .path
                .iter()
                .chain(input.querystring)
                .find(|(k, _)| *k == n)
                .or_else(|| {
                    input
                        .header
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&n))
                });
            Ok(Value::str(found.map_or("", |(_, v)| v.as_str())))
        }
        _ => Ok(Value::Null),
    }
}

/// `$util.escapeJavaScript`.
pub fn escape_javascript(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for unit in s.encode_utf16() {
        match unit {
            0x27 => out.push_str("\\'"),
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x2f => out.push_str("\\/"),
            0x08 => out.push_str("\\b"),
            0x0a => out.push_str("\\n"),
            0x09 => out.push_str("\\t"),
            0x0c => out.push_str("\\f"),
            0x0d => out.push_str("\\r"),
            u if !(0x20..0x7f).contains(&u) => out.push_str(&format!("\\u{u:04X}")),
            u => out.push(char::from(u as u8)),
        }
    }
    out
}

/// `$util.urlEncode`: `application/x-www-form-urlencoded`, as Java's `URLEncoder`.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `$util.urlDecode`; `None` for a malformed escape (Java throws).
pub fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn util_method(ev: &mut Eval, name: &str, args: &[Value]) -> Result<Value> {
    let Some(s) = text(args, 0) else {
        return Ok(Value::Null);
    };
    let out = match name {
        "escapeJavaScript" => escape_javascript(&s),
        "urlEncode" => url_encode(&s),
        "urlDecode" => url_decode(&s)
            .ok_or_else(|| failed(format!("$util.urlDecode: malformed escape in `{s}`")))?,
        "base64Encode" => base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
        "base64Decode" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| failed(format!("$util.base64Decode: {e}")))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        "parseJson" => {
            ev.charge(s.len())?;
            return super::json::parse(&s).map_err(|e| failed(format!("$util.parseJson: {e}")));
        }
        _ => return Ok(Value::Null),
    };
    ev.charge(out.len())?;
    Ok(Value::str(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_javascript_as_commons_lang() {
        assert_eq!(
            escape_javascript("it's \"x\"\\/\n\té😀\u{1}"),
            "it\\'s \\\"x\\\"\\\\\\/\\n\\t\\u00E9\\uD83D\\uDE00\\u0001"
        );
    }

    #[test]
    fn url_coding_as_java() {
        assert_eq!(url_encode("a b&c=d/é*~"), "a+b%26c%3Dd%2F%C3%A9*%7E");
        assert_eq!(url_decode("a+b%26c%3dd").unwrap(), "a b&c=d");
        assert_eq!(url_decode("%zz"), None);
        assert_eq!(url_decode("%4"), None);
    }

    #[test]
    fn replacement_syntax() {
        assert_eq!(java_replacement("$1-\\$x$"), "${1}-$$x$$");
    }
}
