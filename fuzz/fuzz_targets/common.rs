//! What every target checks of the records a parser produced, besides
//! "no panic": a record survives `secmetrics export` and `import`
//! unchanged, and no secret alert keeps a `secret` value.

#![allow(dead_code)]

use secmetrics_connectors::{ndjson, Record};
use serde_json::Value;

/// Check one record a parser produced.
pub fn check_record(r: &Record) {
    let json = r.to_json();
    let line = json.to_string();
    let back = ndjson::parse_line(&line, "another-source")
        .unwrap_or_else(|e| panic!("the export of a parsed record does not import: {e}\n{line}"));
    if &back != r {
        // JSON floats are parsed best-effort (serde_json without
        // `float_roundtrip`): a number in `extra` may come back one unit in
        // the last place off. Anything else is a real difference.
        assert!(
            same(&json, &back.to_json()),
            "export and import changed the record:\nbefore {line}\nafter  {}",
            back.to_json()
        );
    }
    if let Record::SecretAlert(a) = r {
        assert!(
            !a.extra.0.contains_key("secret"),
            "a secret alert keeps `secret` in extra: {line}"
        );
    }
}

/// Equal JSON, floats within a relative 1e-15.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(p), Some(q)) if x.is_f64() || y.is_f64() => {
                (p - q).abs() <= 1e-15 * p.abs().max(q.abs())
            }
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
