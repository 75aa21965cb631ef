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

/// A [`StoredRecord`] by reference: encodes to the same bytes without
/// cloning the record (the write path encodes, it never needs a copy).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StoredRecordRef<'a> {
    /// See [`StoredRecord::record`].
    pub record: &'a Record,
    /// See [`StoredRecord::first_seen_us`].
    pub first_seen_us: i64,
    /// See [`StoredRecord::last_changed_us`].
    pub last_changed_us: i64,
    /// See [`StoredRecord::gone_at_us`].
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
    encode_record_ref(&StoredRecordRef {
        record: &value.record,
        first_seen_us: value.first_seen_us,
        last_changed_us: value.last_changed_us,
        gone_at_us: value.gone_at_us,
    })
}

/// Encode a stored record given by reference (the same bytes as
/// [`encode_record`], without a copy of the record).
pub fn encode_record_ref(value: &StoredRecordRef<'_>) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_by_reference_encodes_to_the_same_bytes() {
        let record = secmetrics_connectors::ndjson::parse_line(
            r#"{"kind":"finding","id":"f","asset":"a","severity":"high","opened_at":"2026-01-01T00:00:00Z","status":"open","x":[1]}"#,
            "import",
        )
        .unwrap();
        let owned = StoredRecord {
            record: record.clone(),
            first_seen_us: 1,
            last_changed_us: 2,
            gone_at_us: Some(3),
        };
        let by_ref = StoredRecordRef {
            record: &record,
            first_seen_us: 1,
            last_changed_us: 2,
            gone_at_us: Some(3),
        };
        assert_eq!(encode_record(&owned), encode_record_ref(&by_ref));
        assert_eq!(decode_record(&encode_record_ref(&by_ref)).unwrap(), owned);
    }
}
