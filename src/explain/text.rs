//! The plain-text rendering of an [`Explanation`].

use super::Explanation;
use std::fmt::Write as _;

/// Render an explanation as plain text.
pub fn render(e: &Explanation) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", e.target);
    let _ = writeln!(o);
    let _ = writeln!(o, "Record as stored");
    if let Some(map) = e.record.as_object() {
        for (k, v) in map {
            if matches!(k.as_str(), "kind" | "source" | "id") {
                continue;
            }
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = writeln!(o, "  {k:<14} {v}");
        }
    }
    let _ = writeln!(o, "  {:<14} {}", "first seen", e.first_seen);
    let _ = writeln!(o, "  {:<14} {}", "last changed", e.last_changed);
    if let Some(g) = &e.gone_at {
        let _ = writeln!(o, "  {:<14} {g}", "gone at");
    }

    let _ = writeln!(o);
    let _ = writeln!(o, "History");
    if e.history.is_empty() {
        let _ = writeln!(o, "  (no change of status, severity or validity)");
    }
    for h in &e.history {
        let _ = writeln!(
            o,
            "  {}  {}: {} -> {}",
            h.observed_at, h.field, h.old, h.new
        );
    }

    let _ = writeln!(o);
    let _ = writeln!(o, "Overrides");
    if e.overrides.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for x in &e.overrides {
        match x.action.as_str() {
            "set" => {
                let _ = writeln!(
                    o,
                    "  {}  set by {}: validity {}{} ({})",
                    x.at,
                    x.by,
                    x.validity.as_deref().unwrap_or("?"),
                    x.severity
                        .as_deref()
                        .map(|s| format!(", severity {s}"))
                        .unwrap_or_default(),
                    x.reason.as_deref().unwrap_or("")
                );
            }
            _ => {
                let _ = writeln!(o, "  {}  removed by {}", x.at, x.by);
            }
        }
    }
    if let Some(a) = &e.active_override {
        let _ = writeln!(
            o,
            "  in force: validity {}{}",
            a.validity,
            a.severity
                .as_deref()
                .map(|s| format!(", severity {s}"))
                .unwrap_or_default()
        );
    }

    if let Some(g) = &e.group {
        let _ = writeln!(o);
        let _ = writeln!(o, "Reconciliation");
        match g.role.as_str() {
            "alone" => {
                let _ = writeln!(o, "  alone: {}", g.rule_text.as_deref().unwrap_or_default());
            }
            role => {
                let _ = writeln!(
                    o,
                    "  {role} in a group of {}; {}",
                    g.members_total,
                    g.rule_text.as_deref().unwrap_or_default()
                );
                if !g.precedence.is_empty() {
                    let _ = writeln!(
                        o,
                        "  reconcile.precedence = [{}]",
                        g.precedence
                            .iter()
                            .map(|s| format!("\"{s}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                for (i, m) in g.members.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "  {}. {}  asset {}, opened {}, {}{}, validity {}{}",
                        i + 1,
                        m.target,
                        m.asset,
                        m.opened_at,
                        m.status,
                        m.resolved_at
                            .as_deref()
                            .map(|r| format!(" {r}"))
                            .unwrap_or_default(),
                        m.validity,
                        m.behind_canonical_by
                            .as_deref()
                            .map(|r| format!("; after the canonical by {r}"))
                            .unwrap_or_default()
                    );
                    for l in &m.links {
                        let _ = writeln!(o, "       {l}");
                    }
                }
                if g.members_total > g.members.len() {
                    let _ = writeln!(
                        o,
                        "  ... {} more members not listed",
                        g.members_total - g.members.len()
                    );
                }
                for (name, field) in [
                    ("opened_at", &g.opened_at),
                    ("validity", &g.validity),
                    ("status", &g.status),
                    ("resolved_at", &g.resolved_at),
                ] {
                    if let Some(f) = field {
                        let _ = writeln!(
                            o,
                            "  group {name:<11} {} from {}",
                            f.value.as_deref().unwrap_or("null"),
                            f.from
                        );
                    }
                }
                for x in &g.member_overrides {
                    let _ = writeln!(
                        o,
                        "  override on member {}: validity {} by {} at {} ({})",
                        x.target, x.validity, x.by, x.at, x.reason
                    );
                }
            }
        }
    }

    let _ = writeln!(o);
    let label = e.period["label"].as_str().unwrap_or_default();
    let _ = writeln!(o, "KPIs for {label}");
    for k in &e.kpis {
        let mark = match k.status.as_str() {
            "counts" => "counts  ",
            "excluded" => "excluded",
            "no" => "no      ",
            _ => "-       ",
        };
        let _ = writeln!(o, "  {mark} {:<30} {}", k.kpi, k.detail);
    }
    o
}
