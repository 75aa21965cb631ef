//! The terminal rendering: an aligned table, one row per KPI in the monthly
//! pack's order, with trend arrows, target status and the business sentence.
//! Colour (ANSI) only when the caller says the output is a terminal.

use super::{lines, status_word, trend_word, Line};
use crate::kpi::{KpiPack, TargetStatus, Trend};
use std::fmt::Write as _;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    let mut out = s.to_string();
    out.extend(std::iter::repeat(' ').take(w.saturating_sub(width(s))));
    out
}

fn paint(s: String, code: &str, color: bool) -> String {
    if color && !code.is_empty() {
        format!("{code}{s}{RESET}")
    } else {
        s
    }
}

fn trend_cell(l: &Line) -> String {
    format!("{} {} (prev {})", l.arrow, trend_word(l.trend), l.previous)
}

fn trend_color(t: Option<Trend>) -> &'static str {
    match t {
        Some(Trend::Improving) => GREEN,
        Some(Trend::Worsening) => RED,
        _ => "",
    }
}

fn status_cell(l: &Line) -> String {
    match l.status {
        TargetStatus::NoTarget => status_word(l.status).to_string(),
        s => format!("{} ({})", status_word(s), l.target),
    }
}

fn status_color(s: TargetStatus) -> &'static str {
    match s {
        TargetStatus::OnTarget => GREEN,
        TargetStatus::OffTarget => RED,
        TargetStatus::NoTarget => "",
    }
}

/// The pack as an aligned table.
pub fn render(pack: &KpiPack, color: bool) -> String {
    let rows = lines(pack);
    let headers = [
        "KPI",
        "Figure",
        "Trend vs previous",
        "Target",
        "Denominator",
    ];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|l| {
            [
                l.title.to_string(),
                l.figure.clone(),
                trend_cell(l),
                status_cell(l),
                l.detail.clone(),
            ]
        })
        .collect();
    let mut w = headers.map(width);
    for c in &cells {
        for (i, cell) in c.iter().enumerate() {
            w[i] = w[i].max(width(cell));
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        paint(
            format!(
                "Security KPI pack {} (previous {}), generated {}",
                pack.period.label(),
                pack.previous_period.label(),
                crate::kpi::period::rfc3339(&pack.generated_at)
            ),
            BOLD,
            color
        )
    );
    let _ = writeln!(out);
    let header: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| pad(h, if i == 4 { 0 } else { w[i] }))
        .collect();
    let _ = writeln!(
        out,
        "{}",
        paint(header.join("  ").trim_end().to_string(), BOLD, color)
    );
    let rule: Vec<String> = w.iter().map(|n| "-".repeat(*n)).collect();
    let _ = writeln!(out, "{}", rule.join("  "));
    for (l, c) in rows.iter().zip(&cells) {
        let row = [
            pad(&c[0], w[0]),
            pad(&c[1], w[1]),
            paint(pad(&c[2], w[2]), trend_color(l.trend), color),
            paint(pad(&c[3], w[3]), status_color(l.status), color),
            c[4].clone(),
        ];
        let _ = writeln!(out, "{}", row.join("  ").trim_end());
        let indent = " ".repeat(w[0] + 2);
        let _ = writeln!(
            out,
            "{indent}{}",
            paint(
                format!("why: {} (owner: {})", l.business, l.owner),
                DIM,
                color
            )
        );
    }
    let (labels, history) = super::history_rows(pack);
    if !labels.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{}",
            paint("Headline history".to_string(), BOLD, color)
        );
        let title_w = history.iter().map(|(t, _)| width(t)).max().unwrap_or(0);
        let col_w: Vec<usize> = (0..labels.len())
            .map(|i| {
                history
                    .iter()
                    .map(|(_, v)| width(&v[i]))
                    .chain(std::iter::once(width(&labels[i])))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let head: Vec<String> = labels
            .iter()
            .zip(&col_w)
            .map(|(l, w)| format!("{l:>w$}"))
            .collect();
        let _ = writeln!(out, "{}  {}", pad("", title_w), head.join("  "));
        for (title, values) in &history {
            let cells: Vec<String> = values
                .iter()
                .zip(&col_w)
                .map(|(v, w)| format!("{}{v}", " ".repeat(w.saturating_sub(width(v)))))
                .collect();
            let _ = writeln!(out, "{}  {}", pad(title, title_w), cells.join("  "));
        }
    }
    if !pack.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", paint("Warnings".to_string(), BOLD, color));
        for warning in &pack.warnings {
            let _ = writeln!(out, "  - {warning}");
        }
    }
    if pack.severity_downgrades.count > 0 {
        let _ = writeln!(
            out,
            "\nSeverity lowered during the period: {} finding(s).",
            pack.severity_downgrades.count
        );
    }
    out
}
