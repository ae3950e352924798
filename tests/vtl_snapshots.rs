//! Snapshot tests for the template engine, driven by the files in `tests/vtl/`.
//!
//! Each `.case` file has a description, then sections: `--- template`, optionally
//! `--- input` (what `$input` reads), `--- params` (`path.N=V`, `query.N=V`, `header.N=V`),
//! `--- stage` (stage variables `N=V`), `--- context` (`N=V`, dotted names nest), and the
//! expected `--- output` or `--- error`, closed by `--- end`. An empty expectation is filled
//! in on the first run; `UPDATE_SNAPSHOTS=1` rewrites every expectation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::rc::Rc;

use apigw_edge::mapping::{override_headers, override_maps, override_status};
use apigw_edge::vtl::{Env, Input, Template, Value};

struct Case {
    head: String,
    sections: Vec<(String, String)>,
}

fn parse(text: &str) -> Case {
    let mut head = String::new();
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("--- ") {
            let name = name.trim().to_string();
            if name == "end" {
                break;
            }
            sections.push((name, String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
        } else {
            head.push_str(line);
        }
    }
    for (_, body) in &mut sections {
        if body.ends_with('\n') {
            body.pop();
        }
    }
    Case { head, sections }
}

fn section<'a>(case: &'a Case, name: &str) -> Option<&'a str> {
    case.sections
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.as_str())
}

fn pairs(text: Option<&str>) -> Vec<(String, String)> {
    text.unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn context(sets: &[(String, String)]) -> Value {
    let ctx = Value::map(vec![
        (Rc::from("stage"), Value::str("test")),
        (Rc::from("httpMethod"), Value::str("POST")),
        (
            Rc::from("requestId"),
            Value::str("c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
        ),
    ]);
    let Value::Map(root) = &ctx else { panic!() };
    for (k, v) in override_maps() {
        root.put(&k, v);
    }
    for (k, v) in sets {
        root.put(k, Value::str(v.as_str()));
    }
    ctx
}

/// Renders a case: the output, or `ERROR: ...`.
fn run(case: &Case) -> (String, bool) {
    let template = section(case, "template").expect("a --- template section");
    let body = section(case, "input").unwrap_or_default();
    let params = pairs(section(case, "params"));
    let pick = |prefix: &str| -> Vec<(String, String)> {
        params
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
            .collect()
    };
    let (path, query, header) = (pick("path."), pick("query."), pick("header."));
    let t = match Template::compile(template) {
        Ok(t) => t,
        Err(e) => return (e.to_string(), false),
    };
    let env = Env {
        input: Input {
            body,
            path: &path,
            querystring: &query,
            header: &header,
        },
        context: context(&pairs(section(case, "context"))),
        stage_variables: Value::string_map(&pairs(section(case, "stage")), false),
    };
    match t.render(&env) {
        Ok(mut out) => {
            if let Some(status) = override_status(&env.context) {
                out.push_str(&format!("\n[responseOverride.status = {status}]"));
            }
            for (k, v) in override_headers(&env.context, "responseOverride") {
                out.push_str(&format!("\n[responseOverride.header.{k} = {v}]"));
            }
            (out, true)
        }
        Err(e) => (e.to_string(), false),
    }
}

fn write(path: &Path, case: &Case, result: &str, ok: bool) {
    let mut text = case.head.clone();
    for (name, body) in &case.sections {
        if name == "output" || name == "error" {
            continue;
        }
        text.push_str(&format!("--- {name}\n{body}\n"));
    }
    let kind = if ok { "output" } else { "error" };
    text.push_str(&format!("--- {kind}\n{result}\n--- end\n"));
    std::fs::write(path, text).unwrap();
}

#[test]
fn snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vtl");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "snapshot cases are missing");
    let mut failures = Vec::new();
    for path in &files {
        let case = parse(&std::fs::read_to_string(path).unwrap());
        let (result, ok) = run(&case);
        let expected = section(&case, "output")
            .map(|o| (o, true))
            .or(section(&case, "error").map(|e| (e, false)));
        match expected {
            Some((want, want_ok)) if !(update || want.is_empty() && want_ok == ok) => {
                if (want, want_ok) != (result.as_str(), ok) {
                    failures.push(format!(
                        "{}:\n--- expected ({})\n{want}\n--- got ({})\n{result}",
                        path.display(),
                        if want_ok { "output" } else { "error" },
                        if ok { "output" } else { "error" },
                    ));
                }
            }
            _ => write(path, &case, &result, ok),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
