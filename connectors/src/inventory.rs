//! `inventory`: the assets (tier, critical, product line, owner, in scope)
//! that are the KPIs' denominators, from a TOML or CSV file and optionally a
//! Backstage catalog (`GET /api/catalog/entities`, tier and owner from named
//! annotations). Both are read whole every pass and merged before anything
//! is written (the file wins for an id in both), so an unchanged inventory
//! writes nothing and a tier change is one history entry.
//!
//! A bad row or entity is reported once with its file and line (or entity
//! name) and the field; the rest load.

use crate::connector::{Connector, Page, PageSink, SyncMode, SyncOutcome};
use crate::http::{quota, url_with_query, Auth, Conditional, HttpClient, RetrySettings};
use crate::record::Record;
use crate::Error;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Settings of an `inventory` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySettings {
    /// Unique instance name; the `source` of its assets.
    pub name: String,
    /// A `.toml` file (`[[assets]]` tables) or a `.csv` file (a header
    /// row naming the columns), with the asset fields of records.md: `id`,
    /// `name`, `tier`, `critical`, `in_scope`, `product_line`, `owner`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A Backstage catalog to read assets from as well.
    #[serde(default)]
    pub backstage: Option<BackstageSettings>,
    /// The Backstage token inline (prefer `token_env` or `token_file`);
    /// sent as a Bearer token. Not needed when the catalog is open.
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Environment variable holding the Backstage token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the Backstage token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Assets per committed page.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
}

/// Where assets come from in a Backstage catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackstageSettings {
    /// The Backstage backend, e.g. `https://backstage.example.com`
    /// (`/api/catalog/entities` is appended).
    pub base_url: String,
    /// Entity kinds that are assets (one `filter=kind=…` each).
    #[serde(default = "default_kinds")]
    pub kinds: Vec<String>,
    /// Annotation holding the tier (1, 2 or 3; `tier1`, `tier-1` also read).
    pub tier_annotation: String,
    /// Tier of entities without the annotation; without it they are
    /// reported and skipped.
    #[serde(default)]
    pub default_tier: Option<u8>,
    /// Annotation holding the owner; default `spec.owner`.
    #[serde(default)]
    pub owner_annotation: Option<String>,
    /// Annotation saying `true`/`false` for crown jewels; default tier 1.
    #[serde(default)]
    pub critical_annotation: Option<String>,
    /// Annotation holding the product line; default `spec.system`.
    #[serde(default)]
    pub product_line_annotation: Option<String>,
    /// Annotation saying `false` for assets out of scope; default in scope.
    #[serde(default)]
    pub in_scope_annotation: Option<String>,
    /// Entities per request (`limit`).
    #[serde(default = "default_backstage_page")]
    pub page_size: u32,
    /// Requests per second.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Requests allowed at once before the rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Retries, timeouts and longest rate-limit wait.
    #[serde(default)]
    pub retry: RetrySettings,
}

fn default_page_size() -> usize {
    1000
}
fn default_kinds() -> Vec<String> {
    vec!["Component".into()]
}
fn default_backstage_page() -> u32 {
    500
}
fn default_rate() -> f64 {
    10.0
}
fn default_burst() -> u32 {
    10
}

impl InventorySettings {
    /// Build the connector. `token` is the resolved Backstage token.
    pub fn build(self, token: Option<SecretString>) -> Result<InventoryConnector, Error> {
        let cfg = |message: String| Error::Config {
            connector: self.name.clone(),
            message,
        };
        if self.path.is_none() && self.backstage.is_none() {
            return Err(cfg(
                "give `path` (a TOML or CSV file), [connectors.backstage], or both".into(),
            ));
        }
        if let Some(p) = &self.path {
            if format_of(p).is_none() {
                return Err(cfg(format!(
                    "`path` {}: the file must end in .toml or .csv",
                    p.display()
                )));
            }
        }
        if self.page_size == 0 {
            return Err(cfg("`page_size` must be at least 1".into()));
        }
        let backstage = match &self.backstage {
            None => None,
            Some(b) => {
                let base = b.base_url.trim_end_matches('/').to_string();
                reqwest::Url::parse(&base)
                    .map_err(|e| cfg(format!("`backstage.base_url` is not a URL: {e}")))?;
                if b.default_tier.is_some_and(|t| !(1..=3).contains(&t)) {
                    return Err(cfg("`backstage.default_tier` must be 1, 2 or 3".into()));
                }
                if b.kinds.is_empty() || !(1..=1000).contains(&b.page_size) {
                    return Err(cfg(
                        "`backstage.kinds` must name a kind and `page_size` be 1 to 1000".into(),
                    ));
                }
                let token = token.clone().or_else(|| self.token.clone());
                let auth = token.map(Auth::Bearer).unwrap_or(Auth::None);
                let mut headers = HeaderMap::new();
                headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
                let http = HttpClient::new(
                    &self.name,
                    quota(b.rate, b.burst).map_err(cfg)?,
                    auth,
                    headers,
                    b.retry.clone(),
                )?;
                Some((base, http))
            }
        };
        Ok(InventoryConnector {
            backstage,
            reported: Mutex::new(HashSet::new()),
            settings: self,
        })
    }
}

/// The `inventory` connector.
#[derive(Debug)]
pub struct InventoryConnector {
    settings: InventorySettings,
    backstage: Option<(String, HttpClient)>,
    reported: Mutex<HashSet<String>>,
}

#[derive(Clone, Copy)]
enum Format {
    Toml,
    Csv,
}

fn format_of(p: &Path) -> Option<Format> {
    match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "toml" => Some(Format::Toml),
        "csv" => Some(Format::Csv),
        _ => None,
    }
}

/// One asset read, or why not: (where, message).
type Row = Result<Record, (String, String)>;

/// Validate one asset object the way the NDJSON reader does (defaults,
/// enum checks, unknown fields kept in `extra`).
fn asset(mut map: Map<String, Value>, source: &str) -> Result<Record, String> {
    map.insert("kind".into(), Value::String("asset".into()));
    map.insert("source".into(), Value::String(source.into()));
    crate::ndjson::parse_object(map, source).map_err(|e| e.to_string())
}

/// Read the TOML inventory: `[[assets]]` tables.
fn read_toml(path: &Path, text: &str, source: &str) -> Result<Vec<Row>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        assets: Vec<Map<String, Value>>,
    }
    let file: File = toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file
        .assets
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let at = match m.get("id").and_then(Value::as_str) {
                Some(id) => format!("{}: assets[{i}] (id {id:?})", path.display()),
                None => format!("{}: assets[{i}]", path.display()),
            };
            asset(m, source).map_err(|e| (at, e))
        })
        .collect())
}

/// One CSV row: its first line's number and its cells.
type CsvRow = (usize, Vec<String>);

/// Split CSV text into rows; quoted cells may hold commas, doubled quotes
/// and line breaks. An error names the line of the row at fault.
fn csv_rows(text: &str) -> Result<Vec<CsvRow>, (usize, String)> {
    let mut rows = Vec::new();
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut line = 1usize;
    let mut row_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                cell.push(c);
            }
            (false, '"') if cell.is_empty() => {
                quoted = true;
                any = true;
            }
            (false, ',') => {
                cells.push(std::mem::take(&mut cell));
                any = true;
            }
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                cells.push(std::mem::take(&mut cell));
                if any || cells.iter().any(|c| !c.trim().is_empty()) {
                    rows.push((row_line, std::mem::take(&mut cells)));
                }
                cells.clear();
                any = false;
                line += 1;
                row_line = line;
            }
            (false, c) => {
                cell.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err((row_line, "a quoted cell is not closed".into()));
    }
    if any || !cell.is_empty() {
        cells.push(cell);
        rows.push((row_line, cells));
    }
    Ok(rows)
}

/// Read the CSV inventory: a header row, then one asset per row.
fn read_csv(path: &Path, text: &str, source: &str) -> Result<Vec<Row>, String> {
    let rows = csv_rows(text.trim_start_matches('\u{feff}'))
        .map_err(|(line, m)| format!("{}:{line}: {m}", path.display()))?;
    let mut rows = rows.into_iter();
    let Some((_, header)) = rows.next() else {
        return Ok(Vec::new());
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    if !header.iter().any(|h| h == "id") {
        return Err(format!(
            "{}:1: the header row has no `id` column",
            path.display()
        ));
    }
    let mut out = Vec::new();
    for (line, cells) in rows {
        let at = format!("{}:{line}", path.display());
        if cells.len() != header.len() {
            out.push(Err((
                at,
                format!("{} cells, the header has {}", cells.len(), header.len()),
            )));
            continue;
        }
        let mut map = Map::new();
        let mut bad = None;
        for (h, c) in header.iter().zip(cells) {
            let c = c.trim();
            if c.is_empty() {
                continue;
            }
            let v = match h.as_str() {
                "tier" => match c.parse::<u64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        bad = Some(format!("field `tier`: must be 1, 2 or 3, found {c:?}"));
                        break;
                    }
                },
                "critical" | "in_scope" => match c.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" => Value::Bool(true),
                    "false" | "no" | "0" => Value::Bool(false),
                    _ => {
                        bad = Some(format!("field `{h}`: expected true or false, found {c:?}"));
                        break;
                    }
                },
                _ => Value::String(c.to_string()),
            };
            map.insert(h.clone(), v);
        }
        out.push(match bad {
            Some(m) => Err((at, m)),
            None => asset(map, source).map_err(|e| (at, e)),
        });
    }
    Ok(out)
}

fn read_file(path: &Path, source: &str) -> Result<Vec<Row>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let rows = match format_of(path) {
        Some(Format::Toml) => read_toml(path, &text, source),
        Some(Format::Csv) => read_csv(path, &text, source),
        None => Err(format!("{}: not a .toml or .csv file", path.display())),
    };
    rows.map_err(|message| Error::Source {
        connector: source.to_string(),
        message,
    })
}

fn annotation<'a>(e: &'a Value, name: &str) -> Option<&'a str> {
    e.pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// One Backstage entity → an asset.
fn entity_asset(b: &BackstageSettings, e: &Value, source: &str) -> Row {
    let name = e.pointer("/metadata/name").and_then(Value::as_str);
    let Some(name) = name else {
        return Err(("an entity".into(), "`metadata.name` is missing".into()));
    };
    let ns = e
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let id = if ns == "default" {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    };
    let at = format!("entity {id:?}");
    let tier = match annotation(e, &b.tier_annotation) {
        Some(t) => {
            let digits = t.trim_start_matches(|c: char| !c.is_ascii_digit());
            match digits.parse::<u8>() {
                Ok(n @ 1..=3) => n,
                _ => {
                    return Err((
                        at,
                        format!(
                            "annotation `{}`: {t:?} is not tier 1, 2 or 3",
                            b.tier_annotation
                        ),
                    ))
                }
            }
        }
        None => match b.default_tier {
            Some(t) => t,
            None => {
                return Err((
                    at,
                    format!(
                        "annotation `{}` is missing (or set default_tier)",
                        b.tier_annotation
                    ),
                ))
            }
        },
    };
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id));
    m.insert("tier".into(), Value::from(tier));
    if let Some(t) = e.pointer("/metadata/title").and_then(Value::as_str) {
        m.insert("name".into(), Value::String(t.into()));
    }
    let owner = match &b.owner_annotation {
        Some(a) => annotation(e, a).map(str::to_string),
        None => e
            .pointer("/spec/owner")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if let Some(o) = owner {
        m.insert("owner".into(), Value::String(o));
    }
    let product_line = match &b.product_line_annotation {
        Some(a) => annotation(e, a).map(str::to_string),
        None => e
            .pointer("/spec/system")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if let Some(p) = product_line {
        m.insert("product_line".into(), Value::String(p));
    }
    for (key, ann) in [
        ("critical", &b.critical_annotation),
        ("in_scope", &b.in_scope_annotation),
    ] {
        if let Some(v) = ann.as_deref().and_then(|a| annotation(e, a)) {
            match v.to_ascii_lowercase().as_str() {
                "true" | "yes" => {
                    m.insert(key.into(), Value::Bool(true));
                }
                "false" | "no" => {
                    m.insert(key.into(), Value::Bool(false));
                }
                _ => {
                    return Err((
                        at,
                        format!(
                            "annotation `{}`: expected true or false, found {v:?}",
                            ann.as_deref().unwrap_or_default()
                        ),
                    ))
                }
            }
        }
    }
    if let Some(k) = e.get("kind").and_then(Value::as_str) {
        m.insert("backstage_kind".into(), Value::String(k.into()));
    }
    asset(m, source).map_err(|msg| (at, msg))
}

impl InventoryConnector {
    fn report(&self, at: &str, message: &str) {
        let key = format!("{at}|{message}");
        if self
            .reported
            .lock()
            .map(|mut r| r.insert(key))
            .unwrap_or(true)
        {
            tracing::warn!(connector = %self.settings.name, "{at}: {message}; skipped");
        }
    }

    async fn backstage_rows(
        &self,
        b: &BackstageSettings,
        base: &str,
        http: &HttpClient,
        outcome: &mut SyncOutcome,
    ) -> Result<Vec<Row>, Error> {
        let mut rows = Vec::new();
        let limit = b.page_size.to_string();
        let filters: Vec<String> = b
            .kinds
            .iter()
            .map(|k| format!("kind={}", k.to_ascii_lowercase()))
            .collect();
        let mut offset = 0u64;
        loop {
            let off = offset.to_string();
            let mut query: Vec<(&str, &str)> =
                filters.iter().map(|f| ("filter", f.as_str())).collect();
            query.push(("limit", &limit));
            query.push(("offset", &off));
            let url = url_with_query(base, "/api/catalog/entities", &query);
            outcome.requests += 1;
            let body = match http.get(&url, None).await? {
                Conditional::Modified(f) => f.body,
                Conditional::NotModified => Vec::new(),
            };
            let entities: Vec<Value> =
                serde_json::from_slice(&body).map_err(|e| Error::Source {
                    connector: self.settings.name.clone(),
                    message: format!("GET /api/catalog/entities: not a list of entities: {e}"),
                })?;
            let n = entities.len() as u64;
            rows.extend(
                entities
                    .iter()
                    .map(|e| entity_asset(b, e, &self.settings.name)),
            );
            if n < u64::from(b.page_size) {
                return Ok(rows);
            }
            offset += n;
        }
    }
}

#[async_trait::async_trait]
impl Connector for InventoryConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> &'static str {
        "inventory"
    }

    fn http_stats(&self) -> Option<crate::http::HttpStatsSnapshot> {
        self.backstage.as_ref().map(|(_, h)| h.stats().snapshot())
    }

    async fn sync(
        &self,
        _cursor: Option<String>,
        _mode: SyncMode,
        sink: &mut dyn PageSink,
    ) -> Result<SyncOutcome, Error> {
        let mut outcome = SyncOutcome::default();
        // Later wins: Backstage first, then the file.
        let mut rows: Vec<Row> = Vec::new();
        if let (Some((base, http)), Some(b)) = (&self.backstage, &self.settings.backstage) {
            rows.extend(self.backstage_rows(b, base, http, &mut outcome).await?);
        }
        if let Some(path) = self.settings.path.clone() {
            let source = self.settings.name.clone();
            outcome.requests += 1;
            let file_rows = tokio::task::spawn_blocking(move || read_file(&path, &source))
                .await
                .map_err(|e| Error::Source {
                    connector: self.settings.name.clone(),
                    message: format!("reading the inventory failed: {e}"),
                })??;
            rows.extend(file_rows);
        }
        let mut assets: BTreeMap<String, Record> = BTreeMap::new();
        for row in rows {
            match row {
                Ok(r) => {
                    assets.insert(r.id().to_string(), r);
                }
                Err((at, message)) => {
                    outcome.skipped += 1;
                    outcome.unreadable += 1;
                    self.report(&at, &message);
                }
            }
        }
        let records: Vec<Record> = assets.into_values().collect();
        for chunk in records.chunks(self.settings.page_size) {
            if sink.cancelled() {
                outcome.interrupted = true;
                return Ok(outcome);
            }
            outcome.committed += sink.commit(Page {
                records: chunk.to_vec(),
                cursor: None,
            })?;
            outcome.pages += 1;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_may_be_quoted_across_lines() {
        let rows = csv_rows("id,name\r\na,\"x, \"\"y\"\"\"\n\nb,\"two\nlines\"\nc,z").unwrap();
        assert_eq!(
            rows,
            vec![
                (1, vec!["id".to_string(), "name".into()]),
                (2, vec!["a".into(), "x, \"y\"".into()]),
                (4, vec!["b".into(), "two\nlines".into()]),
                (6, vec!["c".into(), "z".into()]),
            ]
        );
        assert_eq!(csv_rows("id\n\"open").unwrap_err().0, 2);
    }
}
