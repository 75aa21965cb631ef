//! Jira's wire shapes as the connector reads them: search pages (Cloud's
//! token pages and Data Center's offset pages), issues with their fields
//! kept as JSON (custom field ids differ per site), changelogs, and the
//! small readers for Jira's values: `+0000` timestamps, dates, option and
//! user objects, and URLs in plain or ADF descriptions.

use crate::record::Time;
use chrono::{NaiveDate, TimeZone};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One search page, Cloud (`isLast`, `nextPageToken`) or Data Center
/// (`startAt`, `maxResults`, `total`).
#[derive(Debug, Deserialize)]
pub struct SearchPage {
    /// The issues, each read on its own so one bad issue spoils nothing.
    /// Required: a JSON answer without it (a gateway's message) fails the
    /// pass instead of reading as an empty last page.
    pub issues: Vec<Box<serde_json::value::RawValue>>,
    /// Cloud: true on the last page.
    #[serde(rename = "isLast", default)]
    pub is_last: Option<bool>,
    /// Cloud: the next page's token (absent or `""` on the last page).
    #[serde(rename = "nextPageToken", default)]
    pub next_page_token: Option<String>,
    /// Data Center: offset of this page.
    #[serde(rename = "startAt", default)]
    pub start_at: Option<u64>,
    /// Data Center: the page size the server used.
    #[serde(rename = "maxResults", default)]
    pub max_results: Option<u64>,
    /// Data Center: issues matching the query.
    #[serde(default)]
    pub total: Option<u64>,
}

/// One issue.
#[derive(Debug, Deserialize)]
pub struct IssueWire {
    /// The issue key, e.g. `SEC-12`.
    #[serde(default)]
    pub key: Option<String>,
    /// Fields by id.
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// The embedded changelog (`expand=changelog`).
    #[serde(default)]
    pub changelog: Option<Changelog>,
}

/// An embedded changelog.
#[derive(Debug, Default, Deserialize)]
pub struct Changelog {
    /// Offset of the first history.
    #[serde(rename = "startAt", default)]
    pub start_at: Option<u64>,
    /// Histories in all.
    #[serde(default)]
    pub total: Option<u64>,
    /// The histories embedded.
    #[serde(default)]
    pub histories: Vec<History>,
}

impl Changelog {
    /// True when the embedded histories are not all of them.
    pub fn truncated(&self) -> bool {
        self.start_at.unwrap_or(0) > 0
            || self.total.is_some_and(|t| t > self.histories.len() as u64)
    }
}

/// One page of `GET /issue/{key}/changelog`.
#[derive(Debug, Deserialize)]
pub struct ChangelogPage {
    /// Offset of this page.
    #[serde(rename = "startAt", default)]
    pub start_at: Option<u64>,
    /// Histories in all.
    #[serde(default)]
    pub total: Option<u64>,
    /// True on the last page.
    #[serde(rename = "isLast", default)]
    pub is_last: Option<bool>,
    /// The histories of this page (required, like a search page's
    /// `issues`).
    pub values: Vec<History>,
}

/// One history: the changes one person made at one time.
#[derive(Debug, Clone, Deserialize)]
pub struct History {
    /// When (Jira's time; a string, or epoch seconds in bulk fetches).
    #[serde(default)]
    pub created: Value,
    /// The changed fields.
    #[serde(default)]
    pub items: Vec<HistoryItem>,
}

impl History {
    /// The history's time, if readable.
    pub fn at(&self) -> Option<Time> {
        match &self.created {
            Value::String(s) => parse_jira_time(s).ok(),
            Value::Number(n) => {
                let n = n.as_i64()?;
                // Epoch seconds or milliseconds.
                let ms = if n.abs() < 100_000_000_000 {
                    n * 1000
                } else {
                    n
                };
                chrono::Utc
                    .timestamp_millis_opt(ms)
                    .single()
                    .and_then(|t| writable(t, "").ok())
            }
            _ => None,
        }
    }
}

/// One changed field of a history.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryItem {
    /// Field name (Data Center: the only key for custom fields).
    #[serde(default)]
    pub field: Option<String>,
    /// Field id (Cloud).
    #[serde(rename = "fieldId", default)]
    pub field_id: Option<String>,
    /// Old value id.
    #[serde(default)]
    pub from: Option<Value>,
    /// Old value as text.
    #[serde(rename = "fromString", default)]
    pub from_string: Option<String>,
    /// New value id.
    #[serde(default)]
    pub to: Option<Value>,
    /// New value as text.
    #[serde(rename = "toString", default)]
    pub to_string: Option<String>,
}

impl HistoryItem {
    /// True when this item changes the field with `id` (or `name`).
    pub fn is_field(&self, id: &str, name: &str) -> bool {
        match self.field_id.as_deref() {
            Some(f) => f.eq_ignore_ascii_case(id),
            None => self
                .field
                .as_deref()
                .is_some_and(|f| f.eq_ignore_ascii_case(name) || f.eq_ignore_ascii_case(id)),
        }
    }
}

/// Parse Jira's timestamps: RFC 3339, or with an offset without a colon
/// (`2021-09-06T04:34:26.204+0000`). Always UTC, in years 0000 to 9999
/// (what RFC 3339, and so `export` and `import`, can write).
pub fn parse_jira_time(s: &str) -> Result<Time, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return writable(t.to_utc(), s);
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, fmt) {
            return writable(t.to_utc(), s);
        }
    }
    Err(format!("{s:?} is not a Jira timestamp"))
}

/// `t` when its year is one RFC 3339 can write (0000 to 9999): chrono
/// reads `-026-04-01T00:00:00.000+0000` or a five-digit year, which no
/// record may carry (its export would not import).
fn writable(t: Time, s: &str) -> Result<Time, String> {
    use chrono::Datelike;
    if (0..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(format!("{s:?} is out of range (years 0000 to 9999)"))
    }
}

/// A date or date-time field value. A date without a time is midnight UTC
/// of that day, or of the next day with `end_of_day` (an expiry date
/// includes its day).
pub fn parse_date_value(s: &str, end_of_day: bool) -> Result<Time, String> {
    if let Ok(t) = parse_jira_time(s) {
        return Ok(t);
    }
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is neither a date (YYYY-MM-DD) nor a Jira timestamp"))?;
    let d = if end_of_day {
        d.succ_opt()
            .ok_or_else(|| format!("{s:?} is out of range"))?
    } else {
        d
    };
    writable(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(), s)
}

/// The text values of a field: strings, numbers, option objects (`value`),
/// named objects (`name`, `key`, `displayName`), and arrays of those.
pub fn values_of(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_values(v, &mut out);
    out
}

fn collect_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
        }
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(items) => items.iter().for_each(|i| collect_values(i, out)),
        Value::Object(o) => {
            for k in ["value", "name", "key", "displayName"] {
                if let Some(Value::String(s)) = o.get(k) {
                    if !s.trim().is_empty() {
                        out.push(s.trim().to_string());
                        return;
                    }
                }
            }
        }
        Value::Null => {}
    }
}

/// Every `http(s)://` URL in plain text (wiki markup `[text|url]` and
/// trailing punctuation are cut off).
pub fn urls_in_text(text: &str, out: &mut Vec<String>) {
    let mut rest = text;
    while let Some(i) = find_scheme(rest) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || "<>\"'|[]{}`\\^".contains(c))
            .unwrap_or(tail.len());
        let url = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        if url.len() > "https://".len() {
            out.push(url.to_string());
        }
        rest = &tail[end.max(1)..];
    }
}

fn find_scheme(s: &str) -> Option<usize> {
    match (s.find("https://"), s.find("http://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// URLs in a description: plain text (v2) or an ADF document (v3), whose
/// text nodes, link marks (`href`) and smart links (`url`) are read.
pub fn urls_in_description(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => urls_in_text(s, out),
        Value::Object(o) => {
            if let Some(Value::String(t)) = o.get("text") {
                urls_in_text(t, out);
            }
            if let Some(Value::Object(attrs)) = o.get("attrs") {
                for k in ["href", "url"] {
                    if let Some(Value::String(u)) = attrs.get(k) {
                        urls_in_text(u, out);
                    }
                }
            }
            for k in ["content", "marks"] {
                if let Some(Value::Array(items)) = o.get(k) {
                    items.iter().for_each(|i| urls_in_description(i, out));
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| urls_in_description(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jira_timestamps_without_a_colon_in_the_offset_parse_to_utc() {
        assert_eq!(
            parse_jira_time("2021-09-06T04:34:26.204+0000")
                .unwrap()
                .to_rfc3339(),
            "2021-09-06T04:34:26.204+00:00"
        );
        assert_eq!(
            parse_jira_time("2011-12-15T15:35:06.000+1300")
                .unwrap()
                .to_rfc3339(),
            "2011-12-15T02:35:06+00:00"
        );
        assert_eq!(
            parse_jira_time("2020-12-03T14:05:20.974+01:00")
                .unwrap()
                .to_rfc3339(),
            "2020-12-03T13:05:20.974+00:00"
        );
        assert!(parse_jira_time("2021-09-06T04:34:26").is_err());
        assert_eq!(
            parse_date_value("2026-12-31", true).unwrap().to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_date_value("2026-12-31", false).unwrap().to_rfc3339(),
            "2026-12-31T00:00:00+00:00"
        );
    }

    #[test]
    fn times_outside_the_years_rfc_3339_can_write_are_refused() {
        // Found by the `jira_page` fuzz target: chrono reads a signed or
        // five-digit year, and the record's export did not import.
        let e = parse_jira_time("-026-04-01T00:00:00.000+0000").unwrap_err();
        assert_eq!(
            e,
            "\"-026-04-01T00:00:00.000+0000\" is out of range (years 0000 to 9999)"
        );
        assert!(parse_jira_time("12026-04-01T00:00:00.000+0000").is_err());
        // An expiry on the last day of 9999 would end in the year 10000.
        assert!(parse_date_value("9999-12-31", true).is_err());
        assert!(parse_date_value("9999-12-31", false).is_ok());
        let h = History {
            created: json!(300_000_000_000_000i64),
            items: vec![],
        };
        assert_eq!(h.at(), None);
        assert!(parse_jira_time("0001-01-01T00:00:00.000+0000").is_ok());
    }

    #[test]
    fn urls_are_found_in_plain_wiki_and_adf_descriptions() {
        let mut out = Vec::new();
        urls_in_description(
            &json!("See [alert|https://github.com/acme/web/security/code-scanning/7]. Also https://x.example/a)."),
            &mut out,
        );
        assert_eq!(
            out,
            [
                "https://github.com/acme/web/security/code-scanning/7",
                "https://x.example/a"
            ]
        );
        let adf = json!({"type":"doc","version":1,"content":[{"type":"paragraph","content":[
            {"type":"text","text":"alert","marks":[{"type":"link","attrs":{"href":"https://github.com/acme/api/security/secret-scanning/3"}}]},
            {"type":"inlineCard","attrs":{"url":"https://github.com/acme/api/security/code-scanning/9"}},
            {"type":"text","text":" and http://plain.example/x"}]}]});
        let mut out = Vec::new();
        urls_in_description(&adf, &mut out);
        assert_eq!(
            out,
            [
                "https://github.com/acme/api/security/secret-scanning/3",
                "https://github.com/acme/api/security/code-scanning/9",
                "http://plain.example/x"
            ]
        );
    }

    #[test]
    fn field_values_read_options_users_and_arrays() {
        assert_eq!(values_of(&json!({"value": "High", "id": "1"})), ["High"]);
        assert_eq!(values_of(&json!([{"name": "a"}, "b", 3])), ["a", "b", "3"]);
        assert!(values_of(&Value::Null).is_empty());
    }
}
