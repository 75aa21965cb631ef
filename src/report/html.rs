//! The HTML rendering: one self-contained page (inline CSS and SVG, no
//! external resources) with the monthly pack, its charts and warnings.

use super::{charts, lines, status_word, trend_word};
use crate::kpi::{KpiPack, TargetStatus, Trend};
use std::fmt::Write as _;

/// Escape text for HTML content and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}\
h1{font-size:1.6rem;margin-bottom:.2rem}.sub{color:#666;margin-top:0}\
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{padding:.45rem .6rem;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}\
th{background:#f5f6f8;font-weight:600}td.fig{font-size:1.15rem;font-weight:600;white-space:nowrap}\
.why{color:#555;font-size:.9rem}.improving{color:#2e7d32}.worsening{color:#c0392b}.flat,.none{color:#777}\
.on_target{color:#2e7d32}.off_target{color:#c0392b}.no_target{color:#777}\
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:1.2rem}.chart{min-width:0}.chart svg{display:block;width:100%;height:auto}\
.warn li{margin:.2rem 0}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.8rem;margin:1rem 0}\
.card{border:1px solid #e3e3e3;border-radius:8px;padding:.7rem .9rem;background:#fafbfc}\
.ct{font-size:.85rem;color:#555}.cf{font-size:1.7rem;font-weight:700;margin:.2rem 0}";

fn trend_class(t: Option<Trend>) -> &'static str {
    match t {
        Some(Trend::Improving) => "improving",
        Some(Trend::Worsening) => "worsening",
        Some(Trend::Flat) => "flat",
        None => "none",
    }
}

fn status_class(s: TargetStatus) -> &'static str {
    match s {
        TargetStatus::OnTarget => "on_target",
        TargetStatus::OffTarget => "off_target",
        TargetStatus::NoTarget => "no_target",
    }
}

/// The pack as a self-contained HTML page.
pub fn render(pack: &KpiPack) -> String {
    let mut out = String::new();
    let label = pack.period.label();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>Security KPI pack {}</title><style>{STYLE}</style></head><body>\n",
        escape(&label)
    );
    let _ = writeln!(out, "<h1>Security KPI pack {}</h1>", escape(&label));
    let _ = writeln!(
        out,
        "<p class=\"sub\">{} to {} (UTC, end excluded); trends against {}; generated {}.</p>",
        crate::kpi::period::rfc3339(&pack.period.start),
        crate::kpi::period::rfc3339(&pack.period.end),
        escape(&pack.previous_period.label()),
        crate::kpi::period::rfc3339(&pack.generated_at)
    );
    let _ = writeln!(out, "<div class=\"cards\">");
    for l in lines(pack) {
        let _ = writeln!(
            out,
            "<div class=\"card\"><div class=\"ct\">{}</div><div class=\"cf\">{}</div>\
<div class=\"{}\">{} {}</div><div class=\"{}\">{}</div></div>",
            escape(l.title),
            escape(&l.figure),
            trend_class(l.trend),
            escape(l.arrow.trim()),
            trend_word(l.trend),
            status_class(l.status),
            status_word(l.status)
        );
    }
    let _ = writeln!(out, "</div>");
    let _ = writeln!(
        out,
        "<table><thead><tr><th>KPI</th><th>Figure</th><th>Trend</th><th>Target</th><th>Denominator</th><th>Owner</th></tr></thead><tbody>"
    );
    for l in lines(pack) {
        let trend_class = trend_class(l.trend);
        let status_class = status_class(l.status);
        let target = if l.target == "-" {
            String::new()
        } else {
            format!(" ({})", escape(&l.target))
        };
        let _ = writeln!(
            out,
            "<tr><td><strong>{}</strong><div class=\"why\">{}</div></td><td class=\"fig\">{}</td>\
<td class=\"{trend_class}\">{} {} <span class=\"why\">(previous {})</span></td>\
<td class=\"{status_class}\">{}{}</td><td>{}</td><td>{}</td></tr>",
            escape(l.title),
            escape(&l.business),
            escape(&l.figure),
            escape(l.arrow.trim()),
            trend_word(l.trend),
            escape(&l.previous),
            status_word(l.status),
            target,
            escape(&l.detail),
            escape(&l.owner)
        );
    }
    let _ = writeln!(out, "</tbody></table>");

    let _ = writeln!(out, "<h2>Charts</h2><div class=\"charts\">");
    let mut charts_drawn = vec![charts::aging_by_severity(pack)];
    if !pack.history.is_empty() {
        charts_drawn.push(charts::mttr_over_time(pack));
        charts_drawn.push(charts::coverage_over_time(pack));
    }
    for chart in charts_drawn {
        match chart {
            Ok(svg) => {
                let _ = writeln!(out, "<div class=\"chart\">{svg}</div>");
            }
            Err(e) => {
                let _ = writeln!(out, "<p class=\"why\">Chart not drawn: {}</p>", escape(&e));
            }
        }
    }
    let _ = writeln!(out, "</div>");

    if !pack.warnings.is_empty() {
        let _ = writeln!(out, "<h2>Warnings</h2><ul class=\"warn\">");
        for w in &pack.warnings {
            let _ = writeln!(out, "<li>{}</li>", escape(w));
        }
        let _ = writeln!(out, "</ul>");
    }
    let _ = writeln!(out, "</body></html>");
    out
}
