//! A deterministic demo estate: dozens of apps across tiers and product
//! lines and a year of findings, reviews, exceptions, releases, secret
//! alerts and incidents, from a seed. No clock reads: `now` is a parameter,
//! so the same (size, now, seed) always gives the same records.

use crate::estate::Estate;
use chrono::TimeDelta;
use secmetrics_connectors::{
    Asset, Domain, Environment, Exception, Extra, Finding, Gate, Incident, Record, Release, Repo,
    RepoType, Review, ReviewType, SecretAlert, SecretResolution, SecretValidity, Severity, Status,
    ThreatModel, Time, Validity,
};

/// Source name stamped on generated records that have no scanner.
pub const SOURCE: &str = "demo";

/// SplitMix64: tiny, fast, and good enough for synthetic data; our own so
/// the demo does not change when a dependency changes its algorithm.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability p.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Index into cumulative weights.
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

const PRODUCT_LINES: [&str; 6] = [
    "payments", "identity", "growth", "platform", "data", "mobile",
];
const SCANNERS: [(&str, Domain); 6] = [
    ("sast", Domain::Application),
    ("dast", Domain::Application),
    ("pentest", Domain::Application),
    ("sca", Domain::Hygiene),
    ("cspm", Domain::Infrastructure),
    ("bugbounty", Domain::Application),
];
const GATE_REASONS: [&str; 5] = [
    "critical vuln open",
    "sbom missing",
    "dast not run",
    "secret detected",
    "license violation",
];
const SECRET_TYPES: [&str; 5] = [
    "aws_key",
    "github_pat",
    "slack_token",
    "stripe_key",
    "private_key",
];
/// An asset id no asset record defines, so the demo shows `unmapped`.
const GHOST_ASSET: &str = "legacy-monolith";

const DAY: f64 = 86_400.0;

fn ago(now: Time, days: f64) -> Time {
    now - TimeDelta::seconds((days * DAY) as i64)
}

fn after(t: Time, days: f64) -> Time {
    t + TimeDelta::seconds((days * DAY) as i64)
}

/// How many records of each kind a demo of `findings` findings has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSize {
    /// Findings.
    pub findings: usize,
    /// Assets (dozens for small demos, more for benchmarks).
    pub assets: usize,
    /// Repos.
    pub repos: usize,
    /// Exceptions.
    pub exceptions: usize,
    /// Releases.
    pub releases: usize,
    /// Secret alerts.
    pub secret_alerts: usize,
    /// Incidents.
    pub incidents: usize,
}

impl DemoSize {
    /// Other kinds proportional to the number of findings.
    pub fn for_findings(findings: usize) -> DemoSize {
        let assets = (findings / 400).clamp(48, 5_000);
        DemoSize {
            findings,
            assets,
            repos: assets * 3,
            exceptions: (findings / 100).max(20),
            releases: (findings / 20).max(60),
            secret_alerts: (findings / 10).max(40),
            incidents: (findings / 200).max(24),
        }
    }
}

/// Generate the demo records into `sink`, in dependency order (assets and
/// repos first).
pub fn generate_into(size: usize, now: Time, seed: u64, mut sink: impl FnMut(Record)) {
    let n = DemoSize::for_findings(size);
    let mut rng = Rng::new(seed);

    let mut asset_ids = Vec::with_capacity(n.assets);
    let mut critical_assets = Vec::new();
    for i in 0..n.assets {
        let id = format!("svc-{i:04}");
        let tier = [1u8, 2, 3][rng.weighted(&[0.15, 0.35, 0.5])];
        let critical = tier == 1 || rng.chance(0.05);
        let in_scope = !rng.chance(0.04);
        if critical && in_scope {
            critical_assets.push(id.clone());
        }
        sink(Record::Asset(Asset {
            id: id.clone(),
            source: SOURCE.into(),
            name: id.clone(),
            tier,
            critical,
            in_scope,
            product_line: Some(PRODUCT_LINES[rng.below(PRODUCT_LINES.len())].into()),
            owner: Some(format!("team-{}", rng.below(12) + 1)),
            extra: Extra::default(),
        }));
        asset_ids.push(id);
    }

    let mut repo_ids = Vec::with_capacity(n.repos);
    for i in 0..n.repos {
        let asset = &asset_ids[i % asset_ids.len()];
        let id = format!("acme/{asset}-{}", ["api", "web", "infra"][i % 3]);
        sink(Record::Repo(Repo {
            id: id.clone(),
            source: SOURCE.into(),
            repo_type: if i % 3 == 2 {
                RepoType::Pipeline
            } else {
                RepoType::Repository
            },
            asset: Some(asset.clone()),
            in_scope: !rng.chance(0.08),
            secret_scanning: Some(rng.chance(0.85)),
            push_protection: Some(rng.chance(0.6)),
            extra: Extra::default(),
        }));
        repo_ids.push(id);
    }

    for (i, asset) in asset_ids.iter().enumerate() {
        for j in 0..rng.below(4) {
            sink(Record::Review(Review {
                id: format!("REV-{i}-{j}"),
                source: SOURCE.into(),
                asset: asset.clone(),
                review_type: if rng.chance(0.45) {
                    ReviewType::Design
                } else {
                    ReviewType::Security
                },
                completed_at: ago(now, rng.unit() * 540.0),
                extra: Extra::default(),
            }));
        }
    }
    for (i, asset) in critical_assets.iter().enumerate() {
        if rng.chance(0.75) {
            sink(Record::ThreatModel(ThreatModel {
                id: format!("TM-{i}"),
                source: SOURCE.into(),
                asset: asset.clone(),
                reviewed_at: ago(now, rng.unit() * 600.0),
                extra: Extra::default(),
            }));
        }
    }

    let mean_fix_days = [18.0, 35.0, 70.0, 120.0, 160.0];
    for i in 0..n.findings {
        let (source, domain) = SCANNERS[rng.below(SCANNERS.len())];
        let asset = if rng.chance(0.005) {
            GHOST_ASSET.to_string()
        } else {
            asset_ids[rng.below(asset_ids.len())].clone()
        };
        let severity = Severity::ALL[rng.weighted(&[0.05, 0.2, 0.35, 0.3, 0.1])];
        let opened_at = ago(now, rng.unit() * 365.0);
        let validity = [
            Validity::Valid,
            Validity::Unverified,
            Validity::FalsePositive,
            Validity::Duplicate,
            Validity::Invalid,
        ][rng.weighted(&[0.6, 0.25, 0.07, 0.05, 0.03])];
        let fix = rng.exp(mean_fix_days[severity as usize]);
        let fixed_at = after(opened_at, fix);
        let (status, resolved_at) = match validity {
            Validity::FalsePositive | Validity::Invalid => {
                (Status::Closed, Some(after(opened_at, rng.exp(5.0))))
            }
            _ if fixed_at < now => {
                let s = [Status::Remediated, Status::Mitigated, Status::RiskAccepted]
                    [rng.weighted(&[0.8, 0.15, 0.05])];
                (s, Some(fixed_at))
            }
            _ if rng.chance(0.03) => (Status::RiskAccepted, None),
            _ => (Status::Open, None),
        };
        let duplicate_of =
            (validity == Validity::Duplicate && i > 0).then(|| format!("F-{}", rng.below(i)));
        sink(Record::Finding(Finding {
            id: format!("F-{i}"),
            source: source.into(),
            asset,
            title: None,
            severity,
            environment: if rng.chance(0.7) {
                Environment::Production
            } else {
                Environment::NonProduction
            },
            domain,
            opened_at,
            status,
            resolved_at,
            validity,
            duplicate_of,
            fingerprint: None,
            url: None,
            refs: Vec::new(),
            extra: Extra::default(),
        }));
    }

    for i in 0..n.exceptions {
        let opened_at = ago(now, rng.unit() * 400.0);
        let expires_at =
            (!rng.chance(0.1)).then(|| after(opened_at, [90.0, 180.0, 365.0][rng.below(3)]));
        let closed_at = rng
            .chance(0.3)
            .then(|| after(opened_at, rng.unit() * 200.0))
            .filter(|t| *t < now);
        sink(Record::Exception(Exception {
            id: format!("RA-{i}"),
            source: SOURCE.into(),
            asset: asset_ids[rng.below(asset_ids.len())].clone(),
            opened_at,
            expires_at,
            closed_at,
            findings: Vec::new(),
            reason: Some("compensating control".into()),
            extra: Extra::default(),
        }));
    }

    for i in 0..n.releases {
        let gate = [Gate::Passed, Gate::PassedWithException, Gate::Failed]
            [rng.weighted(&[0.75, 0.12, 0.13])];
        let reason = (gate != Gate::Passed)
            .then(|| GATE_REASONS[rng.weighted(&[0.35, 0.25, 0.2, 0.12, 0.08])].to_string());
        sink(Record::Release(Release {
            id: format!("REL-{i}"),
            source: SOURCE.into(),
            asset: asset_ids[rng.below(asset_ids.len())].clone(),
            at: ago(now, rng.unit() * 365.0),
            gate,
            reason,
            extra: Extra::default(),
        }));
    }

    for i in 0..n.secret_alerts {
        let opened_at = ago(now, rng.unit() * 365.0);
        let resolved = rng.chance(0.7);
        let resolution = resolved.then(|| {
            [
                SecretResolution::Revoked,
                SecretResolution::WontFix,
                SecretResolution::FalsePositive,
                SecretResolution::UsedInTests,
                SecretResolution::PatternEdited,
            ][rng.weighted(&[0.5, 0.1, 0.2, 0.15, 0.05])]
        });
        let resolved_at = resolved
            .then(|| after(opened_at, rng.exp(10.0)))
            .filter(|t| *t < now);
        sink(Record::SecretAlert(SecretAlert {
            id: format!("S-{i}"),
            source: SOURCE.into(),
            repo: repo_ids[rng.below(repo_ids.len())].clone(),
            secret_type: Some(SECRET_TYPES[rng.below(SECRET_TYPES.len())].into()),
            opened_at,
            resolved_at,
            resolution: resolved_at.and(resolution),
            validity: [
                SecretValidity::Active,
                SecretValidity::Inactive,
                SecretValidity::Unknown,
            ][rng.weighted(&[0.2, 0.3, 0.5])],
            push_protection_bypassed: rng.chance(0.05),
            extra: Extra::default(),
        }));
    }

    for i in 0..n.incidents {
        let alerted_at = ago(now, rng.unit() * 365.0);
        let triaged_at = (!rng.chance(0.05)).then(|| after(alerted_at, rng.exp(12.0) / 24.0));
        let contained_at = rng
            .chance(0.8)
            .then(|| after(alerted_at, rng.exp(72.0) / 24.0));
        let validated = [Some(true), Some(false), None][rng.weighted(&[0.6, 0.3, 0.1])];
        sink(Record::Incident(Incident {
            id: format!("INC-{i}"),
            source: SOURCE.into(),
            asset: Some(asset_ids[rng.below(asset_ids.len())].clone()),
            severity: Some(Severity::ALL[rng.weighted(&[0.1, 0.3, 0.4, 0.2, 0.0])]),
            alerted_at,
            triaged_at,
            contained_at,
            validated,
            extra: Extra::default(),
        }));
    }
}

/// The demo records of `size` findings (plus proportional other kinds).
pub fn generate(size: usize, now: Time, seed: u64) -> Vec<Record> {
    let mut out = Vec::new();
    generate_into(size, now, seed, |r| out.push(r));
    out
}

/// The demo estate directly (identities are unique, so no upsert pass is
/// needed); what benchmarks use.
pub fn estate(size: usize, now: Time, seed: u64) -> Estate {
    let n = DemoSize::for_findings(size);
    let mut estate = Estate::default();
    estate.findings.reserve_exact(n.findings);
    generate_into(size, now, seed, |r| estate.push(r));
    estate
}

/// Link the findings of a generated estate the way real sources do, for
/// the reconciliation benchmark: every scanner finding gets a `url`; about
/// one in ten is a second tool's report of the previous finding (same asset
/// and fingerprint); and one ticket (source `jira`, with `refs`) is added
/// for about every twenty findings, naming one or two scanner urls.
pub fn link(estate: &mut Estate, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x5EC_4EC0);
    let n = estate.findings.len();
    for i in 0..n {
        let url = format!(
            "https://{}.example/{}",
            estate.findings[i].source, estate.findings[i].id
        );
        estate.findings[i].url = Some(url);
        if i > 0 && rng.chance(0.1) {
            let fp = format!("fp-{}", i - 1);
            let asset = estate.findings[i - 1].asset.clone();
            estate.findings[i - 1].fingerprint = Some(fp.clone());
            estate.findings[i].fingerprint = Some(fp);
            estate.findings[i].asset = asset;
        }
    }
    let tickets = n / 20;
    estate.findings.reserve(tickets);
    for k in 0..tickets {
        let target = rng.below(n);
        let mut refs = vec![estate.findings[target].url.clone().unwrap_or_default()];
        if rng.chance(0.2) {
            let other = rng.below(n);
            refs.push(estate.findings[other].url.clone().unwrap_or_default());
        }
        let t = &estate.findings[target];
        let ticket = Finding {
            id: format!("SEC-{k}"),
            source: "jira".into(),
            asset: t.asset.clone(),
            title: None,
            severity: t.severity,
            environment: t.environment,
            domain: t.domain,
            opened_at: t.opened_at + TimeDelta::hours(rng.below(72) as i64),
            status: if rng.chance(0.5) {
                t.status
            } else {
                Status::Open
            },
            resolved_at: t.resolved_at,
            validity: if rng.chance(0.1) {
                Validity::FalsePositive
            } else {
                Validity::Unverified
            },
            duplicate_of: None,
            fingerprint: None,
            url: Some(format!("https://jira.example/browse/SEC-{k}")),
            refs,
            extra: Extra::default(),
        };
        estate.findings.push(ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        "2026-11-15T12:00:00Z".parse().expect("time")
    }

    #[test]
    fn same_seed_gives_the_same_records() {
        assert_eq!(generate(500, now(), 7), generate(500, now(), 7));
        assert_ne!(generate(500, now(), 7), generate(500, now(), 8));
    }

    #[test]
    fn size_is_the_number_of_findings_and_other_kinds_follow() {
        let e = estate(2_000, now(), 1);
        assert_eq!(e.findings.len(), 2_000);
        assert_eq!(e.assets.len(), 48);
        assert!(e.releases.len() >= 60);
        assert!(e.exceptions.iter().any(|x| x.expires_at.is_none()));
        assert!(e.findings.iter().any(|f| f.validity == Validity::Duplicate));
        assert!(e.findings.iter().all(|f| f.opened_at < now()));
    }

    #[test]
    fn demo_records_survive_the_ndjson_round_trip() {
        for r in generate(200, now(), 3).into_iter().step_by(17) {
            let line = r.to_json().to_string();
            let back = secmetrics_connectors::ndjson::parse_line(&line, "import").expect("parses");
            assert_eq!(back, r);
        }
    }
}
