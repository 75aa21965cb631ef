//! Value encoding for the store: one format-version byte, then postcard.
//! A value with an unknown version is reported, never misread.

use super::StoreError;
use secmetrics_connectors::{Record, Time};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The encoding version written in front of every value.
pub const FORMAT_VERSION: u8 = 1;

/// The encoding version of values in the `records` tree: 2 since findings
/// carry `refs`. Version 1 records are still read (see [`decode_record`]).
pub const RECORD_FORMAT_VERSION: u8 = 2;

/// A record as stored, with bookkeeping times (microseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The current version of the record.
    pub record: Record,
    /// When the identity was first stored.
    pub first_seen_us: i64,
    /// When the stored version last changed.
    pub last_changed_us: i64,
    /// When a full resync found the source no longer returns it.
    pub gone_at_us: Option<i64>,
}

/// One change of a tracked field (status, severity, validity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Field name.
    pub field: String,
    /// Value before.
    pub old: String,
    /// Value after.
    pub new: String,
    /// When the change was observed (microseconds since the epoch).
    pub observed_at_us: i64,
}

impl HistoryEntry {
    /// The observation time.
    pub fn observed_at(&self) -> Time {
        time(self.observed_at_us)
    }
}

/// Microseconds since the epoch as a time (clamped to the epoch if absurd).
pub fn time(us: i64) -> Time {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Encode a value with the version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Serializing plain data into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("postcard encoding of store value"));
    out
}

/// Decode a versioned value.
pub fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::Corrupt {
                tree,
                message: e.to_string(),
            })
        }
        Some((v, _)) => Err(StoreError::Corrupt {
            tree,
            message: format!("unknown format version {v} (this build reads {FORMAT_VERSION})"),
        }),
        None => Err(StoreError::Corrupt {
            tree,
            message: "empty value".into(),
        }),
    }
}

/// Encode a stored record with the records' version byte.
pub fn encode_record(value: &StoredRecord) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT_VERSION];
    // Serializing plain data into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("postcard encoding of a stored record"));
    out
}

/// Decode a stored record of the current version, or of version 1 (written
/// before findings had `refs`: read with empty `refs`, rewritten in the
/// current version the next time the record changes).
pub fn decode_record(bytes: &[u8]) -> Result<StoredRecord, StoreError> {
    const TREE: &str = "records";
    let corrupt = |e: postcard::Error| StoreError::Corrupt {
        tree: TREE,
        message: e.to_string(),
    };
    match bytes.split_first() {
        Some((&RECORD_FORMAT_VERSION, body)) => postcard::from_bytes(body).map_err(corrupt),
        Some((&1, body)) => postcard::from_bytes::<super::legacy::StoredRecordV1>(body)
            .map(Into::into)
            .map_err(corrupt),
        Some((v, _)) => Err(StoreError::Corrupt {
            tree: TREE,
            message: format!(
                "unknown format version {v} (this build reads 1 and {RECORD_FORMAT_VERSION})"
            ),
        }),
        None => Err(StoreError::Corrupt {
            tree: TREE,
            message: "empty value".into(),
        }),
    }
}

/// Encode opaque bytes with the version byte.
pub fn encode_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(bytes);
    out
}

/// Decode opaque bytes written by [`encode_bytes`].
pub fn decode_bytes(tree: &'static str, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => Ok(body.to_vec()),
        _ => Err(StoreError::Corrupt {
            tree,
            message: "unknown format version".into(),
        }),
    }
}
