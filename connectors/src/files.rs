//! Local input files shared by the file-based connectors (`sarif`,
//! `ndjson`): listing folders, files and globs, and the stamp that tells
//! whether a file changed since it was last read.

use crate::connector::{SyncOutcome, MAX_PROBLEMS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files that held unreadable items (a malformed SARIF result, bad NDJSON
/// lines), kept in the connector's cursor with their stamp. A file is read
/// again only when it changes, but every pass still counts its unreadable
/// items, so the pass stays `partial` (and `--full` marks nothing gone)
/// until the file is fixed or removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BadFiles(BTreeMap<String, BadFile>);

/// What could not be read in one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BadFile {
    /// Unreadable items (lines, or 1 for a whole file).
    pub count: u64,
    /// The first of them, each naming its place and why.
    pub problems: Vec<String>,
}

impl BadFiles {
    /// Note `path` as read: clean when `count` is 0, else bad.
    pub fn set(&mut self, path: &str, count: u64, mut problems: Vec<String>) {
        if count == 0 {
            self.0.remove(path);
        } else {
            problems.truncate(MAX_PROBLEMS);
            self.0.insert(path.to_string(), BadFile { count, problems });
        }
    }

    /// Count the unreadable items of an unchanged file again.
    pub fn report(&self, path: &str, outcome: &mut SyncOutcome) {
        if let Some(b) = self.0.get(path) {
            outcome.unreadable_items(b.count, b.problems.iter().cloned());
        }
    }

    /// Forget files no longer listed.
    pub fn retain(&mut self, listed: &std::collections::HashSet<String>) {
        self.0.retain(|k, _| listed.contains(k));
    }

    /// True when no file is bad.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Size and modification time: a file is read again when either changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, milliseconds since the epoch.
    pub modified_ms: i64,
}

/// Files under `paths` (folders recursively, globs expanded), with stamps.
pub fn list_files(paths: &[String], extensions: &[&str]) -> Vec<(PathBuf, Stamp)> {
    fn wanted(p: &Path, extensions: &[&str]) -> bool {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        extensions.iter().any(|e| name.ends_with(e))
    }
    fn walk(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::warn!(path = %dir.display(), "cannot list folder");
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, extensions, out);
            } else if wanted(&p, extensions) {
                out.push(p);
            }
        }
    }
    let mut found = Vec::new();
    for spec in paths {
        let p = Path::new(spec);
        if p.is_dir() {
            walk(p, extensions, &mut found);
        } else if p.is_file() {
            found.push(p.to_path_buf());
        } else if spec.contains(['*', '?', '[']) {
            match glob::glob(spec) {
                Ok(it) => found.extend(it.flatten().filter(|p| p.is_file())),
                Err(e) => tracing::warn!(pattern = %spec, error = %e, "bad glob pattern"),
            }
        } else {
            tracing::warn!(path = %spec, "no such file or folder");
        }
    }
    let mut out: Vec<(PathBuf, Stamp)> = found
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            let modified_ms = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            Some((
                p,
                Stamp {
                    len: m.len(),
                    modified_ms,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| (a.1.modified_ms, &a.0).cmp(&(b.1.modified_ms, &b.0)));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}
