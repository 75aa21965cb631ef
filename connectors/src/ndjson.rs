//! Reading the public NDJSON record format of `records.md`: one JSON object
//! per line, validated field by field so an error names the field at fault.

use crate::record::*;
use chrono::DateTime;
use serde_json::{Map, Value};
use std::io::BufRead;

/// Why one line is not a valid record. `field` is the JSON key at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", field.as_deref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct FieldError {
    /// The field at fault, if the error concerns one.
    pub field: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

impl FieldError {
    fn at(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
}

/// A line of an NDJSON input that could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}:{line}: {error}")]
pub struct LineError {
    /// File name (or `-` / the connector) the line came from.
    pub origin: String,
    /// 1-based line number.
    pub line: usize,
    /// The problem.
    pub error: FieldError,
}

/// Parse one line of the normalized format. `default_source` fills `source`
/// when the line has none (`"import"` for files).
pub fn parse_line(line: &str, default_source: &str) -> Result<Record, FieldError> {
    let value: Value = serde_json::from_str(line).map_err(|e| FieldError {
        field: None,
        message: format!("not valid JSON: {e}"),
    })?;
    match value {
        Value::Object(map) => parse_object(map, default_source),
        other => Err(FieldError {
            field: None,
            message: format!("expected a JSON object, found {}", type_name(&other)),
        }),
    }
}

/// Parse one JSON object of the normalized format.
pub fn parse_object(map: Map<String, Value>, default_source: &str) -> Result<Record, FieldError> {
    let mut f = Fields { map };
    let kind_text = f.req_str("kind")?;
    let kind = Kind::parse(&kind_text).ok_or_else(|| {
        FieldError::at(
            "kind",
            format!(
                "unknown value {kind_text:?} (expected one of {})",
                Kind::expected()
            ),
        )
    })?;
    let id = f.req_str("id")?;
    if id.is_empty() {
        return Err(FieldError::at("id", "must not be empty"));
    }
    let source = f
        .opt_str("source")?
        .unwrap_or_else(|| default_source.to_string());
    let record = match kind {
        Kind::Asset => {
            let tier = f.req_tier()?;
            Record::Asset(Asset {
                name: f.opt_str("name")?.unwrap_or_else(|| id.clone()),
                critical: f.opt_bool("critical")?.unwrap_or(tier == 1),
                in_scope: f.opt_bool("in_scope")?.unwrap_or(true),
                product_line: f.opt_str("product_line")?,
                owner: f.opt_str("owner")?,
                tier,
                id,
                source,
                extra: f.extra()?,
            })
        }
        Kind::Repo => Record::Repo(Repo {
            repo_type: f
                .opt_enum("type", RepoType::parse, RepoType::expected)?
                .unwrap_or(RepoType::Repository),
            asset: f.opt_str("asset")?,
            in_scope: f.opt_bool("in_scope")?.unwrap_or(true),
            secret_scanning: f.opt_bool("secret_scanning")?,
            push_protection: f.opt_bool("push_protection")?,
            id,
            source,
            extra: f.extra()?,
        }),
        Kind::Finding => Record::Finding(Finding {
            asset: f.req_str("asset")?,
            title: f.opt_str("title")?,
            severity: f.req_enum("severity", Severity::parse, Severity::expected)?,
            environment: f
                .opt_enum("environment", Environment::parse, Environment::expected)?
                .unwrap_or(Environment::Production),
            domain: f
                .opt_enum("domain", Domain::parse, Domain::expected)?
                .unwrap_or(Domain::Application),
            opened_at: f.req_time("opened_at")?,
            status: f.req_enum("status", Status::parse, Status::expected)?,
            resolved_at: f.opt_time("resolved_at")?,
            validity: f
                .opt_enum("validity", Validity::parse, Validity::expected)?
                .unwrap_or(Validity::Unverified),
            duplicate_of: f.opt_str("duplicate_of")?,
            fingerprint: f.opt_str("fingerprint")?,
            url: f.opt_str("url")?,
            refs: f.opt_str_list("refs")?,
            id,
            source,
            extra: f.extra()?,
        }),
        Kind::Review => Record::Review(Review {
            asset: f.req_str("asset")?,
            review_type: f.req_enum("type", ReviewType::parse, ReviewType::expected)?,
            completed_at: f.req_time("completed_at")?,
            id,
            source,
            extra: f.extra()?,
        }),
        Kind::ThreatModel => Record::ThreatModel(ThreatModel {
            asset: f.req_str("asset")?,
            reviewed_at: f.req_time("reviewed_at")?,
            id,
            source,
            extra: f.extra()?,
        }),
        Kind::Exception => Record::Exception(Exception {
            asset: f.req_str("asset")?,
            opened_at: f.req_time("opened_at")?,
            expires_at: f.opt_time("expires_at")?,
            closed_at: f.opt_time("closed_at")?,
            findings: f.opt_str_list("findings")?,
            reason: f.opt_str("reason")?,
            id,
            source,
            extra: f.extra()?,
        }),
        Kind::Release => Record::Release(Release {
            asset: f.req_str("asset")?,
            at: f.req_time("at")?,
            gate: f.req_enum("gate", Gate::parse, Gate::expected)?,
            reason: f.opt_str("reason")?,
            id,
            source,
            extra: f.extra()?,
        }),
        Kind::SecretAlert => {
            // The secret value must never be kept, not even in `extra`.
            f.map.remove("secret");
            Record::SecretAlert(SecretAlert {
                repo: f.req_str("repo")?,
                secret_type: f.opt_str("secret_type")?,
                opened_at: f.req_time("opened_at")?,
                resolved_at: f.opt_time("resolved_at")?,
                resolution: f.opt_enum(
                    "resolution",
                    SecretResolution::parse,
                    SecretResolution::expected,
                )?,
                validity: f
                    .opt_enum("validity", SecretValidity::parse, SecretValidity::expected)?
                    .unwrap_or(SecretValidity::Unknown),
                push_protection_bypassed: f.opt_bool("push_protection_bypassed")?.unwrap_or(false),
                id,
                source,
                extra: f.extra()?,
            })
        }
        Kind::Incident => Record::Incident(Incident {
            asset: f.opt_str("asset")?,
            severity: f.opt_enum("severity", Severity::parse, Severity::expected)?,
            alerted_at: f.req_time("alerted_at")?,
            triaged_at: f.opt_time("triaged_at")?,
            contained_at: f.opt_time("contained_at")?,
            validated: f.opt_bool("validated")?,
            id,
            source,
            extra: f.extra()?,
        }),
    };
    Ok(record)
}

/// Parse an RFC 3339 time that carries an explicit offset.
pub fn parse_time(text: &str) -> Result<Time, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            if looks_offsetless(text) {
                format!("time {text:?} has no UTC offset (add `Z` or `+hh:mm`); times are never guessed")
            } else {
                format!("{text:?} is not an RFC 3339 time: {e}")
            }
        })
}

fn looks_offsetless(text: &str) -> bool {
    let Some(time_part) = text.get(10..) else {
        return false;
    };
    !(time_part.ends_with('Z')
        || time_part.ends_with('z')
        || time_part.contains('+')
        || time_part.get(1..).is_some_and(|t| t.contains('-')))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The remaining fields of one object; what is not taken ends in `extra`.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, key: &str) -> Option<Value> {
        match self.map.remove(key) {
            Some(Value::Null) | None => None,
            Some(v) => Some(v),
        }
    }

    fn req_str(&mut self, key: &str) -> Result<String, FieldError> {
        self.opt_str(key)?
            .ok_or_else(|| FieldError::at(key, "required field is missing"))
    }

    fn opt_str(&mut self, key: &str) -> Result<Option<String>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(FieldError::at(
                key,
                format!("expected a string, found {}", type_name(&other)),
            )),
        }
    }

    fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(FieldError::at(
                key,
                format!("expected true or false, found {}", type_name(&other)),
            )),
        }
    }

    fn req_tier(&mut self) -> Result<u8, FieldError> {
        match self.take("tier") {
            None => Err(FieldError::at("tier", "required field is missing")),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(t @ 1..=3) => Ok(t as u8),
                _ => Err(FieldError::at(
                    "tier",
                    format!("must be 1, 2 or 3, found {n}"),
                )),
            },
            Some(other) => Err(FieldError::at(
                "tier",
                format!("expected 1, 2 or 3, found {}", type_name(&other)),
            )),
        }
    }

    fn req_enum<T>(
        &mut self,
        key: &str,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Result<T, FieldError> {
        self.opt_enum(key, parse, expected)?
            .ok_or_else(|| FieldError::at(key, "required field is missing"))
    }

    fn opt_enum<T>(
        &mut self,
        key: &str,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Result<Option<T>, FieldError> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => parse(&s).map(Some).ok_or_else(|| {
                FieldError::at(
                    key,
                    format!("unknown value {s:?} (expected one of {})", expected()),
                )
            }),
        }
    }

    fn req_time(&mut self, key: &str) -> Result<Time, FieldError> {
        self.opt_time(key)?
            .ok_or_else(|| FieldError::at(key, "required field is missing"))
    }

    fn opt_time(&mut self, key: &str) -> Result<Option<Time>, FieldError> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => parse_time(&s).map(Some).map_err(|m| FieldError::at(key, m)),
        }
    }

    fn opt_str_list(&mut self, key: &str) -> Result<Vec<String>, FieldError> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    other => Err(FieldError::at(
                        &format!("{key}[{i}]"),
                        format!("expected a string, found {}", type_name(&other)),
                    )),
                })
                .collect(),
            Some(other) => Err(FieldError::at(
                key,
                format!("expected an array of strings, found {}", type_name(&other)),
            )),
        }
    }

    /// Everything not taken, merged with an explicit `extra` object.
    fn extra(&mut self) -> Result<Extra, FieldError> {
        let mut map = std::mem::take(&mut self.map);
        match map.remove("extra") {
            None | Some(Value::Null) => {}
            Some(Value::Object(inner)) => {
                for (k, v) in inner {
                    map.entry(k).or_insert(v);
                }
            }
            Some(other) => {
                return Err(FieldError::at(
                    "extra",
                    format!("expected an object, found {}", type_name(&other)),
                ))
            }
        }
        Ok(Extra(map))
    }
}

/// Read an NDJSON stream line by line, calling `on_record` for each good
/// record and `on_error` for each bad line; blank lines are skipped.
/// I/O errors stop the read and are returned.
pub fn read_stream<R: BufRead>(
    mut reader: R,
    origin: &str,
    default_source: &str,
    mut on_record: impl FnMut(usize, Record) -> std::io::Result<()>,
    mut on_error: impl FnMut(LineError),
) -> std::io::Result<()> {
    let mut buf = String::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        if reader.read_line(&mut buf)? == 0 {
            return Ok(());
        }
        line_no += 1;
        let line = buf.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, default_source) {
            Ok(record) => on_record(line_no, record)?,
            Err(error) => on_error(LineError {
                origin: origin.to_string(),
                line: line_no,
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_without_offset_is_rejected_with_its_field() {
        let e = parse_line(
            r#"{"kind":"review","id":"R1","asset":"a","type":"design","completed_at":"2026-10-01T00:00:00"}"#,
            "import",
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("completed_at"));
        assert!(e.message.contains("no UTC offset"), "{}", e.message);
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let t = parse_time("2026-10-01T02:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-01T00:00:00+00:00");
    }

    #[test]
    fn unknown_fields_are_kept_in_extra_and_defaults_apply() {
        let r = parse_line(
            r#"{"kind":"asset","id":"a1","tier":1,"cost_center":"42"}"#,
            "import",
        )
        .unwrap();
        let Record::Asset(a) = r else { panic!() };
        assert!(a.critical && a.in_scope);
        assert_eq!(a.name, "a1");
        assert_eq!(a.source, "import");
        assert_eq!(a.extra.0["cost_center"], "42");
    }

    #[test]
    fn unknown_enum_value_names_field_and_choices() {
        let e = parse_line(
            r#"{"kind":"finding","id":"f","asset":"a","severity":"urgent","opened_at":"2026-01-01T00:00:00Z","status":"open"}"#,
            "import",
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("severity"));
        assert!(e.message.contains("\"urgent\""));
        assert!(e.message.contains("critical, high, medium, low, info"));
    }

    #[test]
    fn finding_refs_are_read_written_and_checked() {
        let line = r#"{"kind":"finding","id":"T-1","asset":"a","severity":"high","opened_at":"2026-01-01T00:00:00Z","status":"open","refs":["https://scanner/1","https://scanner/2"]}"#;
        let r = parse_line(line, "jira").unwrap();
        let Record::Finding(f) = &r else {
            panic!("not a finding")
        };
        assert_eq!(f.refs, vec!["https://scanner/1", "https://scanner/2"]);
        assert!(f.extra.is_empty(), "refs is a field, not extra");
        let json = r.to_json();
        assert_eq!(json["refs"][1], "https://scanner/2");
        assert_eq!(
            parse_object(json.as_object().unwrap().clone(), "x").unwrap(),
            r
        );
        let e = parse_line(&line.replace("\"https://scanner/1\"", "7"), "jira").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("refs[0]"));
        // No refs: none written back.
        let r = parse_line(
            &line.replace(r#","refs":["https://scanner/1","https://scanner/2"]"#, ""),
            "jira",
        )
        .unwrap();
        assert!(r.to_json().get("refs").is_none());
    }

    #[test]
    fn secret_value_is_dropped_even_from_extra() {
        let r = parse_line(
            r#"{"kind":"secret_alert","id":"1","repo":"o/r","opened_at":"2026-01-01T00:00:00Z","secret":"ghp_leak"}"#,
            "import",
        )
        .unwrap();
        assert!(!format!("{r:?}").contains("ghp_leak"));
    }

    #[test]
    fn storage_encoding_round_trips_extra_and_times() {
        let r = parse_line(
            r#"{"kind":"finding","id":"f","asset":"a","severity":"high","opened_at":"2026-01-01T00:00:00.123456Z","status":"open","x":{"y":[1,2]}}"#,
            "import",
        )
        .unwrap();
        let json = r.to_json();
        assert_eq!(json["x"], serde_json::Value::Null);
        assert_eq!(json["extra"]["x"]["y"][1], 2);
        assert_eq!(json["opened_at"], "2026-01-01T00:00:00.123456Z");
        let back = parse_object(json.as_object().unwrap().clone(), "other").unwrap();
        assert_eq!(back, r);
    }
}
