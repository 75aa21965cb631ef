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
    /// The `kind` the line declares, when it can be read (for tallies).
    pub kind: Option<Kind>,
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
            // The secret value must never be kept, not even in `extra`:
            // neither a top-level `secret` nor one inside an explicit
            // `extra` object.
            f.map.remove("secret");
            if let Some(Value::Object(inner)) = f.map.get_mut("extra") {
                inner.remove("secret");
            }
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

/// Longest NDJSON line accepted unless configured otherwise: 1 MiB. A
/// record is a few hundred bytes; a line this long is a broken producer,
/// and holding it whole would let one line take the memory of thousands.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// Where an NDJSON stream comes from and how it is read.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions<'a> {
    /// File name, `-`, or what else names the input in errors.
    pub origin: &'a str,
    /// `source` of records whose line names none.
    pub default_source: &'a str,
    /// Lines longer than this many bytes (newline excluded) are rejected
    /// like any bad line, without being held in memory whole.
    pub max_line_bytes: usize,
}

/// One physical line as [`next_line`] read it.
enum RawLine {
    /// The line's bytes (without the newline) are in the buffer.
    Line,
    /// The line was longer than the limit; its length in bytes.
    TooLong(usize),
}

/// Read the next line into `buf` (cleared first), keeping at most `max`
/// bytes: a longer line is consumed to its end and reported by length.
/// `None` at the end of the input.
fn next_line<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<RawLine>> {
    buf.clear();
    let mut len = 0usize;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        any = true;
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if len + chunk.len() <= max {
            buf.extend_from_slice(chunk);
        }
        len += chunk.len();
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if len > max {
        buf.clear();
        return Ok(Some(RawLine::TooLong(len)));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(RawLine::Line))
}

/// The `kind` a rejected line declares, when it can be read at all.
fn declared_kind(line: &str) -> Option<Kind> {
    let v: Value = serde_json::from_str(line).ok()?;
    Kind::parse(v.get("kind")?.as_str()?)
}

/// Read an NDJSON stream line by line, calling `on_record` for each good
/// record and `on_error` for each bad line (not JSON, not a valid record,
/// not UTF-8, or longer than the limit); blank lines are skipped and a bad
/// line never stops the read. I/O errors stop it and are returned, as is
/// an error from `on_record`.
///
/// This is the one NDJSON line loop: `import`, the daemon's push endpoint
/// and the `ndjson` connector all read through it.
pub fn read_stream<R: BufRead>(
    mut reader: R,
    opts: &StreamOptions<'_>,
    mut on_record: impl FnMut(usize, Record) -> std::io::Result<()>,
    mut on_error: impl FnMut(LineError),
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    let max = opts.max_line_bytes.max(1);
    let fail = |line: usize, kind: Option<Kind>, message: String| LineError {
        origin: opts.origin.to_string(),
        line,
        kind,
        error: FieldError {
            field: None,
            message,
        },
    };
    while let Some(raw) = next_line(&mut reader, &mut buf, max)? {
        line_no += 1;
        let line = match raw {
            RawLine::TooLong(len) => {
                on_error(fail(
                    line_no,
                    None,
                    format!("line is {len} bytes, longer than the limit of {max} bytes"),
                ));
                continue;
            }
            RawLine::Line => match std::str::from_utf8(&buf) {
                Ok(l) => l,
                Err(e) => {
                    on_error(fail(
                        line_no,
                        None,
                        format!("not UTF-8 (invalid byte at column {})", e.valid_up_to() + 1),
                    ));
                    continue;
                }
            },
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line, opts.default_source) {
            Ok(record) => on_record(line_no, record)?,
            Err(error) => on_error(LineError {
                origin: opts.origin.to_string(),
                line: line_no,
                kind: declared_kind(line),
                error,
            }),
        }
    }
    Ok(())
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
    fn a_secret_inside_an_explicit_extra_is_dropped_too() {
        let r = parse_line(
            r#"{"kind":"secret_alert","id":"1","repo":"o/r","opened_at":"2026-01-01T00:00:00Z","extra":{"secret":"ghp_leak","note":"kept"}}"#,
            "import",
        )
        .unwrap();
        assert!(!format!("{r:?}").contains("ghp_leak"), "{r:?}");
        assert_eq!(r.extra().0["note"], "kept");
        // Other kinds have no secret value: their `extra` is kept whole.
        let f = parse_line(
            r#"{"kind":"asset","id":"a","tier":1,"extra":{"secret":"not one"}}"#,
            "import",
        )
        .unwrap();
        assert_eq!(f.extra().0["secret"], "not one");
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

    fn read_all(input: &[u8], max: usize) -> (Vec<(usize, String)>, Vec<LineError>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let opts = StreamOptions {
            origin: "in.ndjson",
            default_source: "import",
            max_line_bytes: max,
        };
        read_stream(
            input,
            &opts,
            |n, r| {
                good.push((n, r.id().to_string()));
                Ok(())
            },
            |e| bad.push(e),
        )
        .unwrap();
        (good, bad)
    }

    #[test]
    fn overlong_and_non_utf8_lines_are_rejected_and_the_rest_loads() {
        let ok = |id: &str| format!(r#"{{"kind":"asset","id":"{id}","tier":2}}"#);
        let long = format!(
            r#"{{"kind":"asset","id":"big","tier":2,"pad":"{}"}}"#,
            "x".repeat(300)
        );
        let mut input = Vec::new();
        input.extend_from_slice(ok("a1").as_bytes());
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(long.as_bytes());
        input.extend_from_slice(b"\n\n");
        input.extend_from_slice(b"{\"kind\":\"asset\",\"id\":\"\xff\"}\n");
        input.extend_from_slice(ok("a2").as_bytes());
        let (good, bad) = read_all(&input, 200);
        assert_eq!(good, vec![(1, "a1".to_string()), (5, "a2".to_string())]);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].line, 2);
        assert_eq!(
            bad[0].to_string(),
            format!(
                "in.ndjson:2: line is {} bytes, longer than the limit of 200 bytes",
                long.len()
            )
        );
        assert_eq!(bad[1].line, 4);
        assert_eq!(
            bad[1].to_string(),
            "in.ndjson:4: not UTF-8 (invalid byte at column 23)"
        );
    }

    #[test]
    fn a_line_exactly_at_the_limit_loads_and_kinds_of_bad_lines_are_named() {
        let line = r#"{"kind":"asset","id":"a","tier":1}"#;
        let (good, bad) = read_all(line.as_bytes(), line.len());
        assert_eq!((good.len(), bad.len()), (1, 0));
        let (good, bad) = read_all(line.as_bytes(), line.len() - 1);
        assert_eq!((good.len(), bad.len()), (0, 1));
        let (_, bad) = read_all(br#"{"kind":"review","id":"r"}"#, 1000);
        assert_eq!(bad[0].kind, Some(Kind::Review));
        assert_eq!(bad[0].error.field.as_deref(), Some("asset"));
    }
}
