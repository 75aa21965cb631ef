//! The estate: every current record, grouped by kind, plus the history facts
//! the KPIs need. This is what the store loads and the KPI engine reads.

use secmetrics_connectors::{
    Asset, Exception, Finding, Incident, Record, Release, Repo, Review, SecretAlert, Severity,
    ThreatModel, Time,
};

/// A severity lowering observed in a finding's history.
#[derive(Debug, Clone, PartialEq)]
pub struct SeverityChange {
    /// Finding id.
    pub id: String,
    /// Connector instance of the finding.
    pub source: String,
    /// Severity before.
    pub from: Severity,
    /// Severity after.
    pub to: Severity,
    /// When the change was observed.
    pub observed_at: Time,
}

/// A reconciled group with a member fixed in one source and a member still
/// open in another (kpi-spec, Reconciliation rule 6), named in `warnings`.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedAndOpen {
    /// Source of the canonical member.
    pub source: String,
    /// Id of the canonical member.
    pub id: String,
    /// Asset of the canonical member (scope applies to it).
    pub asset: String,
    /// (source, id) of the members remediated or mitigated.
    pub fixed: Vec<(String, String)>,
    /// (source, id) of the members still open.
    pub open: Vec<(String, String)>,
}

/// All current (not gone) records, by kind.
#[derive(Debug, Clone, Default)]
pub struct Estate {
    /// Assets.
    pub assets: Vec<Asset>,
    /// Repositories and pipelines.
    pub repos: Vec<Repo>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Reviews.
    pub reviews: Vec<Review>,
    /// Threat models.
    pub threat_models: Vec<ThreatModel>,
    /// Exceptions.
    pub exceptions: Vec<Exception>,
    /// Releases.
    pub releases: Vec<Release>,
    /// Secret alerts.
    pub secret_alerts: Vec<SecretAlert>,
    /// Incidents.
    pub incidents: Vec<Incident>,
    /// Severity changes of findings from record history (all of them; the
    /// KPI engine picks the lowerings in its period).
    pub severity_changes: Vec<SeverityChange>,
    /// Reconciled groups fixed in one source and still open in another
    /// (filled by `reconcile`; empty before).
    pub fixed_and_open: Vec<FixedAndOpen>,
}

impl Estate {
    /// Add one record to its kind's list.
    pub fn push(&mut self, record: Record) {
        match record {
            Record::Asset(r) => self.assets.push(r),
            Record::Repo(r) => self.repos.push(r),
            Record::Finding(r) => self.findings.push(r),
            Record::Review(r) => self.reviews.push(r),
            Record::ThreatModel(r) => self.threat_models.push(r),
            Record::Exception(r) => self.exceptions.push(r),
            Record::Release(r) => self.releases.push(r),
            Record::SecretAlert(r) => self.secret_alerts.push(r),
            Record::Incident(r) => self.incidents.push(r),
        }
    }

    /// Build an estate from records, the later of two equal identities
    /// winning (as an import into an empty store would).
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Estate {
        let mut latest = std::collections::HashMap::new();
        let mut order = Vec::new();
        for r in records {
            let key = r.identity();
            if latest.insert(key.clone(), r).is_none() {
                order.push(key);
            }
        }
        let mut estate = Estate::default();
        for key in order {
            if let Some(r) = latest.remove(&key) {
                estate.push(r);
            }
        }
        estate
    }
}
