//! Stored records of format version 1, written before findings carried
//! `refs`: read so that a store survives the upgrade, never written.

use super::codec::StoredRecord;
use secmetrics_connectors::record::micros;
use secmetrics_connectors::{
    Asset, Domain, Environment, Exception, Extra, Finding, Incident, Record, Release, Repo, Review,
    SecretAlert, Severity, Status, ThreatModel, Time, Validity,
};
use serde::{Deserialize, Serialize};

/// A finding as version 1 stored it (no `refs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingV1 {
    id: String,
    source: String,
    asset: String,
    title: Option<String>,
    severity: Severity,
    environment: Environment,
    domain: Domain,
    #[serde(with = "micros")]
    opened_at: Time,
    status: Status,
    #[serde(with = "micros::option")]
    resolved_at: Option<Time>,
    validity: Validity,
    duplicate_of: Option<String>,
    fingerprint: Option<String>,
    url: Option<String>,
    extra: Extra,
}

/// A record as version 1 stored it: the variants in the same order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RecordV1 {
    /// An asset.
    Asset(Asset),
    /// A repo.
    Repo(Repo),
    /// A finding without `refs`.
    Finding(FindingV1),
    /// A review.
    Review(Review),
    /// A threat model.
    ThreatModel(ThreatModel),
    /// An exception.
    Exception(Exception),
    /// A release.
    Release(Release),
    /// A secret alert.
    SecretAlert(SecretAlert),
    /// An incident.
    Incident(Incident),
}

/// [`StoredRecord`] of version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecordV1 {
    /// The record.
    pub record: RecordV1,
    /// When the identity was first stored.
    pub first_seen_us: i64,
    /// When the stored version last changed.
    pub last_changed_us: i64,
    /// When a full resync found the source no longer returns it.
    pub gone_at_us: Option<i64>,
}

impl From<StoredRecordV1> for StoredRecord {
    fn from(v: StoredRecordV1) -> StoredRecord {
        let record = match v.record {
            RecordV1::Asset(r) => Record::Asset(r),
            RecordV1::Repo(r) => Record::Repo(r),
            RecordV1::Finding(f) => Record::Finding(Finding {
                id: f.id,
                source: f.source,
                asset: f.asset,
                title: f.title,
                severity: f.severity,
                environment: f.environment,
                domain: f.domain,
                opened_at: f.opened_at,
                status: f.status,
                resolved_at: f.resolved_at,
                validity: f.validity,
                duplicate_of: f.duplicate_of,
                fingerprint: f.fingerprint,
                url: f.url,
                refs: Vec::new(),
                extra: f.extra,
            }),
            RecordV1::Review(r) => Record::Review(r),
            RecordV1::ThreatModel(r) => Record::ThreatModel(r),
            RecordV1::Exception(r) => Record::Exception(r),
            RecordV1::Release(r) => Record::Release(r),
            RecordV1::SecretAlert(r) => Record::SecretAlert(r),
            RecordV1::Incident(r) => Record::Incident(r),
        };
        StoredRecord {
            record,
            first_seen_us: v.first_seen_us,
            last_changed_us: v.last_changed_us,
            gone_at_us: v.gone_at_us,
        }
    }
}

/// Bytes as the build before `refs` stored a finding (tests of older stores).
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A version 1 stored finding with id `id` (source `import`).
    pub fn v1_finding_bytes(id: &str) -> Vec<u8> {
        let v1 = StoredRecordV1 {
            record: RecordV1::Finding(FindingV1 {
                id: id.into(),
                source: "import".into(),
                asset: "app".into(),
                title: None,
                severity: Severity::Low,
                environment: Environment::Production,
                domain: Domain::Application,
                opened_at: "2026-01-02T03:04:05Z".parse().unwrap(),
                status: Status::Open,
                resolved_at: None,
                validity: Validity::Valid,
                duplicate_of: None,
                fingerprint: None,
                url: None,
                extra: Extra::default(),
            }),
            first_seen_us: 1,
            last_changed_us: 2,
            gone_at_us: None,
        };
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_stdvec(&v1).unwrap());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec;

    #[test]
    fn a_version_1_finding_is_read_with_empty_refs() {
        let t: Time = "2026-01-02T03:04:05Z".parse().unwrap();
        let v1 = StoredRecordV1 {
            record: RecordV1::Finding(FindingV1 {
                id: "F-1".into(),
                source: "sast".into(),
                asset: "app".into(),
                title: Some("t".into()),
                severity: Severity::High,
                environment: Environment::Production,
                domain: Domain::Application,
                opened_at: t,
                status: Status::Open,
                resolved_at: None,
                validity: Validity::Valid,
                duplicate_of: None,
                fingerprint: Some("fp".into()),
                url: Some("https://x/1".into()),
                extra: Extra::default(),
            }),
            first_seen_us: 1,
            last_changed_us: 2,
            gone_at_us: None,
        };
        let mut bytes = vec![1u8];
        bytes.extend(postcard::to_stdvec(&v1).unwrap());
        let back = codec::decode_record(&bytes).expect("version 1 decodes");
        let Record::Finding(f) = &back.record else {
            panic!("not a finding: {back:?}");
        };
        assert_eq!(f.url.as_deref(), Some("https://x/1"));
        assert_eq!(f.fingerprint.as_deref(), Some("fp"));
        assert!(f.refs.is_empty());
        assert_eq!((back.first_seen_us, back.last_changed_us), (1, 2));
        // Written again, it is version 2 and reads back equal.
        let v2 = codec::encode_record(&back);
        assert_eq!(v2[0], codec::RECORD_FORMAT_VERSION);
        assert_eq!(codec::decode_record(&v2).unwrap(), back);
        // A newer version is reported, never misread.
        let mut v9 = v2.clone();
        v9[0] = 9;
        let e = codec::decode_record(&v9).unwrap_err().to_string();
        assert!(e.contains("unknown format version 9"), "{e}");
    }
}
