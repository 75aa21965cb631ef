//! The normalized record types of `records.md`: the contract every connector
//! produces and every later stage (store, reconcile, KPIs) consumes.
//!
//! The serde derives here are the *storage* encoding (compact, externally
//! tagged, times as microseconds). The public NDJSON format is read by
//! [`crate::ndjson`] and written by [`Record::to_json`], which follow
//! `records.md` field by field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time, always UTC once parsed.
pub type Time = DateTime<Utc>;

/// Fields a record carried that the contract does not name, kept verbatim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra(pub serde_json::Map<String, serde_json::Value>);

impl Extra {
    /// True when no unknown field was kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// Binary formats cannot carry `serde_json::Value` (it needs
// `deserialize_any`), so the storage encoding holds `extra` as JSON text.
impl Serialize for Extra {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else if self.0.is_empty() {
            s.serialize_str("")
        } else {
            let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
            s.serialize_str(&text)
        }
    }
}

impl<'de> Deserialize<'de> for Extra {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Ok(Extra(serde_json::Map::deserialize(d)?))
        } else {
            let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
            if text.is_empty() || SKIP_EXTRA.with(std::cell::Cell::get) {
                return Ok(Extra::default());
            }
            serde_json::from_str(&text)
                .map(Extra)
                .map_err(serde::de::Error::custom)
        }
    }
}

thread_local! {
    static SKIP_EXTRA: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `decode` with the storage encoding's `extra` skipped (read past,
/// never parsed: every decoded record has an empty `extra`). For loading
/// what the KPI engine reads, which no `extra` field feeds: a million
/// records decode without a million small JSON parses.
pub fn without_extra<T>(decode: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            SKIP_EXTRA.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(SKIP_EXTRA.with(|s| s.replace(true)));
    decode()
}

/// Serde helpers that store times as microseconds since the epoch.
pub mod micros {
    use super::Time;
    use chrono::TimeZone;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Encode a time.
    pub fn serialize<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_micros())
    }

    /// Decode a time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let us = i64::deserialize(d)?;
        chrono::Utc
            .timestamp_micros(us)
            .single()
            .ok_or_else(|| serde::de::Error::custom("time out of range"))
    }

    /// The same for optional times.
    pub mod option {
        use super::Time;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Encode an optional time.
        pub fn serialize<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&t.timestamp_micros()),
                None => s.serialize_none(),
            }
        }

        /// Decode an optional time.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
            let us = Option::<i64>::deserialize(d)?;
            us.map(|us| {
                chrono::DateTime::from_timestamp_micros(us)
                    .ok_or_else(|| serde::de::Error::custom("time out of range"))
            })
            .transpose()
        }
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling (lowercase snake_case).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parse the wire spelling; `None` for an unknown value.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted spellings, for error messages.
            pub fn expected() -> String {
                [$($text),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The record kinds of `records.md`.
    Kind {
        /// An application, service or system.
        Asset = "asset",
        /// A repository or pipeline.
        Repo = "repo",
        /// A vulnerability or weakness.
        Finding = "finding",
        /// A completed security review.
        Review = "review",
        /// A threat model.
        ThreatModel = "threat_model",
        /// A risk acceptance or waiver.
        Exception = "exception",
        /// A release and its gate outcome.
        Release = "release",
        /// A detected secret.
        SecretAlert = "secret_alert",
        /// A runtime detection alert that reached people.
        Incident = "incident",
    }
);

impl Kind {
    /// One byte that prefixes store keys of this kind.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The kind for a store key prefix byte.
    pub fn from_tag(tag: u8) -> Option<Kind> {
        Kind::ALL.get(tag as usize).copied()
    }
}

string_enum!(
    /// Finding severity, most severe first.
    Severity {
        /// Critical.
        Critical = "critical",
        /// High.
        High = "high",
        /// Medium.
        Medium = "medium",
        /// Low.
        Low = "low",
        /// Informational.
        Info = "info",
    }
);

impl Severity {
    /// Larger is more severe: lets callers spot downgrades.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Critical => 4,
            Severity::High => 3,
            Severity::Medium => 2,
            Severity::Low => 1,
            Severity::Info => 0,
        }
    }
}

string_enum!(
    /// Where a finding lives.
    Environment {
        /// Production.
        Production = "production",
        /// Anything else (staging, test, dev).
        NonProduction = "non_production",
    }
);

string_enum!(
    /// What kind of weakness a finding is.
    Domain {
        /// Application code and design.
        Application = "application",
        /// Infrastructure and cloud.
        Infrastructure = "infrastructure",
        /// Hygiene (dependencies, configuration drift, ...).
        Hygiene = "hygiene",
    }
);

string_enum!(
    /// Lifecycle state of a finding.
    Status {
        /// Not resolved.
        Open = "open",
        /// Fixed.
        Remediated = "remediated",
        /// Risk reduced by a compensating control.
        Mitigated = "mitigated",
        /// Accepted through an exception.
        RiskAccepted = "risk_accepted",
        /// Closed without a fix (with an invalid validity).
        Closed = "closed",
    }
);

string_enum!(
    /// Whether a finding is a real, distinct weakness.
    Validity {
        /// Confirmed.
        Valid = "valid",
        /// Not yet triaged (counted, conservatively).
        Unverified = "unverified",
        /// Not a weakness.
        FalsePositive = "false_positive",
        /// Another finding describes the same weakness.
        Duplicate = "duplicate",
        /// Not a valid defect for another reason.
        Invalid = "invalid",
    }
);

impl Validity {
    /// The validities every finding KPI leaves out.
    pub const EXCLUDED: [Validity; 3] = [
        Validity::FalsePositive,
        Validity::Duplicate,
        Validity::Invalid,
    ];

    /// True for false positives, duplicates and invalid findings.
    pub fn is_excluded(self) -> bool {
        Validity::EXCLUDED.contains(&self)
    }
}

string_enum!(
    /// A repository or a pipeline.
    RepoType {
        /// A source repository.
        Repository = "repository",
        /// A CI/CD pipeline.
        Pipeline = "pipeline",
    }
);

string_enum!(
    /// The type of a completed review.
    ReviewType {
        /// Architecture / secure-design review.
        Design = "design",
        /// Any other security review.
        Security = "security",
    }
);

string_enum!(
    /// Outcome of a release's security gate.
    Gate {
        /// Clean pass.
        Passed = "passed",
        /// Passed only through an exception.
        PassedWithException = "passed_with_exception",
        /// Failed.
        Failed = "failed",
    }
);

string_enum!(
    /// How a secret alert was resolved.
    SecretResolution {
        /// The secret was revoked.
        Revoked = "revoked",
        /// Accepted, not fixed.
        WontFix = "wont_fix",
        /// Not a secret.
        FalsePositive = "false_positive",
        /// A test credential.
        UsedInTests = "used_in_tests",
        /// A custom pattern changed (administrative close).
        PatternEdited = "pattern_edited",
        /// A custom pattern was deleted (administrative close).
        PatternDeleted = "pattern_deleted",
    }
);

string_enum!(
    /// The provider's check of whether a secret still works.
    SecretValidity {
        /// Still works.
        Active = "active",
        /// No longer works.
        Inactive = "inactive",
        /// Not checked.
        Unknown = "unknown",
    }
);

/// An application, service or system the program is responsible for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// Stable key.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Display name (defaults to id).
    pub name: String,
    /// 1 = most critical.
    pub tier: u8,
    /// Crown jewel (defaults to tier 1).
    pub critical: bool,
    /// Counted in denominators.
    pub in_scope: bool,
    /// Segment key.
    pub product_line: Option<String>,
    /// Team or person.
    pub owner: Option<String>,
    /// Unknown fields.
    pub extra: Extra,
}

/// A repository or pipeline (the secret-scanning denominator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repo {
    /// `owner/name` for repositories.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Repository or pipeline.
    pub repo_type: RepoType,
    /// Asset it belongs to.
    pub asset: Option<String>,
    /// Counted in denominators.
    pub in_scope: bool,
    /// Secret scanning enabled; `None` when the source could not tell.
    pub secret_scanning: Option<bool>,
    /// Push protection enabled, when known.
    pub push_protection: Option<bool>,
    /// Unknown fields.
    pub extra: Extra,
}

/// A vulnerability or weakness from any scanner, test or ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Source's key.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Asset id.
    pub asset: String,
    /// Title.
    pub title: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// Environment.
    pub environment: Environment,
    /// Domain.
    pub domain: Domain,
    /// First detected.
    #[serde(with = "micros")]
    pub opened_at: Time,
    /// Lifecycle state.
    pub status: Status,
    /// When status left `open`.
    #[serde(with = "micros::option")]
    pub resolved_at: Option<Time>,
    /// Validity.
    pub validity: Validity,
    /// Id of the finding it duplicates.
    pub duplicate_of: Option<String>,
    /// Equal fingerprints across sources mean the same weakness.
    pub fingerprint: Option<String>,
    /// Link back to the source.
    pub url: Option<String>,
    /// `url`s of other findings that are the same weakness (e.g. the
    /// scanner alert a ticket tracks); links for reconciliation.
    pub refs: Vec<String>,
    /// Unknown fields.
    pub extra: Extra,
}

/// A completed security review of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Key.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Asset reviewed.
    pub asset: String,
    /// Design or security review.
    pub review_type: ReviewType,
    /// Completion time.
    #[serde(with = "micros")]
    pub completed_at: Time,
    /// Unknown fields.
    pub extra: Extra,
}

/// A threat model of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreatModel {
    /// Key.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Asset modelled.
    pub asset: String,
    /// Last review or update.
    #[serde(with = "micros")]
    pub reviewed_at: Time,
    /// Unknown fields.
    pub extra: Extra,
}

/// A risk acceptance or waiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    /// Key.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Asset concerned.
    pub asset: String,
    /// Approval time.
    #[serde(with = "micros")]
    pub opened_at: Time,
    /// Expiry; `None` is allowed and reported as a problem.
    #[serde(with = "micros::option")]
    pub expires_at: Option<Time>,
    /// Revoked, fixed or expired-and-closed.
    #[serde(with = "micros::option")]
    pub closed_at: Option<Time>,
    /// Finding ids covered.
    pub findings: Vec<String>,
    /// Why.
    pub reason: Option<String>,
    /// Unknown fields.
    pub extra: Extra,
}

/// One release and the outcome of its security gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// Key.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Asset released.
    pub asset: String,
    /// Release time.
    #[serde(with = "micros")]
    pub at: Time,
    /// Gate outcome.
    pub gate: Gate,
    /// Why an exception or failure happened.
    pub reason: Option<String>,
    /// Unknown fields.
    pub extra: Extra,
}

/// One detected secret. The secret value is never a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretAlert {
    /// Key.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Repo id.
    pub repo: String,
    /// Provider's secret type.
    pub secret_type: Option<String>,
    /// Detection time.
    #[serde(with = "micros")]
    pub opened_at: Time,
    /// Resolution time.
    #[serde(with = "micros::option")]
    pub resolved_at: Option<Time>,
    /// Resolution.
    pub resolution: Option<SecretResolution>,
    /// Provider's validity check.
    pub validity: SecretValidity,
    /// Pushed past push protection.
    pub push_protection_bypassed: bool,
    /// Unknown fields.
    pub extra: Extra,
}

/// A runtime detection alert that reached people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Key.
    pub id: String,
    /// Connector instance that produced it.
    pub source: String,
    /// Asset concerned.
    pub asset: Option<String>,
    /// Severity.
    pub severity: Option<Severity>,
    /// Alert time.
    #[serde(with = "micros")]
    pub alerted_at: Time,
    /// Acknowledged / first human action.
    #[serde(with = "micros::option")]
    pub triaged_at: Option<Time>,
    /// Mitigated or resolved.
    #[serde(with = "micros::option")]
    pub contained_at: Option<Time>,
    /// true = real; false = false positive; None = not decided.
    pub validated: Option<bool>,
    /// Unknown fields.
    pub extra: Extra,
}

fn tier_text(tier: u8) -> &'static str {
    match tier {
        1 => "1",
        2 => "2",
        3 => "3",
        _ => "?",
    }
}

/// Any normalized record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// An asset.
    Asset(Asset),
    /// A repo.
    Repo(Repo),
    /// A finding.
    Finding(Finding),
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

macro_rules! each_record {
    ($self:expr, $r:ident => $body:expr) => {
        match $self {
            Record::Asset($r) => $body,
            Record::Repo($r) => $body,
            Record::Finding($r) => $body,
            Record::Review($r) => $body,
            Record::ThreatModel($r) => $body,
            Record::Exception($r) => $body,
            Record::Release($r) => $body,
            Record::SecretAlert($r) => $body,
            Record::Incident($r) => $body,
        }
    };
}

/// The identity of a record: a later record with the same identity replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// Record kind.
    pub kind: Kind,
    /// Connector instance.
    pub source: String,
    /// Source's id.
    pub id: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.source, self.id)
    }
}

/// A tracked field of a record whose changes go into history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// Lifecycle status (findings; a secret alert's resolution).
    Status,
    /// Severity (findings, incidents).
    Severity,
    /// Validity (findings, secret alerts).
    Validity,
    /// Tier (assets: the denominators change with it).
    Tier,
}

impl Tracked {
    /// The field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tracked::Status => "status",
            Tracked::Severity => "severity",
            Tracked::Validity => "validity",
            Tracked::Tier => "tier",
        }
    }
}

impl Record {
    /// The record kind.
    pub fn kind(&self) -> Kind {
        match self {
            Record::Asset(_) => Kind::Asset,
            Record::Repo(_) => Kind::Repo,
            Record::Finding(_) => Kind::Finding,
            Record::Review(_) => Kind::Review,
            Record::ThreatModel(_) => Kind::ThreatModel,
            Record::Exception(_) => Kind::Exception,
            Record::Release(_) => Kind::Release,
            Record::SecretAlert(_) => Kind::SecretAlert,
            Record::Incident(_) => Kind::Incident,
        }
    }

    /// The source's id.
    pub fn id(&self) -> &str {
        each_record!(self, r => &r.id)
    }

    /// The connector instance that produced the record.
    pub fn source(&self) -> &str {
        each_record!(self, r => &r.source)
    }

    /// Replace the source (connectors stamp their instance name).
    pub fn set_source(&mut self, source: &str) {
        each_record!(self, r => { r.source = source.to_string() })
    }

    /// Unknown fields kept from the input.
    pub fn extra(&self) -> &Extra {
        each_record!(self, r => &r.extra)
    }

    /// (kind, source, id).
    pub fn identity(&self) -> Identity {
        Identity {
            kind: self.kind(),
            source: self.source().to_string(),
            id: self.id().to_string(),
        }
    }

    /// The tracked fields with their current values, for history entries.
    pub fn tracked(&self) -> Vec<(Tracked, &'static str)> {
        match self {
            Record::Finding(f) => vec![
                (Tracked::Status, f.status.as_str()),
                (Tracked::Severity, f.severity.as_str()),
                (Tracked::Validity, f.validity.as_str()),
            ],
            // A secret alert's status is its resolution ("open" until resolved).
            Record::SecretAlert(a) => vec![
                (Tracked::Status, a.resolution.map_or("open", |r| r.as_str())),
                (Tracked::Validity, a.validity.as_str()),
            ],
            Record::Asset(a) => vec![(Tracked::Tier, tier_text(a.tier))],
            Record::Incident(i) => match i.severity {
                Some(s) => vec![(Tracked::Severity, s.as_str())],
                None => vec![(Tracked::Severity, "")],
            },
            _ => Vec::new(),
        }
    }

    /// The record in the NDJSON format of `records.md`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Value};
        fn t(t: &Time) -> Value {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        fn ot(v: &Option<Time>) -> Value {
            v.as_ref().map(t).unwrap_or(Value::Null)
        }
        let mut v = match self {
            Record::Asset(a) => json!({
                "name": a.name, "tier": a.tier, "critical": a.critical,
                "in_scope": a.in_scope, "product_line": a.product_line, "owner": a.owner,
            }),
            Record::Repo(r) => json!({
                "type": r.repo_type.as_str(), "asset": r.asset, "in_scope": r.in_scope,
                "secret_scanning": r.secret_scanning, "push_protection": r.push_protection,
            }),
            Record::Finding(f) => json!({
                "asset": f.asset, "title": f.title, "severity": f.severity.as_str(),
                "environment": f.environment.as_str(), "domain": f.domain.as_str(),
                "opened_at": t(&f.opened_at), "status": f.status.as_str(),
                "resolved_at": ot(&f.resolved_at), "validity": f.validity.as_str(),
                "duplicate_of": f.duplicate_of, "fingerprint": f.fingerprint, "url": f.url,
                "refs": (!f.refs.is_empty()).then_some(&f.refs),
            }),
            Record::Review(r) => json!({
                "asset": r.asset, "type": r.review_type.as_str(), "completed_at": t(&r.completed_at),
            }),
            Record::ThreatModel(m) => json!({ "asset": m.asset, "reviewed_at": t(&m.reviewed_at) }),
            Record::Exception(e) => json!({
                "asset": e.asset, "opened_at": t(&e.opened_at), "expires_at": ot(&e.expires_at),
                "closed_at": ot(&e.closed_at), "findings": e.findings, "reason": e.reason,
            }),
            Record::Release(r) => json!({
                "asset": r.asset, "at": t(&r.at), "gate": r.gate.as_str(), "reason": r.reason,
            }),
            Record::SecretAlert(a) => json!({
                "repo": a.repo, "secret_type": a.secret_type, "opened_at": t(&a.opened_at),
                "resolved_at": ot(&a.resolved_at), "resolution": a.resolution.map(|r| r.as_str()),
                "validity": a.validity.as_str(), "push_protection_bypassed": a.push_protection_bypassed,
            }),
            Record::Incident(i) => json!({
                "asset": i.asset, "severity": i.severity.map(|s| s.as_str()),
                "alerted_at": t(&i.alerted_at), "triaged_at": ot(&i.triaged_at),
                "contained_at": ot(&i.contained_at), "validated": i.validated,
            }),
        };
        let obj = v.as_object_mut().expect("json! object");
        obj.retain(|_, v| !v.is_null());
        obj.insert("kind".into(), self.kind().as_str().into());
        obj.insert("id".into(), self.id().into());
        obj.insert("source".into(), self.source().into());
        if !self.extra().is_empty() {
            obj.insert(
                "extra".into(),
                serde_json::Value::Object(self.extra().0.clone()),
            );
        }
        v
    }
}
