//! The `ndjson` connector: files in the public NDJSON record format of
//! `records.md`, read with [`crate::ndjson::read_stream`]. Each file is read
//! once until it changes; bad lines are logged with their line number and
//! skipped, the rest of the file still loads.

use crate::connector::{Connector, Page, PageSink, SyncMode, SyncOutcome};
use crate::files::{list_files, BadFiles, Stamp};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of an `ndjson` connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonSettings {
    /// Unique instance name; the `source` of its records.
    pub name: String,
    /// Folders (read recursively for `*.ndjson` and `*.jsonl`), files or
    /// glob patterns.
    pub paths: Vec<String>,
    /// Records per committed page.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Lines longer than this many bytes are rejected like any bad line
    /// (default 1 MiB).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

fn default_page_size() -> usize {
    1000
}

fn default_max_line_bytes() -> usize {
    crate::ndjson::DEFAULT_MAX_LINE_BYTES
}

impl NdjsonSettings {
    /// Build the connector.
    pub fn build(self) -> Result<NdjsonConnector, Error> {
        if self.page_size == 0 {
            return Err(Error::Config {
                connector: self.name.clone(),
                message: "`page_size` must be at least 1".into(),
            });
        }
        Ok(NdjsonConnector { settings: self })
    }
}

/// The `ndjson` connector.
#[derive(Debug)]
pub struct NdjsonConnector {
    settings: NdjsonSettings,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct NdjsonCursor {
    #[serde(default)]
    files: BTreeMap<String, Stamp>,
    /// Files read with bad lines: counted again every pass until changed.
    #[serde(default, skip_serializing_if = "BadFiles::is_empty")]
    bad: BadFiles,
}

#[async_trait::async_trait]
impl Connector for NdjsonConnector {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn kind(&self) -> &'static str {
        "ndjson"
    }

    async fn sync(
        &self,
        cursor: Option<String>,
        mode: SyncMode,
        sink: &mut dyn PageSink,
    ) -> Result<SyncOutcome, Error> {
        let mut cur: NdjsonCursor = match (mode, cursor.as_deref()) {
            (SyncMode::Full, _) | (_, None) => NdjsonCursor::default(),
            (_, Some(t)) => serde_json::from_str(t).unwrap_or_default(),
        };
        let mut outcome = SyncOutcome::default();
        // File reads and the sink's writes block: off the runtime's workers.
        crate::connector::blocking(|| self.read_files(&mut cur, sink, &mut outcome))?;
        Ok(outcome)
    }
}

impl NdjsonConnector {
    fn read_files(
        &self,
        cur: &mut NdjsonCursor,
        sink: &mut dyn PageSink,
        outcome: &mut SyncOutcome,
    ) -> Result<(), Error> {
        let name = self.settings.name.as_str();
        let files = list_files(&self.settings.paths, &[".ndjson", ".jsonl"]);
        // Files no longer listed are forgotten (their stamps and problems):
        // the cursor holds what can still be read, not every path ever seen.
        let listed: std::collections::HashSet<String> =
            files.iter().map(|(p, _)| p.display().to_string()).collect();
        cur.bad.retain(&listed);
        cur.files.retain(|k, _| listed.contains(k));
        for (path, stamp) in files {
            let key = path.display().to_string();
            if cur.files.get(&key) == Some(&stamp) {
                cur.bad.report(&key, outcome);
                continue;
            }
            if sink.cancelled() {
                outcome.interrupted = true;
                break;
            }
            outcome.requests += 1;
            let file = std::fs::File::open(&path).map_err(|source| Error::Io {
                path: key.clone(),
                source,
            })?;
            let mut page = Vec::new();
            let mut failure: Option<Error> = None;
            let mut bad_lines = Vec::new();
            let mut bad_count = 0u64;
            let opts = crate::ndjson::StreamOptions {
                origin: &key,
                default_source: name,
                max_line_bytes: self.settings.max_line_bytes,
            };
            let read = crate::ndjson::read_stream(
                std::io::BufReader::new(file),
                &opts,
                |_, mut record| {
                    record.set_source(name);
                    page.push(record);
                    if page.len() >= self.settings.page_size {
                        let records = std::mem::take(&mut page);
                        match sink.commit(Page {
                            records,
                            cursor: None,
                        }) {
                            Ok(c) => {
                                outcome.committed += c;
                                outcome.pages += 1;
                            }
                            Err(e) => {
                                failure = Some(e.into());
                                return Err(std::io::Error::other("sink refused a page"));
                            }
                        }
                    }
                    Ok(())
                },
                |e| {
                    tracing::warn!(connector = name, error = %e, "line skipped");
                    bad_count += 1;
                    if bad_lines.len() < crate::connector::MAX_PROBLEMS {
                        bad_lines.push(e.to_string());
                    }
                },
            );
            if let Some(e) = failure {
                return Err(e);
            }
            read.map_err(|source| Error::Io {
                path: key.clone(),
                source,
            })?;
            outcome.unreadable_items(bad_count, bad_lines.iter().cloned());
            cur.bad.set(&key, bad_count, bad_lines);
            cur.files.insert(key, stamp);
            let cursor = serde_json::to_string(&cur).map_err(|e| Error::Source {
                connector: name.to_string(),
                message: format!("cannot encode the cursor: {e}"),
            })?;
            outcome.committed += sink.commit(Page {
                records: page,
                cursor: Some(cursor),
            })?;
            outcome.pages += 1;
        }
        Ok(())
    }
}
