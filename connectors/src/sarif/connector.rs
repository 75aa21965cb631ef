//! The `sarif` connector: SARIF files in folders or globs, each mapped to an
//! asset by its path. Files are read oldest first, each once (until it
//! changes). A finding of an earlier scan that the next scan of the same
//! asset, tool and category no longer reports is resolved (`remediated`) at
//! that scan's time; the cursor keeps the last scan of each.
//!
//! The category of a run is what GitHub code scanning uses:
//! `automationDetails.id` up to its last `/` (see [`super::category_of`]);
//! a run without one takes the file's path relative to the configured root
//! it was found under, so distinct files never supersede each other while a
//! file written again at the same path does.

use super::{
    finding_id, to_finding, FindingContext, Occurrences, ReadError, SarifFile, SuppressionPolicy,
};
use crate::config_serde as env_serde;
use crate::connector::{Connector, Page, PageSink, StateChange, SyncMode, SyncOutcome};
use crate::files::{list_files, BadFiles, Stamp};
use crate::record::{
    Domain, Environment, Extra, Finding, Record, Severity, Status, Time, Validity,
};
use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Settings of a `sarif` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SarifSettings {
    /// Unique instance name; the `source` of its records.
    pub name: String,
    /// Folders (read recursively for `*.sarif` and `*.sarif.json`), files
    /// or glob patterns.
    pub paths: Vec<String>,
    /// Path pattern → asset, first match wins, e.g.
    /// `{ pattern = "/scans/payments/**", asset = "payments-api" }`.
    #[serde(default)]
    pub assets: Vec<AssetPattern>,
    /// Asset of files no pattern matches; without it they are skipped.
    #[serde(default)]
    pub default_asset: Option<String>,
    /// Environment by asset id.
    #[serde(default, deserialize_with = "env_serde::map")]
    pub environments: BTreeMap<String, Environment>,
    /// Environment of assets not in `environments`. Default production.
    #[serde(default = "env_serde::production", deserialize_with = "env_serde::one")]
    pub default_environment: Environment,
    /// How `suppressions[]` are read.
    #[serde(default)]
    pub suppressions: SuppressionPolicy,
    /// Records per committed page.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
}

fn default_page_size() -> usize {
    1000
}

/// One path pattern and the asset it maps to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetPattern {
    /// A glob over the file path as listed (`*` also crosses `/`).
    pub pattern: String,
    /// The asset id.
    pub asset: String,
}

impl SarifSettings {
    /// Build the connector (checks the patterns).
    pub fn build(self) -> Result<SarifConnector, Error> {
        let mut patterns = Vec::new();
        for a in &self.assets {
            let p = glob::Pattern::new(&a.pattern).map_err(|e| Error::Config {
                connector: self.name.clone(),
                message: format!("asset pattern {:?}: {e}", a.pattern),
            })?;
            patterns.push((p, a.asset.clone()));
        }
        if self.page_size == 0 {
            return Err(Error::Config {
                connector: self.name.clone(),
                message: "`page_size` must be at least 1".into(),
            });
        }
        Ok(SarifConnector {
            settings: self,
            patterns,
        })
    }
}

/// The `sarif` connector.
#[derive(Debug)]
pub struct SarifConnector {
    settings: SarifSettings,
    patterns: Vec<(glob::Pattern, String)>,
}

/// The cursor: the files read and the files that could not be. The last
/// scan of each asset, tool and category is kept in the connector's state,
/// one key per scan (see [`scan_key`]), written with the file that
/// replaces it: a file rewrites its own scans, not every scan ever read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SarifCursor {
    #[serde(default)]
    files: BTreeMap<String, Stamp>,
    /// Scan states as versions before keys of their own kept them (in the
    /// cursor): moved to the connector's state by the next pass.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scans: BTreeMap<String, ScanState>,
    /// Files that could not be read: counted again every pass until changed.
    #[serde(default, skip_serializing_if = "BadFiles::is_empty")]
    bad: BadFiles,
    /// A pass that starts over (`--full`, no or an unreadable cursor):
    /// the stored scan states are ignored, and deleted by the pass's first
    /// commit of the cursor (in the same write).
    #[serde(skip)]
    reset: bool,
}

/// The scan states one file's import reads and replaces: those of the
/// file's asset and tools, loaded from the connector's state on first use.
#[derive(Default)]
struct HeldScans {
    scans: BTreeMap<String, ScanState>,
    loaded: std::collections::HashSet<String>,
}

impl HeldScans {
    /// Load the scans of `prefix` (an asset and a tool) unless held.
    fn load(
        &mut self,
        connector: &str,
        sink: &dyn PageSink,
        reset: bool,
        prefix: &str,
    ) -> Result<(), Error> {
        if reset || !self.loaded.insert(prefix.to_string()) {
            return Ok(());
        }
        for (key, value) in sink.state(prefix)? {
            match serde_json::from_str::<ScanState>(&value) {
                Ok(state) => {
                    self.scans.insert(key, state);
                }
                // Treated as never read: the next scan of it resolves
                // nothing (it is not trusted to say what was open).
                Err(e) => tracing::warn!(connector, error = %e, "unreadable scan state ignored"),
            }
        }
        Ok(())
    }

    /// The scans of `prefix`, in key order.
    fn of<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a ScanState)> {
        self.scans
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ScanState {
    /// Scan time, microseconds since the epoch.
    t: i64,
    /// (rule id, title) pairs the findings refer to by index.
    #[serde(default)]
    rules: Vec<(Option<String>, Option<String>)>,
    /// Fingerprint (with `#n` for repeats) → what re-emitting the finding
    /// as resolved needs. Kept compact: 200,000 findings are a few MB.
    f: BTreeMap<String, Kept>,
}

/// (rule index, severity, opened at in microseconds, still open).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Kept(u32, Severity, i64, bool);

/// A scan state being built while a file is read.
#[derive(Default)]
struct ScanBuilder {
    state: ScanState,
    rule_index: HashMap<(Option<String>, Option<String>), u32>,
}

impl ScanBuilder {
    fn add(
        &mut self,
        key: String,
        rule: &Option<String>,
        title: &Option<String>,
        kept: (Severity, i64, bool),
    ) {
        let next = self.state.rules.len() as u32;
        let ix = *self
            .rule_index
            .entry((rule.clone(), title.clone()))
            .or_insert_with(|| {
                self.state.rules.push((rule.clone(), title.clone()));
                next
            });
        self.state.f.insert(key, Kept(ix, kept.0, kept.1, kept.2));
    }
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Imported {
    /// Read whole; its scan states and stamp are committed.
    Read,
    /// Left out: older than the last scan of its category, or no asset.
    Skipped,
    /// Not a readable SARIF log, or a result in it is malformed: skipped
    /// (pages of it committed before the fault stay), and its findings'
    /// identities are unknown. The reason names the file, line and column.
    Unreadable(String),
    /// The sink asked to stop between two pages of it.
    Interrupted,
}

/// Why reading a file's results stopped early.
enum Stop {
    Failed(Error),
    Cancelled,
}

/// The state key of a finding: its fingerprint, `#n` for the n-th repeat.
fn local_key(fingerprint: &str, occurrence: u32) -> String {
    if occurrence <= 1 {
        fingerprint.to_string()
    } else {
        format!("{fingerprint}#{occurrence}")
    }
}

fn micros(t: Time) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: i64) -> Time {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// The identity of "the same scan": asset, tool and the run's category
/// (`c:` + the `automationDetails` category, else `p:` + the file's path
/// relative to its configured root).
fn scan_key(asset: &str, tool: &str, category: &str) -> String {
    format!("{}{category}", scan_prefix(asset, tool))
}

/// The start of every scan key of `asset` and `tool`.
fn scan_prefix(asset: &str, tool: &str) -> String {
    format!("{asset}\u{1f}{tool}\u{1f}")
}

/// The category of a run: its `automationDetails` category, else the file's
/// relative path.
fn run_category(category: Option<&str>, relative: &str) -> String {
    match category {
        Some(c) => format!("c:{c}"),
        None => format!("p:{relative}"),
    }
}

/// `path` relative to the configured entry of `paths` it was found under:
/// below a folder, its path inside it; a file named directly, the entry as
/// written (two such files may share a name); a glob match, its path below
/// the glob's fixed leading folders.
pub fn relative_path(paths: &[String], path: &Path) -> String {
    for spec in paths {
        let root = Path::new(spec);
        let root: PathBuf = if root.is_file() {
            if root == path {
                return spec.clone();
            }
            continue;
        } else if root.is_dir() {
            root.to_path_buf()
        } else {
            root.components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                .collect()
        };
        if let Ok(rest) = path.strip_prefix(&root) {
            if !rest.as_os_str().is_empty() {
                return rest.display().to_string();
            }
        }
    }
    path.display().to_string()
}

impl SarifConnector {
    fn asset_of(&self, path: &Path) -> Option<String> {
        self.patterns
            .iter()
            .find(|(p, _)| p.matches_path(path))
            .map(|(_, a)| a.clone())
            .or_else(|| self.settings.default_asset.clone())
    }

    fn environment(&self, asset: &str) -> Environment {
        self.settings
            .environments
            .get(asset)
            .copied()
            .unwrap_or(self.settings.default_environment)
    }

    /// Commit a page; with the cursor, also the scan states `writes` (and
    /// the reset of a pass that starts over, on its first cursor).
    fn commit(
        &self,
        sink: &mut dyn PageSink,
        outcome: &mut SyncOutcome,
        records: Vec<Record>,
        cursor: Option<&mut SarifCursor>,
        writes: Vec<(String, Option<String>)>,
    ) -> Result<(), Error> {
        let encode = |e: serde_json::Error| Error::Source {
            connector: self.settings.name.clone(),
            message: format!("cannot encode the cursor: {e}"),
        };
        let committed = match cursor {
            Some(c) => {
                let text = serde_json::to_string(&*c).map_err(encode)?;
                let page = Page {
                    records,
                    cursor: Some(text),
                };
                if c.reset || !writes.is_empty() {
                    let state = StateChange {
                        reset: c.reset,
                        writes,
                    };
                    let committed = sink.commit_with_state(page, state)?;
                    c.reset = false;
                    committed
                } else {
                    sink.commit(page)?
                }
            }
            None => {
                debug_assert!(writes.is_empty(), "state is written with the cursor");
                sink.commit(Page {
                    records,
                    cursor: None,
                })?
            }
        };
        outcome.committed += committed;
        outcome.pages += 1;
        Ok(())
    }

    /// Import one file into `cur`, committing its pages.
    fn import(
        &self,
        path: &Path,
        stamp: Stamp,
        asset: &str,
        cur: &mut SarifCursor,
        sink: &mut dyn PageSink,
        outcome: &mut SyncOutcome,
    ) -> Result<Imported, Error> {
        let name = &self.settings.name;
        let file = match SarifFile::open(path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(connector = %name, error = %e, "SARIF file skipped");
                return Ok(Imported::Unreadable(e.to_string()));
            }
        };
        let relative = relative_path(&self.settings.paths, path);
        let fallback =
            chrono::DateTime::from_timestamp_millis(stamp.modified_ms).unwrap_or_default();
        // The scan key of each run, and the tool and scan time of each key.
        let mut scans: BTreeMap<String, (String, Time)> = BTreeMap::new();
        let mut run_keys: Vec<String> = Vec::with_capacity(file.runs.len());
        for run in &file.runs {
            let t = run.time.unwrap_or(fallback);
            let category = run_category(run.category.as_deref(), &relative);
            let key = scan_key(asset, run.tool(), &category);
            let e = scans
                .entry(key.clone())
                .or_insert_with(|| (run.tool().to_string(), t));
            e.1 = e.1.max(t);
            run_keys.push(key);
        }
        let mut held = HeldScans::default();
        for (tool, _) in scans.values() {
            held.load(name, &*sink, cur.reset, &scan_prefix(asset, tool))?;
        }
        for (key, (tool, t)) in &scans {
            if let Some(prev) = held.scans.get(key) {
                if prev.t > micros(*t) {
                    tracing::warn!(connector = %name, path = %path.display(), tool, "scan older than the last one read for this asset, tool and category; skipped");
                    return Ok(Imported::Skipped);
                }
            }
        }
        let ctx = FindingContext {
            source: name.clone(),
            asset: asset.to_string(),
            environment: self.environment(asset),
        };
        let mut current: HashMap<String, ScanBuilder> = HashMap::new();
        let mut occurrences = Occurrences::default();
        let mut page: Vec<Record> = Vec::with_capacity(self.settings.page_size.min(4096));
        let page_size = self.settings.page_size;
        let res = file.results(
            &self.settings.suppressions,
            fallback,
            |r| -> Result<(), Stop> {
                let key = run_keys.get(r.run).cloned().unwrap_or_default();
                let n = occurrences.next(&r.tool, &r.fingerprint);
                let id = finding_id(asset, &r.tool, &r.fingerprint, n);
                let local = local_key(&r.fingerprint, n);
                // The same finding id may be held by the last scan of this
                // category or (same asset and tool) of another one: the
                // earliest opening wins.
                let prefix = scan_prefix(asset, &r.tool);
                held.load(name, &*sink, cur.reset, &prefix)
                    .map_err(Stop::Failed)?;
                let prev_opened = held
                    .of(&prefix)
                    .filter_map(|(_, s)| s.f.get(&local).map(|k| k.2))
                    .min()
                    .map(from_micros);
                let opened = r.first_detected.or(prev_opened).unwrap_or(r.scan_time);
                let finding = to_finding(&ctx, &r, id, opened);
                current.entry(key).or_default().add(
                    local,
                    &r.rule_id,
                    &r.title,
                    (r.severity, micros(opened), r.status == Status::Open),
                );
                page.push(Record::Finding(finding));
                if page.len() >= page_size {
                    self.commit(sink, outcome, std::mem::take(&mut page), None, Vec::new())
                        .map_err(Stop::Failed)?;
                    // Checked between pages: the file is not marked read,
                    // so the next pass reads it again from the start.
                    if sink.cancelled() {
                        return Err(Stop::Cancelled);
                    }
                }
                Ok(())
            },
        );
        match res {
            Ok(_) => {}
            Err(ReadError::Stopped(Stop::Failed(e))) => return Err(e),
            Err(ReadError::Stopped(Stop::Cancelled)) => {
                outcome.interrupted = true;
                return Ok(Imported::Interrupted);
            }
            Err(ReadError::Sarif(e)) => {
                // A result the reader cannot take (a wrong type, bytes that
                // are not UTF-8): the file is reported and skipped until it
                // changes. Pages of it committed before stay (they are
                // true); its scan state is not replaced, so nothing is
                // resolved on the word of a file read in part.
                tracing::warn!(connector = %name, error = %e, "SARIF file skipped");
                return Ok(Imported::Unreadable(e.to_string()));
            }
        }
        // Replace the last scan of each key first, then resolve what the
        // new scan lacks, unless the last scan of another category of the
        // same asset and tool still reports it open (same finding id).
        let mut replaced = Vec::new();
        let mut writes = Vec::with_capacity(scans.len());
        for (key, (tool, t)) in scans {
            let mut now = current.remove(&key).unwrap_or_default().state;
            now.t = micros(t);
            let value = serde_json::to_string(&now).map_err(|e| Error::Source {
                connector: name.clone(),
                message: format!("cannot encode a scan state: {e}"),
            })?;
            writes.push((key.clone(), Some(value)));
            if let Some(prev) = held.scans.insert(key.clone(), now) {
                replaced.push((key, tool, t, prev));
            }
        }
        for (key, tool, t, prev) in replaced {
            let prefix = scan_prefix(asset, &tool);
            let open_elsewhere = |local: &String| {
                held.of(&prefix)
                    .filter(|(k, _)| **k != key)
                    .any(|(_, s)| s.f.get(local).is_some_and(|k| k.3))
            };
            let now = &held.scans[&key];
            for (local, kept) in &prev.f {
                if kept.3 && !now.f.contains_key(local) && !open_elsewhere(local) {
                    let rule = prev.rules.get(kept.0 as usize).cloned().unwrap_or_default();
                    page.push(Record::Finding(
                        self.resolved(&ctx, &tool, local, rule, kept, t),
                    ));
                }
            }
        }
        cur.files.insert(path.display().to_string(), stamp);
        cur.bad.set(&path.display().to_string(), 0, Vec::new());
        self.commit(sink, outcome, page, Some(cur), writes)?;
        Ok(Imported::Read)
    }

    fn resolved(
        &self,
        ctx: &FindingContext,
        tool: &str,
        local: &str,
        (rule, title): (Option<String>, Option<String>),
        kept: &Kept,
        at: Time,
    ) -> Finding {
        let (fingerprint, occurrence) = match local.split_once('#') {
            Some((fp, n)) => (fp, n.parse().unwrap_or(1)),
            None => (local, 1),
        };
        let mut extra = serde_json::Map::new();
        extra.insert("tool".into(), Value::String(tool.to_string()));
        if let Some(r) = rule {
            extra.insert("rule".into(), Value::String(r));
        }
        extra.insert(
            "resolved_by".into(),
            Value::String("absent_from_next_scan".into()),
        );
        Finding {
            id: finding_id(&ctx.asset, tool, fingerprint, occurrence),
            source: ctx.source.clone(),
            asset: ctx.asset.clone(),
            title,
            severity: kept.1,
            environment: ctx.environment,
            domain: Domain::Application,
            opened_at: from_micros(kept.2),
            status: Status::Remediated,
            resolved_at: Some(at),
            validity: Validity::Unverified,
            duplicate_of: None,
            // Unknown here (the scan state keeps no locations): the store
            // keeps the fingerprint it holds (see `keeps_first_opened`).
            fingerprint: None,
            url: None,
            refs: Vec::new(),
            extra: Extra(extra),
        }
    }
}

#[async_trait::async_trait]
impl Connector for SarifConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> &'static str {
        "sarif"
    }

    fn keeps_first_opened(&self) -> bool {
        true
    }

    async fn sync(
        &self,
        cursor: Option<String>,
        mode: SyncMode,
        sink: &mut dyn PageSink,
    ) -> Result<SyncOutcome, Error> {
        let name = &self.settings.name;
        let over = SarifCursor {
            reset: true,
            ..SarifCursor::default()
        };
        let mut cur: SarifCursor = match (mode, cursor.as_deref()) {
            (SyncMode::Full, _) | (_, None) => over,
            (_, Some(text)) => serde_json::from_str(text).unwrap_or_else(|e| {
                tracing::warn!(connector = %name, error = %e, "unreadable cursor; reading every file again");
                over
            }),
        };
        // Scan states of an older version were keyed by asset and tool only:
        // their category is unknown, so they are dropped (a `--full` pass
        // rebuilds every scan state from the files).
        let before = cur.scans.len();
        cur.scans.retain(|k, _| k.matches('\u{1f}').count() >= 2);
        if cur.scans.len() < before {
            tracing::warn!(connector = %name, dropped = before - cur.scans.len(), "scan states without a category dropped; run `sync --full` once so findings missing from later scans are resolved");
        }
        let mut outcome = SyncOutcome::default();
        // File reads and the sink's writes block: off the runtime's workers.
        crate::connector::blocking(|| -> Result<(), Error> {
            if !cur.scans.is_empty() {
                // A cursor of a version that kept the scans in it: each scan
                // moves to a key of its own, with the cursor, in one write.
                let writes = std::mem::take(&mut cur.scans)
                    .into_iter()
                    .map(|(k, v)| serde_json::to_string(&v).map(|v| (k, Some(v))))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::Source {
                        connector: name.clone(),
                        message: format!("cannot encode a scan state: {e}"),
                    })?;
                self.commit(sink, &mut outcome, Vec::new(), Some(&mut cur), writes)?;
            }
            let files = list_files(&self.settings.paths, &[".sarif", ".sarif.json"]);
            // Files no longer listed are forgotten (their stamps and problems):
            // the cursor holds what can still be read, not every path ever seen.
            let listed: std::collections::HashSet<String> =
                files.iter().map(|(p, _)| p.display().to_string()).collect();
            cur.bad.retain(&listed);
            cur.files.retain(|k, _| listed.contains(k));
            for (path, stamp) in files {
                let key = path.display().to_string();
                if cur.files.get(&key) == Some(&stamp) {
                    cur.bad.report(&key, &mut outcome);
                    continue;
                }
                if sink.cancelled() {
                    outcome.interrupted = true;
                    break;
                }
                outcome.requests += 1;
                let imported = match self.asset_of(&path) {
                    Some(asset) => {
                        self.import(&path, stamp, &asset, &mut cur, sink, &mut outcome)?
                    }
                    None => {
                        tracing::warn!(connector = %name, path = %key, "no asset pattern matches and no default_asset; file skipped");
                        Imported::Skipped
                    }
                };
                match imported {
                    Imported::Interrupted => break,
                    Imported::Read => {}
                    // Marked read with its stamp: a bad file is read again
                    // when it changes, not on every pass (but counted).
                    Imported::Unreadable(why) => {
                        outcome.unreadable_item(why.clone());
                        cur.bad.set(&key, 1, vec![why]);
                        cur.files.insert(key, stamp);
                        self.commit(sink, &mut outcome, Vec::new(), Some(&mut cur), Vec::new())?;
                    }
                    Imported::Skipped => {
                        outcome.skipped += 1;
                        cur.bad.set(&key, 0, Vec::new());
                        cur.files.insert(key, stamp);
                        self.commit(sink, &mut outcome, Vec::new(), Some(&mut cur), Vec::new())?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_path_is_below_the_configured_entry() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("ci").join("web");
        std::fs::create_dir_all(&sub).unwrap();
        let f = sub.join("x.sarif");
        std::fs::write(&f, "{}").unwrap();
        let d = dir.path().display().to_string();
        assert_eq!(
            relative_path(std::slice::from_ref(&d), &f),
            "ci/web/x.sarif"
        );
        let glob = format!("{d}/ci/*/*.sarif");
        assert_eq!(relative_path(&[glob], &f), "web/x.sarif");
        let named = f.display().to_string();
        assert_eq!(relative_path(std::slice::from_ref(&named), &f), named);
    }
}
