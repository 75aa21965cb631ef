//! The Markdown rendering: a wiki page with the monthly pack as a table, the
//! segments behind each figure, and the warnings.

use super::{lines, pct, status_word, trend_word};
use crate::kpi::KpiPack;
use std::fmt::Write as _;

/// Escape the characters that would break a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The pack as a Markdown page.
pub fn render(pack: &KpiPack) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Security KPI pack {}\n", pack.period.label());
    let _ = writeln!(
        out,
        "Period {} to {} (half-open, UTC); trends against {}. Generated {}.\n",
        crate::kpi::period::rfc3339(&pack.period.start),
        crate::kpi::period::rfc3339(&pack.period.end),
        pack.previous_period.label(),
        crate::kpi::period::rfc3339(&pack.generated_at)
    );
    let _ = writeln!(
        out,
        "| KPI | Figure | Denominator | Trend | Target | Owner | Why it matters |"
    );
    let _ = writeln!(out, "|---|---:|---|---|---|---|---|");
    for l in lines(pack) {
        let _ = writeln!(
            out,
            "| {} | **{}** | {} | {} {} (previous {}) | {}{} | {} | {} |",
            cell(l.title),
            cell(&l.figure),
            cell(&l.detail),
            l.arrow.trim(),
            trend_word(l.trend),
            cell(&l.previous),
            status_word(l.status),
            if l.target == "-" {
                String::new()
            } else {
                format!(" ({})", cell(&l.target))
            },
            cell(&l.owner),
            cell(&l.business)
        );
    }

    if let Some(a) = &pack.kpis.findings_aging {
        let _ = writeln!(out, "\n## Open findings by age\n");
        let _ = writeln!(out, "| Segment | 0-30 d | 31-90 d | over 90 d |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let a = &a.figures;
        for (k, b) in a.by_severity.0.iter().chain(&a.by_domain.0) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(k),
                b.days_0_30,
                b.days_31_90,
                b.over_90
            );
        }
    }
    if let Some(m) = &pack.kpis.mttr {
        let _ = writeln!(out, "\n## Time to remediate (days)\n");
        let _ = writeln!(
            out,
            "| Severity | Environment | Count | Mean | Median | p90 |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        let num = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}"));
        for (sev, envs) in &m.figures.by_severity.0 {
            for (env, c) in &envs.0 {
                let _ = writeln!(
                    out,
                    "| {sev} | {env} | {} | {} | {} | {} |",
                    c.count,
                    num(c.mean_days),
                    num(c.median_days),
                    num(c.p90_days)
                );
            }
        }
    }
    if let Some(c) = &pack.kpis.design_review_coverage {
        let _ = writeln!(out, "\n## Design review coverage by product line\n");
        let _ = writeln!(out, "| Product line | Covered | Assets | Coverage |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for (pl, r) in &c.figures.by_product_line.0 {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(pl),
                r.numerator,
                r.denominator,
                pct(r.value)
            );
        }
    }
    if let Some(t) = &pack.kpis.threat_model_coverage {
        let t = &t.figures;
        if !t.stale.is_empty() || !t.missing.is_empty() {
            let _ = writeln!(out, "\n## Critical assets without a current threat model\n");
            if !t.missing.is_empty() {
                let _ = writeln!(out, "- Missing: {}", t.missing.join(", "));
            }
            if !t.stale.is_empty() {
                let _ = writeln!(out, "- Stale: {}", t.stale.join(", "));
            }
        }
    }
    let (labels, rows) = super::history_rows(pack);
    if !labels.is_empty() {
        let _ = writeln!(out, "\n## Headline history\n");
        let _ = writeln!(out, "| KPI | {} |", labels.join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(labels.len()));
        for (title, values) in rows {
            let _ = writeln!(out, "| {} | {} |", cell(title), values.join(" | "));
        }
    }
    if !pack.warnings.is_empty() {
        let _ = writeln!(out, "\n## Warnings\n");
        for w in &pack.warnings {
            let _ = writeln!(out, "- {}", w);
        }
    }
    out
}
