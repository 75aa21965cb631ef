//! Backups: `secmetrics export --all` writes everything the store holds,
//! above all what no source can give back (overrides and their log, record
//! history, gone records, KPI snapshots, the outbox, connector cursors,
//! digest fire times), and `import` of that file into an empty store
//! restores it exactly. The file is NDJSON: one object per line whose
//! `kind` starts with `$`, which no record kind of `records.md` does, so a
//! backup line can never be read as a record (or the other way round).
//!
//! Line kinds (times are RFC 3339 UTC with `Z`, to the microsecond):
//!
//! | kind | what |
//! |---|---|
//! | `$backup` | first line: `format` (of this file), `store_format`, `secmetrics` version, `created_at` |
//! | `$record` | a record (current or gone) in the `records.md` format under `record`, with `first_seen_at`, `last_changed_at`, `gone_at`; `exact` (the record in this build's own layout) only when `record` would not read back equal |
//! | `$history` | a change of status, severity, validity or tier: `record_kind`, `source`, `id`, `field`, `old`, `new`, `observed_at`; `source_change` when the source stamped it itself (part of its key: the same change read again is not written twice) |
//! | `$override` | an active override: `record_kind`, `source`, `id`, `validity`, `severity`, `reason`, `by`, `at`, `severity_before` |
//! | `$override_log` | one override set (`change: "set"`, fields as `$override`) or removed (`change: "removed"`, `by`, `at`), oldest first per record |
//! | `$snapshot` | a KPI pack as sent: `key` (a period, or `digest/NAME/PERIOD`) and `json`, the text byte for byte |
//! | `$outbox` | a digest entry: `digest`, `period`, `channel`, `state` (`pending`, `sending`, `sent`, `failed`, `unconfirmed`), `attempts`, `next_attempt_at`, `last_error`, `created_at`, `sent_at`, `payload` (`slack` messages or the `email`, images in base64) |
//! | `$cursor` | a connector's saved position: `connector`, `cursor`, `last_commit_at`, `last_success_at`, `last_error` |
//! | `$last_import` | the last import's time |
//! | `$digest_fired` | a digest's last handled schedule fire: `digest`, `at` |
//! | `$last_pass` | a connector's last sync pass as `status` shows it: `connector`, `pass` |
//! | `$meta` | any other fact the store keeps: `key`, `value_base64` |
//! | `$raw` | a value of a tree this build has no line for, of `connector_state` (connectors' own state, written beside the cursors), or a value in `cursors` that is no cursor state: `tree`, `key_base64`, `value_base64` |
//! | `$end` | last line: the number of lines of each kind, so a file cut short is refused |
//!
//! Within one record, `$history` and `$override_log` lines are in the order
//! they were written; otherwise lines may come in any order.

pub mod dump;
pub mod restore;
#[cfg(test)]
mod tests;

use crate::deliver::outbox::{Payload, State};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format of backup files this build writes and reads.
pub const BACKUP_FORMAT: u32 = 1;

/// A time kept as microseconds since the epoch, written as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At(pub i64);

impl Serialize for At {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = chrono::DateTime::from_timestamp_micros(self.0).ok_or_else(|| {
            serde::ser::Error::custom(format!("time out of range: {} µs", self.0))
        })?;
        s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl<'de> Deserialize<'de> for At {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        secmetrics_connectors::ndjson::parse_time(&text)
            .map(|t| At(t.timestamp_micros()))
            .map_err(serde::de::Error::custom)
    }
}

/// One line of a backup file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Line {
    /// The first line.
    #[serde(rename = "$backup")]
    Header(Header),
    /// A record with its bookkeeping times.
    #[serde(rename = "$record")]
    Record(RecordLine),
    /// A history entry.
    #[serde(rename = "$history")]
    History(HistoryLine),
    /// An active override.
    #[serde(rename = "$override")]
    Override(OverrideLine),
    /// An override set or removed.
    #[serde(rename = "$override_log")]
    OverrideLog(OverrideLogLine),
    /// A KPI snapshot.
    #[serde(rename = "$snapshot")]
    Snapshot(SnapshotLine),
    /// An outbox entry.
    #[serde(rename = "$outbox")]
    Outbox(OutboxLine),
    /// A connector cursor.
    #[serde(rename = "$cursor")]
    Cursor(CursorLine),
    /// The last import's time.
    #[serde(rename = "$last_import")]
    LastImport(LastImportLine),
    /// A digest's last handled fire.
    #[serde(rename = "$digest_fired")]
    DigestFired(DigestFiredLine),
    /// A connector's last pass.
    #[serde(rename = "$last_pass")]
    LastPass(LastPassLine),
    /// Another fact of the store.
    #[serde(rename = "$meta")]
    Meta(MetaLine),
    /// A value of a tree without a line kind of its own.
    #[serde(rename = "$raw")]
    Raw(RawLine),
    /// The last line.
    #[serde(rename = "$end")]
    End(EndLine),
}

impl Line {
    /// The line's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Line::Header(_) => "$backup",
            Line::Record(_) => "$record",
            Line::History(_) => "$history",
            Line::Override(_) => "$override",
            Line::OverrideLog(_) => "$override_log",
            Line::Snapshot(_) => "$snapshot",
            Line::Outbox(_) => "$outbox",
            Line::Cursor(_) => "$cursor",
            Line::LastImport(_) => "$last_import",
            Line::DigestFired(_) => "$digest_fired",
            Line::LastPass(_) => "$last_pass",
            Line::Meta(_) => "$meta",
            Line::Raw(_) => "$raw",
            Line::End(_) => "$end",
        }
    }
}

/// `$backup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`BACKUP_FORMAT`] of the build that wrote it.
    pub format: u32,
    /// The store format of that build.
    pub store_format: u32,
    /// Its version.
    pub secmetrics: String,
    /// When the backup was made.
    pub created_at: At,
    /// How to restore it, for a person reading the file.
    #[serde(default)]
    pub note: String,
}

/// `$record`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLine {
    /// When the identity was first stored.
    pub first_seen_at: At,
    /// When the stored version last changed.
    pub last_changed_at: At,
    /// When a full resync found the source no longer returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_at: Option<At>,
    /// The record, as `export` writes it.
    pub record: serde_json::Map<String, serde_json::Value>,
    /// The record in this build's layout, when `record` would not read back
    /// equal (a value the `records.md` reader refuses); wins over `record`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<serde_json::Value>,
}

/// `$history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryLine {
    /// The record's kind, as `records.md` spells it.
    pub record_kind: String,
    /// The record's source (connector instance).
    pub source: String,
    /// The record's id within its source.
    pub id: String,
    /// The field that changed.
    pub field: String,
    /// Value before.
    pub old: String,
    /// Value after.
    pub new: String,
    /// When the change was observed (or, stamped by the source, made).
    pub observed_at: At,
    /// The change's number when the source stamped it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_change: Option<u32>,
}

/// `$override` (and the fields of a `$override_log` line that sets one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideLine {
    /// The record's kind, as `records.md` spells it.
    pub record_kind: String,
    /// The record's source (connector instance).
    pub source: String,
    /// The record's id within its source.
    pub id: String,
    /// The validity the record takes.
    pub validity: String,
    /// The severity it takes, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Why.
    pub reason: String,
    /// Who.
    pub by: String,
    /// When it was set.
    pub at: At,
    /// The record's severity when it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_before: Option<String>,
}

/// `$override_log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideLogLine {
    /// The record's kind, as `records.md` spells it.
    pub record_kind: String,
    /// The record's source (connector instance).
    pub source: String,
    /// The record's id within its source.
    pub id: String,
    /// `set` or `removed`.
    pub change: String,
    /// Set: the validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<String>,
    /// Set: the severity, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Set: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who.
    pub by: String,
    /// When.
    pub at: At,
    /// Set: the record's severity then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_before: Option<String>,
}

/// `$snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotLine {
    /// The snapshot's key.
    pub key: String,
    /// The pack's JSON text, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// The bytes, when they are not UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_base64: Option<String>,
}

/// `$outbox`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxLine {
    /// Digest name.
    pub digest: String,
    /// Period label.
    pub period: String,
    /// Channel name.
    pub channel: String,
    /// Delivery state.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Earliest next attempt.
    pub next_attempt_at: At,
    /// Error of the last failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the entry was written.
    pub created_at: At,
    /// When it was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<At>,
    /// What is (or was) sent.
    pub payload: PayloadLine,
}

/// The rendered payload of an outbox entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PayloadLine {
    /// Slack messages.
    Slack {
        /// Message bodies (JSON object texts).
        messages: Vec<String>,
        /// How many were delivered.
        delivered: u32,
        /// Thread of the first message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread_ts: Option<String>,
        /// Channel override.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    /// One email.
    Email {
        /// Subject line.
        subject: String,
        /// Plain-text part.
        text: String,
        /// HTML part.
        html: String,
        /// Inline images.
        images: Vec<ImageLine>,
        /// Recipients.
        to: Vec<String>,
    },
}

/// An inline image of an email.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLine {
    /// Content id.
    pub cid: String,
    /// The image's bytes.
    pub bytes_base64: String,
}

/// `$cursor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorLine {
    /// Connector name.
    pub connector: String,
    /// Its opaque cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Last time a page was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_at: Option<At>,
    /// Last time a whole pass succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<At>,
    /// Last error of a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `$last_import`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastImportLine {
    /// When.
    pub at: At,
}

/// `$digest_fired`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestFiredLine {
    /// Digest name.
    pub digest: String,
    /// The last fire handled.
    pub at: At,
}

/// `$last_pass`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastPassLine {
    /// Connector name.
    pub connector: String,
    /// The pass as `status` shows it.
    pub pass: serde_json::Value,
}

/// `$meta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaLine {
    /// The fact's key.
    pub key: String,
    /// Its value.
    pub value_base64: String,
}

/// `$raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLine {
    /// Tree name.
    pub tree: String,
    /// The key.
    pub key_base64: String,
    /// The value, as stored (with its version byte).
    pub value_base64: String,
}

/// `$end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndLine {
    /// Lines of each kind between the header and this line.
    pub lines: BTreeMap<String, u64>,
}

/// The outbox state a backup names.
pub fn parse_state(s: &str) -> Option<State> {
    [
        State::Pending,
        State::Sent,
        State::Sending,
        State::Failed,
        State::Unconfirmed,
    ]
    .into_iter()
    .find(|st| st.as_str() == s)
}

impl From<&Payload> for PayloadLine {
    fn from(p: &Payload) -> Self {
        match p {
            Payload::Slack {
                messages,
                delivered,
                thread_ts,
                channel,
            } => PayloadLine::Slack {
                messages: messages.clone(),
                delivered: *delivered,
                thread_ts: thread_ts.clone(),
                channel: channel.clone(),
            },
            Payload::Email {
                subject,
                text,
                html,
                images,
                to,
            } => PayloadLine::Email {
                subject: subject.clone(),
                text: text.clone(),
                html: html.clone(),
                images: images
                    .iter()
                    .map(|(cid, bytes)| ImageLine {
                        cid: cid.clone(),
                        bytes_base64: BASE64.encode(bytes),
                    })
                    .collect(),
                to: to.clone(),
            },
        }
    }
}

impl PayloadLine {
    /// The payload; an error names what is wrong.
    pub fn payload(&self) -> Result<Payload, String> {
        Ok(match self {
            PayloadLine::Slack {
                messages,
                delivered,
                thread_ts,
                channel,
            } => Payload::Slack {
                messages: messages.clone(),
                delivered: *delivered,
                thread_ts: thread_ts.clone(),
                channel: channel.clone(),
            },
            PayloadLine::Email {
                subject,
                text,
                html,
                images,
                to,
            } => Payload::Email {
                subject: subject.clone(),
                text: text.clone(),
                html: html.clone(),
                images: images
                    .iter()
                    .map(|i| Ok((i.cid.clone(), unbase64("payload.images", &i.bytes_base64)?)))
                    .collect::<Result<_, String>>()?,
                to: to.clone(),
            },
        })
    }
}

/// Base64 text of bytes.
pub fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Bytes of base64 text; an error names the field.
pub fn unbase64(field: &str, text: &str) -> Result<Vec<u8>, String> {
    BASE64
        .decode(text)
        .map_err(|e| format!("field `{field}`: not base64: {e}"))
}
