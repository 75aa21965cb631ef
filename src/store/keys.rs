//! Key layouts. A record key is `kind tag, source length (u16 BE), source,
//! id`, so one kind or one source is a prefix scan and any bytes may appear
//! in ids. A history key is the record key, length-prefixed, then the
//! write batch's id (monotonic across restarts) and the entry's number in
//! the batch, so one record's history is a prefix scan in observation order.

use secmetrics_connectors::Kind;

/// The key of a record identity.
pub fn record_key(kind: Kind, source: &str, id: &str) -> Vec<u8> {
    let source = &source.as_bytes()[..source.len().min(u16::MAX as usize)];
    let mut key = Vec::with_capacity(3 + source.len() + id.len());
    key.push(kind.tag());
    key.extend_from_slice(&(source.len() as u16).to_be_bytes());
    key.extend_from_slice(source);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Split a record key into (kind, source, id).
pub fn parse_record_key(key: &[u8]) -> Option<(Kind, String, String)> {
    let kind = Kind::from_tag(*key.first()?)?;
    let len = u16::from_be_bytes([*key.get(1)?, *key.get(2)?]) as usize;
    let source = key.get(3..3 + len)?;
    let id = key.get(3 + len..)?;
    Some((
        kind,
        String::from_utf8_lossy(source).into_owned(),
        String::from_utf8_lossy(id).into_owned(),
    ))
}

/// The prefix shared by all history entries of one record.
pub fn history_prefix(record_key: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + record_key.len());
    key.extend_from_slice(&(record_key.len() as u32).to_be_bytes());
    key.extend_from_slice(record_key);
    key
}

/// The key of one history entry.
pub fn history_key(record_key: &[u8], batch: u64, seq: u32) -> Vec<u8> {
    let mut key = history_prefix(record_key);
    key.extend_from_slice(&batch.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of a history entry the source stamped with its own time: the
/// top bit of the batch part set (so it never meets a write batch's id),
/// then the change's time in microseconds and a number from the change
/// itself. The same change sent again gets the same key.
pub fn source_history_key(record_key: &[u8], at_us: i64, seq: u32) -> Vec<u8> {
    history_key(record_key, (1 << 63) | (at_us.max(0) as u64), seq)
}

/// The record identity a history key belongs to.
pub fn parse_history_key(key: &[u8]) -> Option<(Kind, String, String)> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    parse_record_key(key.get(4..4 + len)?)
}

/// Split a history (or override-log) key into its record key, its batch
/// part and its number in the batch.
pub fn split_history_key(key: &[u8]) -> Option<(&[u8], u64, u32)> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    let record = key.get(4..4 + len)?;
    let rest = key.get(4 + len..)?;
    if rest.len() != 12 {
        return None;
    }
    let batch = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let seq = u32::from_be_bytes(rest[8..].try_into().ok()?);
    Some((record, batch, seq))
}

/// True when a history key's batch part marks an entry the source stamped
/// with its own time (see [`source_history_key`]).
pub fn is_source_stamped(batch: u64) -> bool {
    batch & (1 << 63) != 0
}

/// The key of a connector's state entry: `connector \0 key` (connector
/// names hold no NUL), so one connector's keys are one prefix.
pub fn state_key(connector: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(connector.len() + 1 + key.len());
    k.extend_from_slice(connector.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_round_trip_with_any_bytes_in_ids() {
        let k = record_key(Kind::Finding, "sast", "a/b\0c");
        assert_eq!(
            parse_record_key(&k),
            Some((Kind::Finding, "sast".into(), "a/b\0c".into()))
        );
        let h = history_key(&k, 7, 1);
        assert!(h.starts_with(&history_prefix(&k)));
        assert_eq!(parse_history_key(&h).unwrap().2, "a/b\0c");
    }
}
