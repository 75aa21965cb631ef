//! The KPI engine of `kpi-spec.md`: records, a period and the KPI config in,
//! one [`KpiPack`] out. Pure: no I/O and no clock reads (the caller passes
//! `generated_at`), so the same estate always gives the same pack.

pub mod config;
pub mod coverage;
pub mod detection;
pub mod exceptions;
pub mod findings;
pub mod period;
pub mod releases;
pub mod scope;
pub mod secrets;
pub mod stats;

mod warnings;

pub use config::{KpiConfig, KpiSettings, Maturity, Zone};
pub use period::{Period, PeriodError, PeriodKind, Unit};
pub use stats::Summary;

use crate::estate::Estate;
use scope::Scope;
use secmetrics_connectors::Time;
use serde::{Serialize, Serializer};

/// The ten KPIs of the spec, in the spec's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KpiId {
    /// Share of in-scope assets with a recent review of any type.
    SecurityReviewCoverage,
    /// Share of tier 1 and 2 assets with a recent design review.
    DesignReviewCoverage,
    /// Share of critical assets with a current threat model.
    ThreatModelCoverage,
    /// Mean time to remediate by severity and environment.
    Mttr,
    /// Open findings by age bucket.
    FindingsAging,
    /// Secret scanning coverage and confirmed exposures.
    SecretExposure,
    /// Release gate outcomes.
    ReleaseGate,
    /// Open risk acceptances.
    ExceptionDebt,
    /// Findings closed within their SLA.
    SlaAttainment,
    /// Time to triage validated incidents.
    DetectionTriage,
}

/// Which way a headline should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is healthier.
    Up,
    /// Lower is healthier.
    Down,
}

impl KpiId {
    /// Every KPI in the spec's order (the JSON order).
    pub const ALL: [KpiId; 10] = [
        KpiId::SecurityReviewCoverage,
        KpiId::DesignReviewCoverage,
        KpiId::ThreatModelCoverage,
        KpiId::Mttr,
        KpiId::FindingsAging,
        KpiId::SecretExposure,
        KpiId::ReleaseGate,
        KpiId::ExceptionDebt,
        KpiId::SlaAttainment,
        KpiId::DetectionTriage,
    ];

    /// The monthly pack's order (spec, "The monthly pack"), followed by the
    /// KPIs it does not name.
    pub const MONTHLY_PACK: [KpiId; 10] = [
        KpiId::DesignReviewCoverage,
        KpiId::ThreatModelCoverage,
        KpiId::FindingsAging,
        KpiId::Mttr,
        KpiId::SecretExposure,
        KpiId::ExceptionDebt,
        KpiId::ReleaseGate,
        KpiId::SecurityReviewCoverage,
        KpiId::SlaAttainment,
        KpiId::DetectionTriage,
    ];

    /// The JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            KpiId::SecurityReviewCoverage => "security_review_coverage",
            KpiId::DesignReviewCoverage => "design_review_coverage",
            KpiId::ThreatModelCoverage => "threat_model_coverage",
            KpiId::Mttr => "mttr",
            KpiId::FindingsAging => "findings_aging",
            KpiId::SecretExposure => "secret_exposure",
            KpiId::ReleaseGate => "release_gate",
            KpiId::ExceptionDebt => "exception_debt",
            KpiId::SlaAttainment => "sla_attainment",
            KpiId::DetectionTriage => "detection_triage",
        }
    }

    /// A human title.
    pub fn title(self) -> &'static str {
        match self {
            KpiId::SecurityReviewCoverage => "Security review coverage",
            KpiId::DesignReviewCoverage => "Design review coverage (tier 1-2)",
            KpiId::ThreatModelCoverage => "Threat-model coverage (critical apps)",
            KpiId::Mttr => "MTTR critical / high (production)",
            KpiId::FindingsAging => "Critical/high findings over 90 days",
            KpiId::SecretExposure => "Secret exposure rate",
            KpiId::ReleaseGate => "Release gate pass rate",
            KpiId::ExceptionDebt => "Open exceptions",
            KpiId::SlaAttainment => "SLA attainment",
            KpiId::DetectionTriage => "Detection triage time (validated)",
        }
    }

    /// The healthy direction of the headline.
    pub fn direction(self) -> Direction {
        match self {
            KpiId::SecurityReviewCoverage
            | KpiId::DesignReviewCoverage
            | KpiId::ThreatModelCoverage
            | KpiId::ReleaseGate
            | KpiId::SlaAttainment => Direction::Up,
            KpiId::Mttr
            | KpiId::FindingsAging
            | KpiId::SecretExposure
            | KpiId::ExceptionDebt
            | KpiId::DetectionTriage => Direction::Down,
        }
    }

    /// The spec's default business translation: the objective the KPI
    /// supports and what a healthy trend looks like.
    pub fn default_business(self) -> &'static str {
        match self {
            KpiId::DesignReviewCoverage => "Fewer expensive late redesigns and design-level defects; healthy: up and stable for tier-1 systems.",
            KpiId::ThreatModelCoverage => "Protects revenue, trust and regulated business flows; healthy: close to full for crown jewels.",
            KpiId::Mttr => "Shorter exposure window, lower breach likelihood; healthy: down, with few long-tail outliers.",
            KpiId::FindingsAging => "Less unmanaged backlog and audit pain; healthy: the over-90-day bucket shrinking.",
            KpiId::SecretExposure => "Fewer credential-driven incidents and cloud compromise paths; healthy: rate down while coverage goes up.",
            KpiId::ReleaseGate => "Delivery speed without bypassing risk controls; healthy: stable pass rate, rare and controlled exceptions.",
            KpiId::ExceptionDebt => "No hidden accumulation of accepted risk; healthy: low, time-bounded, actively burned down.",
            KpiId::SlaAttainment => "Security policy matched by delivery behaviour; healthy: up, measured on valid findings only.",
            KpiId::SecurityReviewCoverage => "The program reaches the whole estate; healthy: up.",
            KpiId::DetectionTriage => "Production detection that is operationally useful; healthy: down, on validated incidents.",
        }
    }
}

/// A headline figure: a count stays an integer in JSON, a ratio or a
/// duration is a float.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Figure {
    /// A count.
    Count(u64),
    /// A ratio, days or hours.
    Value(f64),
}

impl Figure {
    /// The figure as a float, for comparisons.
    pub fn as_f64(self) -> f64 {
        match self {
            Figure::Count(n) => n as f64,
            Figure::Value(v) => v,
        }
    }
}

/// The headline's movement against the previous period, judged by the
/// healthy direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Moved the healthy way.
    Improving,
    /// Moved the unhealthy way.
    Worsening,
    /// Did not move.
    Flat,
}

/// The headline against the configured target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// Meets the target.
    OnTarget,
    /// Misses it, or there is no figure to judge.
    OffTarget,
    /// No target configured.
    NoTarget,
}

/// Ordered key → value pairs, serialized as a JSON object in this order
/// (severity order, tier order, ...), which a map type would lose.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Segments<V>(pub Vec<(String, V)>);

impl<V> Segments<V> {
    /// The value of one key.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<V: Serialize> Serialize for Segments<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// Counts per age bucket (`0_30`, `31_90`, `over_90` days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AgeBuckets {
    /// Age 0 to 30 days.
    #[serde(rename = "0_30")]
    pub days_0_30: u64,
    /// Age 31 to 90 days.
    #[serde(rename = "31_90")]
    pub days_31_90: u64,
    /// Age 91 days and above.
    pub over_90: u64,
}

impl AgeBuckets {
    /// Count one item of `age_days` whole days.
    #[inline]
    pub fn add(&mut self, age_days: i64) {
        if age_days <= 30 {
            self.days_0_30 += 1;
        } else if age_days <= 90 {
            self.days_31_90 += 1;
        } else {
            self.over_90 += 1;
        }
    }

    /// All buckets together.
    pub fn total(&self) -> u64 {
        self.days_0_30 + self.days_31_90 + self.over_90
    }
}

/// Whole days from `t` to `end`: floor((end - t) / 86400 s).
#[inline]
pub fn age_days(end: Time, t: Time) -> i64 {
    (end - t).num_seconds().div_euclid(86_400)
}

/// Seconds between two times as a float (microsecond precision).
#[inline]
pub fn seconds_between(from: Time, to: Time) -> f64 {
    let d = to - from;
    match d.num_microseconds() {
        Some(us) => us as f64 / 1e6,
        None => d.num_seconds() as f64,
    }
}

/// One KPI: its own figures plus the fields every KPI carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpi<T> {
    /// The KPI's own figures (flattened into the object).
    #[serde(flatten)]
    pub figures: T,
    /// The one number trends and targets apply to.
    pub headline: Option<Figure>,
    /// The headline of the previous period.
    pub previous: Option<Figure>,
    /// Movement against the previous period; null when either is null.
    pub trend: Option<Trend>,
    /// Configured target, if any.
    pub target: Option<f64>,
    /// Headline against target.
    pub status: TargetStatus,
    /// Accountable team or person.
    pub owner: Option<String>,
    /// Review cadence.
    pub cadence: String,
    /// Healthy direction of the headline.
    pub direction: Direction,
    /// Business translation sentence.
    pub business: String,
}

/// The KPIs a pack shows (by maturity stage); absent ones are left out of
/// the JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Kpis {
    /// See [`coverage::Coverage`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_review_coverage: Option<Kpi<coverage::Coverage>>,
    /// See [`coverage::Coverage`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub design_review_coverage: Option<Kpi<coverage::Coverage>>,
    /// See [`coverage::ThreatModelCoverage`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threat_model_coverage: Option<Kpi<coverage::ThreatModelCoverage>>,
    /// See [`findings::Mttr`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mttr: Option<Kpi<findings::Mttr>>,
    /// See [`findings::FindingsAging`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings_aging: Option<Kpi<findings::FindingsAging>>,
    /// See [`secrets::SecretExposure`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_exposure: Option<Kpi<secrets::SecretExposure>>,
    /// See [`releases::ReleaseGate`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_gate: Option<Kpi<releases::ReleaseGate>>,
    /// See [`exceptions::ExceptionDebt`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception_debt: Option<Kpi<exceptions::ExceptionDebt>>,
    /// See [`findings::SlaAttainment`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla_attainment: Option<Kpi<findings::SlaAttainment>>,
    /// See [`detection::DetectionTriage`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection_triage: Option<Kpi<detection::DetectionTriage>>,
}

/// The fields every KPI carries, without its own figures: what renderings
/// iterate over.
#[derive(Debug, Clone, Copy)]
pub struct KpiLine<'a> {
    /// Which KPI.
    pub id: KpiId,
    /// Headline.
    pub headline: Option<Figure>,
    /// Previous headline.
    pub previous: Option<Figure>,
    /// Trend.
    pub trend: Option<Trend>,
    /// Target.
    pub target: Option<f64>,
    /// Target status.
    pub status: TargetStatus,
    /// Owner.
    pub owner: Option<&'a str>,
    /// Cadence.
    pub cadence: &'a str,
    /// Business sentence.
    pub business: &'a str,
}

fn line<T>(id: KpiId, k: &Kpi<T>) -> KpiLine<'_> {
    KpiLine {
        id,
        headline: k.headline,
        previous: k.previous,
        trend: k.trend,
        target: k.target,
        status: k.status,
        owner: k.owner.as_deref(),
        cadence: &k.cadence,
        business: &k.business,
    }
}

impl Kpis {
    /// The common fields of one KPI, when the pack shows it.
    pub fn line(&self, id: KpiId) -> Option<KpiLine<'_>> {
        match id {
            KpiId::SecurityReviewCoverage => {
                self.security_review_coverage.as_ref().map(|k| line(id, k))
            }
            KpiId::DesignReviewCoverage => {
                self.design_review_coverage.as_ref().map(|k| line(id, k))
            }
            KpiId::ThreatModelCoverage => self.threat_model_coverage.as_ref().map(|k| line(id, k)),
            KpiId::Mttr => self.mttr.as_ref().map(|k| line(id, k)),
            KpiId::FindingsAging => self.findings_aging.as_ref().map(|k| line(id, k)),
            KpiId::SecretExposure => self.secret_exposure.as_ref().map(|k| line(id, k)),
            KpiId::ReleaseGate => self.release_gate.as_ref().map(|k| line(id, k)),
            KpiId::ExceptionDebt => self.exception_debt.as_ref().map(|k| line(id, k)),
            KpiId::SlaAttainment => self.sla_attainment.as_ref().map(|k| line(id, k)),
            KpiId::DetectionTriage => self.detection_triage.as_ref().map(|k| line(id, k)),
        }
    }
}

/// Findings whose severity was lowered during the period.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SeverityDowngrades {
    /// Number of distinct findings.
    pub count: u64,
    /// Their ids, sorted.
    pub ids: Vec<String>,
}

/// Headline figures of one period, for charts and trends over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// The period.
    #[serde(serialize_with = "period_json")]
    pub period: Period,
    /// Headline per shown KPI, keyed by KPI id.
    pub headlines: Segments<Option<Figure>>,
    /// Mean days to remediate high production findings (the MTTR chart
    /// shows critical and high).
    pub mttr_high_days: Option<f64>,
}

/// The KPI pack of one period: the JSON contract of the spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiPack {
    /// The period reported.
    #[serde(serialize_with = "period_json")]
    pub period: Period,
    /// The period the `previous` figures come from.
    #[serde(serialize_with = "period_json")]
    pub previous_period: Period,
    /// When the pack was computed (given by the caller).
    #[serde(serialize_with = "time_json")]
    pub generated_at: Time,
    /// Program maturity stage the pack was cut for.
    #[serde(serialize_with = "maturity_json")]
    pub maturity: Maturity,
    /// The KPIs, keyed by id.
    pub kpis: Kpis,
    /// Plain sentences on what weakens the figures.
    pub warnings: Vec<String>,
    /// Findings whose severity was lowered during the period.
    pub severity_downgrades: SeverityDowngrades,
    /// Findings resolved in the period, remediated or mitigated, whose
    /// `resolved_at` is before their `opened_at` (as reconciled): left out of
    /// `mttr` and `sla_attainment`, named in `warnings`.
    pub inconsistent_findings: u64,
    /// Headlines of the last periods, oldest first, ending with this one
    /// (empty unless asked for with [`with_history`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryPoint>,
}

fn period_json<S: Serializer>(p: &Period, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("start", &period::rfc3339(&p.start))?;
    m.serialize_entry("end", &period::rfc3339(&p.end))?;
    m.end()
}

fn time_json<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&period::rfc3339(t))
}

fn maturity_json<S: Serializer>(m: &Maturity, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match m {
        Maturity::Early => "early",
        Maturity::Growing => "growing",
        Maturity::Mature => "mature",
    })
}

impl KpiPack {
    /// The pack as the pretty JSON of the contract.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// The figures of every KPI for one period, before previous/trend/target
/// are attached.
struct Figures {
    security_review_coverage: coverage::Coverage,
    design_review_coverage: coverage::Coverage,
    threat_model_coverage: coverage::ThreatModelCoverage,
    findings: findings::FindingKpis,
    secret_exposure: secrets::SecretExposure,
    release_gate: releases::ReleaseGate,
    exception_debt: exceptions::ExceptionDebt,
    detection_triage: detection::DetectionTriage,
}

impl Figures {
    fn compute(estate: &Estate, scope: &Scope<'_>, period: &Period, cfg: &KpiConfig) -> Figures {
        let shows = |id| cfg.maturity.shows(id);
        let (security_review_coverage, design_review_coverage) =
            coverage::review_coverage(estate, scope, period, cfg);
        Figures {
            security_review_coverage,
            design_review_coverage,
            threat_model_coverage: if shows(KpiId::ThreatModelCoverage) {
                coverage::threat_model_coverage(estate, scope, period, cfg)
            } else {
                Default::default()
            },
            findings: findings::compute(estate, scope, period, cfg),
            secret_exposure: if shows(KpiId::SecretExposure) {
                secrets::compute(estate, scope, period)
            } else {
                Default::default()
            },
            release_gate: if shows(KpiId::ReleaseGate) {
                releases::compute(estate, scope, period)
            } else {
                Default::default()
            },
            exception_debt: exceptions::compute(estate, scope, period),
            detection_triage: if shows(KpiId::DetectionTriage) {
                detection::compute(estate, scope, period)
            } else {
                Default::default()
            },
        }
    }

    fn headline(&self, id: KpiId) -> Option<Figure> {
        let v = Figure::Value;
        match id {
            KpiId::SecurityReviewCoverage => self.security_review_coverage.value.map(v),
            KpiId::DesignReviewCoverage => self.design_review_coverage.value.map(v),
            KpiId::ThreatModelCoverage => self.threat_model_coverage.value.map(v),
            KpiId::Mttr => self.findings.mttr.critical_production_mean().map(v),
            KpiId::FindingsAging => {
                Some(Figure::Count(self.findings.aging.critical_high_over_90()))
            }
            KpiId::SecretExposure => self.secret_exposure.rate.map(v),
            KpiId::ReleaseGate => self.release_gate.pass_rate.map(v),
            KpiId::ExceptionDebt => Some(Figure::Count(self.exception_debt.open)),
            KpiId::SlaAttainment => self.findings.sla.value.map(v),
            KpiId::DetectionTriage => self.detection_triage.triage_hours.mean.map(v),
        }
    }
}

/// The fields every KPI object carries besides its figures.
struct Common {
    id: KpiId,
    headline: Option<Figure>,
    previous: Option<Figure>,
    settings: KpiSettings,
    business: String,
}

impl Common {
    fn new(
        id: KpiId,
        headline: Option<Figure>,
        previous: Option<Figure>,
        cfg: &KpiConfig,
    ) -> Common {
        Common {
            id,
            headline,
            previous,
            settings: cfg.kpis.get(id).clone(),
            business: cfg.business(id).to_string(),
        }
    }

    fn with<T>(self, figures: T) -> Kpi<T> {
        let direction = self.id.direction();
        Kpi {
            figures,
            headline: self.headline,
            previous: self.previous,
            trend: trend(direction, self.headline, self.previous),
            target: self.settings.target,
            status: target_status(direction, self.headline, self.settings.target),
            owner: self.settings.owner,
            cadence: self.settings.cadence,
            direction,
            business: self.business,
        }
    }
}

/// Trend of `current` against `previous` by the healthy direction.
pub fn trend(
    direction: Direction,
    current: Option<Figure>,
    previous: Option<Figure>,
) -> Option<Trend> {
    let (c, p) = (current?.as_f64(), previous?.as_f64());
    // Equal up to rounding noise is flat, not a movement.
    if (c - p).abs() <= 1e-12 * c.abs().max(p.abs()) {
        return Some(Trend::Flat);
    }
    let up = c > p;
    Some(match (direction, up) {
        (Direction::Up, true) | (Direction::Down, false) => Trend::Improving,
        _ => Trend::Worsening,
    })
}

/// Status of `headline` against `target` by the healthy direction. A target
/// with no figure to judge (an empty denominator) is not shown to be met.
pub fn target_status(
    direction: Direction,
    headline: Option<Figure>,
    target: Option<f64>,
) -> TargetStatus {
    let Some(target) = target else {
        return TargetStatus::NoTarget;
    };
    match headline.map(Figure::as_f64) {
        Some(h) if direction == Direction::Up && h >= target => TargetStatus::OnTarget,
        Some(h) if direction == Direction::Down && h <= target => TargetStatus::OnTarget,
        _ => TargetStatus::OffTarget,
    }
}

/// Compute the KPI pack of `period` (with `previous` figures from the period
/// before). Pure: reads only its arguments.
pub fn compute(estate: &Estate, period: &Period, cfg: &KpiConfig, generated_at: Time) -> KpiPack {
    let scope = Scope::new(estate);
    let previous_period = period.previous();
    let current = Figures::compute(estate, &scope, period, cfg);
    let previous = Figures::compute(estate, &scope, &previous_period, cfg);

    // Headlines first: the figures are then moved into the KPI objects.
    let heads = KpiId::ALL.map(|id| current.headline(id));
    let prevs = KpiId::ALL.map(|id| previous.headline(id));
    let wrap = |id: KpiId| Common::new(id, heads[id as usize], prevs[id as usize], cfg);
    let shows = |id| cfg.maturity.shows(id);
    let Figures {
        security_review_coverage,
        design_review_coverage,
        threat_model_coverage,
        findings,
        secret_exposure,
        release_gate,
        exception_debt,
        detection_triage,
    } = current;
    let mut kpis = Kpis::default();
    use KpiId::*;
    if shows(SecurityReviewCoverage) {
        kpis.security_review_coverage =
            Some(wrap(SecurityReviewCoverage).with(security_review_coverage));
    }
    if shows(DesignReviewCoverage) {
        kpis.design_review_coverage = Some(wrap(DesignReviewCoverage).with(design_review_coverage));
    }
    if shows(ThreatModelCoverage) {
        kpis.threat_model_coverage = Some(wrap(ThreatModelCoverage).with(threat_model_coverage));
    }
    if shows(Mttr) {
        kpis.mttr = Some(wrap(Mttr).with(findings.mttr));
    }
    if shows(FindingsAging) {
        kpis.findings_aging = Some(wrap(FindingsAging).with(findings.aging));
    }
    if shows(SecretExposure) {
        kpis.secret_exposure = Some(wrap(SecretExposure).with(secret_exposure));
    }
    if shows(ReleaseGate) {
        kpis.release_gate = Some(wrap(ReleaseGate).with(release_gate));
    }
    if shows(ExceptionDebt) {
        kpis.exception_debt = Some(wrap(ExceptionDebt).with(exception_debt));
    }
    if shows(SlaAttainment) {
        kpis.sla_attainment = Some(wrap(SlaAttainment).with(findings.sla));
    }
    if shows(DetectionTriage) {
        kpis.detection_triage = Some(wrap(DetectionTriage).with(detection_triage));
    }

    let severity_downgrades = warnings::severity_downgrades(estate, period);
    let warnings = warnings::collect(
        estate,
        &scope,
        period,
        cfg,
        &severity_downgrades,
        &findings.inconsistent,
    );
    KpiPack {
        period: *period,
        previous_period,
        generated_at,
        maturity: cfg.maturity,
        kpis,
        warnings,
        severity_downgrades,
        inconsistent_findings: findings.inconsistent.len() as u64,
        history: Vec::new(),
    }
}

/// Headline figures of the `n` periods ending with `period` (oldest first),
/// each computed by the engine for its own period.
pub fn history(estate: &Estate, period: &Period, cfg: &KpiConfig, n: usize) -> Vec<HistoryPoint> {
    let scope = Scope::new(estate);
    let mut periods = Vec::with_capacity(n);
    let mut p = *period;
    for _ in 0..n {
        periods.push(p);
        p = p.previous();
    }
    periods.reverse();
    periods
        .into_iter()
        .map(|p| {
            let f = Figures::compute(estate, &scope, &p, cfg);
            HistoryPoint {
                period: p,
                headlines: Segments(
                    KpiId::ALL
                        .iter()
                        .filter(|id| cfg.maturity.shows(**id))
                        .map(|id| (id.as_str().to_string(), f.headline(*id)))
                        .collect(),
                ),
                mttr_high_days: f.findings.mttr.high_production_mean(),
            }
        })
        .collect()
}

/// [`compute`] plus the headline history of the last `n` periods.
pub fn with_history(
    estate: &Estate,
    period: &Period,
    cfg: &KpiConfig,
    generated_at: Time,
    n: usize,
) -> KpiPack {
    let mut pack = compute(estate, period, cfg, generated_at);
    pack.history = history(estate, period, cfg, n);
    pack
}

#[cfg(test)]
mod tests;
