//! KPI configuration: the program's maturity stage, per-KPI owner, cadence,
//! target and business sentence, and the windows and SLA days of the spec.
//! Every field has a default, so an empty `[kpi]` table is a valid config.

use super::KpiId;
use serde::Deserialize;

/// Which KPIs a pack shows, by program maturity (spec, "Maturity stages").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Maturity {
    /// Security and design review coverage, findings aging, exception debt.
    Early,
    /// Adds MTTR, threat models of critical apps, release gate outcomes,
    /// SLA attainment and secret exposure.
    Growing,
    /// Everything, including detection triage.
    #[default]
    Mature,
}

impl Maturity {
    /// True when a pack at this stage shows `kpi`.
    pub fn shows(self, kpi: KpiId) -> bool {
        use KpiId::*;
        match kpi {
            SecurityReviewCoverage | DesignReviewCoverage | FindingsAging | ExceptionDebt => true,
            Mttr | ThreatModelCoverage | ReleaseGate | SlaAttainment | SecretExposure => {
                self != Maturity::Early
            }
            DetectionTriage => self == Maturity::Mature,
        }
    }
}

/// The time windows of the coverage KPIs, in days.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Windows {
    /// `security_review_coverage`: a review of any type completed within
    /// this many days before the end of the period counts.
    pub review_days: u32,
    /// `design_review_coverage`: a design review completed within this many
    /// days before the end of the period counts.
    pub design_days: u32,
    /// `threat_model_coverage`: the latest threat model must have been
    /// reviewed within this many days before the end of the period.
    pub threat_model_max_age_days: u32,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            review_days: 365,
            design_days: 365,
            threat_model_max_age_days: 365,
        }
    }
}

/// Remediation SLA in days per severity; a missing value means no SLA.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaDays {
    /// Critical findings (default 15).
    pub critical: Option<u32>,
    /// High findings (default 30).
    pub high: Option<u32>,
    /// Medium findings (default 90).
    pub medium: Option<u32>,
    /// Low findings (default 180).
    pub low: Option<u32>,
    /// Informational findings (default: no SLA).
    pub info: Option<u32>,
}

impl Default for SlaDays {
    fn default() -> Self {
        SlaDays {
            critical: Some(15),
            high: Some(30),
            medium: Some(90),
            low: Some(180),
            info: None,
        }
    }
}

impl SlaDays {
    /// The SLA of one severity, in days.
    pub fn of(&self, severity: secmetrics_connectors::Severity) -> Option<u32> {
        use secmetrics_connectors::Severity::*;
        match severity {
            Critical => self.critical,
            High => self.high,
            Medium => self.medium,
            Low => self.low,
            Info => self.info,
        }
    }
}

/// Settings of one KPI.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KpiSettings {
    /// Team or person accountable for the KPI; a KPI without one is named in
    /// the pack's warnings.
    pub owner: Option<String>,
    /// How often the owner reviews it (free text, e.g. `monthly`).
    pub cadence: String,
    /// Target for the headline figure, read by the KPI's healthy direction
    /// (up: on target when value >= target; down: when value <= target).
    /// Never invented: without one the status is `no_target`.
    pub target: Option<f64>,
    /// Business translation sentence shown beside the KPI in text, Markdown
    /// and HTML; replaces the spec's default sentence.
    pub business: Option<String>,
}

impl Default for KpiSettings {
    fn default() -> Self {
        KpiSettings {
            owner: None,
            cadence: "monthly".to_string(),
            target: None,
            business: None,
        }
    }
}

/// Per-KPI settings, one table per KPI id (a misspelt id is an error).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerKpi {
    /// `security_review_coverage`.
    pub security_review_coverage: KpiSettings,
    /// `design_review_coverage`.
    pub design_review_coverage: KpiSettings,
    /// `threat_model_coverage`.
    pub threat_model_coverage: KpiSettings,
    /// `mttr`.
    pub mttr: KpiSettings,
    /// `findings_aging`.
    pub findings_aging: KpiSettings,
    /// `secret_exposure`.
    pub secret_exposure: KpiSettings,
    /// `release_gate`.
    pub release_gate: KpiSettings,
    /// `exception_debt`.
    pub exception_debt: KpiSettings,
    /// `sla_attainment`.
    pub sla_attainment: KpiSettings,
    /// `detection_triage`.
    pub detection_triage: KpiSettings,
}

impl PerKpi {
    /// The settings of one KPI.
    pub fn get(&self, id: KpiId) -> &KpiSettings {
        match id {
            KpiId::SecurityReviewCoverage => &self.security_review_coverage,
            KpiId::DesignReviewCoverage => &self.design_review_coverage,
            KpiId::ThreatModelCoverage => &self.threat_model_coverage,
            KpiId::Mttr => &self.mttr,
            KpiId::FindingsAging => &self.findings_aging,
            KpiId::SecretExposure => &self.secret_exposure,
            KpiId::ReleaseGate => &self.release_gate,
            KpiId::ExceptionDebt => &self.exception_debt,
            KpiId::SlaAttainment => &self.sla_attainment,
            KpiId::DetectionTriage => &self.detection_triage,
        }
    }

    /// The settings of one KPI, for changing them.
    pub fn get_mut(&mut self, id: KpiId) -> &mut KpiSettings {
        match id {
            KpiId::SecurityReviewCoverage => &mut self.security_review_coverage,
            KpiId::DesignReviewCoverage => &mut self.design_review_coverage,
            KpiId::ThreatModelCoverage => &mut self.threat_model_coverage,
            KpiId::Mttr => &mut self.mttr,
            KpiId::FindingsAging => &mut self.findings_aging,
            KpiId::SecretExposure => &mut self.secret_exposure,
            KpiId::ReleaseGate => &mut self.release_gate,
            KpiId::ExceptionDebt => &mut self.exception_debt,
            KpiId::SlaAttainment => &mut self.sla_attainment,
            KpiId::DetectionTriage => &mut self.detection_triage,
        }
    }
}

/// An IANA time zone, configured by name (e.g. `Europe/Berlin`); UTC by
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(pub chrono_tz::Tz);

impl Default for Zone {
    fn default() -> Self {
        Zone(chrono_tz::Tz::UTC)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<chrono_tz::Tz>().map(Zone).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone {name:?}: give an IANA name such as \"Europe/Berlin\" or \"UTC\""
            ))
        })
    }
}

/// The `[kpi]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KpiConfig {
    /// Reporting time zone (IANA name, default `UTC`): periods (`--period
    /// 2026-10`, weeks, days, the digests' last month) run between
    /// midnights there.
    pub timezone: Zone,
    /// Program maturity stage (`early`, `growing`, `mature`); chooses which
    /// KPIs the pack shows. Default `mature` (all of them).
    pub maturity: Maturity,
    /// Coverage windows in days.
    pub windows: Windows,
    /// Remediation SLA days per severity.
    pub sla_days: SlaDays,
    /// Per-KPI owner, cadence, target and business sentence.
    pub kpis: PerKpi,
}

impl KpiConfig {
    /// The business translation sentence of a KPI: the configured one, or
    /// the spec's default.
    pub fn business(&self, id: KpiId) -> &str {
        self.kpis
            .get(id)
            .business
            .as_deref()
            .unwrap_or_else(|| id.default_business())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let cfg = KpiConfig::default();
        assert_eq!(cfg.maturity, Maturity::Mature);
        assert_eq!(cfg.windows.review_days, 365);
        assert_eq!(cfg.sla_days.critical, Some(15));
        assert_eq!(cfg.sla_days.info, None);
        assert_eq!(cfg.kpis.mttr.target, None);
        assert_eq!(cfg.kpis.mttr.cadence, "monthly");
    }

    #[test]
    fn unknown_kpi_keys_are_errors() {
        let err = serde_json::from_str::<KpiConfig>(r#"{"kpis": {"mtr": {}}}"#).unwrap_err();
        assert!(err.to_string().contains("mtr"), "{err}");
    }

    #[test]
    fn early_stage_shows_only_the_early_kpis() {
        let shown: Vec<_> = KpiId::ALL
            .iter()
            .filter(|k| Maturity::Early.shows(**k))
            .collect();
        assert_eq!(shown.len(), 4);
        assert!(!Maturity::Growing.shows(KpiId::DetectionTriage));
        assert!(Maturity::Growing.shows(KpiId::SecretExposure));
    }
}
