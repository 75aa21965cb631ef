//! `secmetrics status`: what the store holds, per kind and source, and how
//! its connectors and outbox stand. With a daemon answering on the admin
//! socket (and holding the store asked about) the daemon is asked, so the
//! store it holds is never opened from here; its answer is the same
//! document plus what only it knows (passes since start, held digests).

use super::{admin_client, Context};
use crate::deliver::outbox::EntrySummary;
use crate::sync::{LastPass, PassState};
use serde_json::Value;
use std::fmt::Write as _;

/// Options of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Print the store status.
pub fn run(ctx: &Context, args: StatusArgs) -> anyhow::Result<i32> {
    let doc = match from_daemon(ctx) {
        Some(doc) => doc,
        None => {
            let store = ctx.open_store()?;
            crate::status::collect(&store)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", text(&doc));
    }
    Ok(0)
}

/// The daemon's status document, when one answers on the admin socket and
/// holds the store asked about (any store, when none was named).
fn from_daemon(ctx: &Context) -> Option<Value> {
    match admin_client::Daemon::find(ctx)?.get_json("/api/v1/status") {
        Ok((200, doc)) => Some(doc),
        _ => None,
    }
}

/// Columns padded to their widest cell; `right` marks the numeric ones.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    /// A table with these headers; a header starting with `>` is right-aligned.
    pub(crate) fn new(headers: &[&str]) -> Table {
        Table {
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: vec![headers
                .iter()
                .map(|h| h.trim_start_matches('>').to_string())
                .collect()],
        }
    }

    /// Add a row.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, one line per row, no trailing spaces.
    pub(crate) fn render(&self) -> String {
        let cols = self.right.len();
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (c, w) in widths.iter().enumerate() {
                let cell = r.get(c).map(String::as_str).unwrap_or("");
                let pad = w - cell.chars().count();
                if c > 0 {
                    line.push_str("  ");
                }
                if self.right[c] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The status document as text: aligned tables, times to the second.
pub fn text(doc: &Value) -> String {
    let mut out = String::new();
    let daemon = doc.get("daemon").filter(|d| d.is_object());
    let mut head: Vec<(&str, String)> = Vec::new();
    if let Some(d) = daemon {
        head.push(("daemon", format!("running ({})", cell(&d["socket"]))));
    }
    head.push((
        "store",
        format!(
            "{} ({})",
            cell(&doc["store"]),
            human_bytes(doc["size_on_disk"].as_u64().unwrap_or(0))
        ),
    ));
    head.push((
        "last import",
        doc["last_import"]
            .as_str()
            .map(seconds)
            .unwrap_or_else(|| "never".into()),
    ));
    head.push(("history", format!("{} entries", doc["history_entries"])));
    for (label, value) in head {
        let _ = writeln!(out, "{label:<12} {value}");
    }

    let mut by_source = Table::new(&["kind", "source", ">records"]);
    for r in doc["records_by_source"].as_array().into_iter().flatten() {
        by_source.row(vec![
            cell(&r["kind"]),
            cell(&r["source"]),
            cell(&r["count"]),
        ]);
    }
    let _ = write!(out, "\n{}", by_source.render());
    let mut per_kind = Table::new(&["kind", ">distinct"]);
    let mut total = 0;
    for (kind, n) in doc["records"].as_object().into_iter().flatten() {
        total += n.as_u64().unwrap_or(0);
        per_kind.row(vec![kind.clone(), cell(n)]);
    }
    per_kind.row(vec!["total".into(), total.to_string()]);
    let _ = write!(out, "\n{}", per_kind.render());
    let gone = doc["gone"].as_u64().unwrap_or(0);
    if gone > 0 {
        let _ = writeln!(
            out,
            "\n{gone} records are marked gone (no longer returned by their source)."
        );
    }
    let unknown = doc["repos_secret_scanning_unknown"].as_u64().unwrap_or(0);
    if unknown > 0 {
        let _ = writeln!(
            out,
            "\n{unknown} in-scope repos have an unknown secret-scanning state (the token cannot see \
             `security_and_analysis`); they count as not covered."
        );
    }
    let undelivered: Vec<EntrySummary> =
        serde_json::from_value(doc["outbox_undelivered"].clone()).unwrap_or_default();
    outbox_text(&mut out, &doc["outbox"], &undelivered);
    if let Some(held) = daemon
        .and_then(|d| d["digests_held"].as_array())
        .filter(|h| !h.is_empty())
    {
        let mut t = Table::new(&["digest", "period", "fired", "reason"]);
        for h in held {
            t.row(vec![
                cell(&h["digest"]),
                cell(&h["period"]),
                h["fire_time"].as_str().map(seconds).unwrap_or_default(),
                cell(&h["reason"]),
            ]);
        }
        let _ = write!(
            out,
            "\nscheduled digests not in the outbox yet:\n{}",
            t.render()
        );
    }
    if let Some(fires) = doc["digests"].as_object().filter(|d| !d.is_empty()) {
        let mut t = Table::new(&["digest", "last fire handled"]);
        for (name, d) in fires {
            t.row(vec![name.clone(), cell(&d["last_fire"])]);
        }
        let _ = write!(out, "\n{}", t.render());
    }
    connectors_text(&mut out, doc, daemon);
    out
}

/// One row per connector: how its last pass ended and what it wrote (kept
/// in the store), its last success and error; with a daemon, whether it
/// completed a pass since the daemon started.
fn connectors_text(out: &mut String, doc: &Value, daemon: Option<&Value>) {
    let Some(connectors) = doc["connectors"].as_object().filter(|c| !c.is_empty()) else {
        return;
    };
    let mut headers = vec![
        "connector",
        "last pass",
        "ended",
        ">pages",
        ">new",
        ">replaced",
        ">unchanged",
        ">gone",
        "last success",
    ];
    if daemon.is_some() {
        headers.push("since start");
    }
    headers.push("last error");
    let mut t = Table::new(&headers);
    let mut problems = Vec::new();
    for (name, c) in connectors {
        let pass: Option<LastPass> = serde_json::from_value(c["last_pass"].clone()).ok();
        let n = |f: fn(&LastPass) -> u64| pass.as_ref().map_or("-".into(), |p| f(p).to_string());
        let mut row = vec![
            name.clone(),
            pass_cell(pass.as_ref()),
            pass.as_ref()
                .map(|p| seconds(&p.at))
                .unwrap_or_else(|| "-".into()),
            n(|p| p.pages),
            n(|p| p.new),
            n(|p| p.replaced),
            n(|p| p.unchanged),
            n(|p| p.gone),
            c["last_success"]
                .as_str()
                .map(seconds)
                .unwrap_or_else(|| "-".into()),
        ];
        if let Some(d) = daemon {
            let live = &d["connectors"][name];
            row.push(
                if live["synced_since_start"] == true {
                    "synced"
                } else {
                    "not yet"
                }
                .into(),
            );
        }
        let error = daemon
            .and_then(|d| d["connectors"][name]["last_error"].as_str())
            .or(c["last_error"].as_str())
            .unwrap_or("-");
        row.push(error.to_string());
        t.row(row);
        if let Some(p) = pass.filter(|p| p.state == PassState::Partial) {
            for problem in &p.problems {
                problems.push(format!("    {name}: unreadable: {problem}"));
            }
        }
    }
    let _ = write!(out, "\n{}", t.render());
    for p in problems {
        let _ = writeln!(out, "{p}");
    }
}

/// A last pass as one cell: its state, and the unreadable count of a
/// partial one.
fn pass_cell(pass: Option<&LastPass>) -> String {
    match pass {
        None => "-".into(),
        Some(p) if p.state == PassState::Partial => format!("partial ({})", p.unreadable),
        Some(p) => p.state.as_str().to_string(),
    }
}

/// An RFC 3339 time to the second, in UTC (the text itself when it is not
/// one).
fn seconds(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| t.to_string())
}

/// The outbox: counts by state, then every entry not delivered by digest,
/// period and channel (failed and unconfirmed ones need an operator).
fn outbox_text(out: &mut String, counts: &Value, undelivered: &[EntrySummary]) {
    let n = |state: &str| counts[state].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "\n{:<12} {} waiting to be sent; pending {}, sending {}, sent {}, failed {}, unconfirmed {}",
        "outbox",
        n("pending") + n("sending"),
        n("pending"),
        n("sending"),
        n("sent"),
        n("failed"),
        n("unconfirmed")
    );
    if undelivered.is_empty() {
        return;
    }
    let mut t = Table::new(&[
        "digest",
        "period",
        "channel",
        "state",
        ">attempts",
        "last error",
    ]);
    for e in undelivered {
        t.row(vec![
            e.digest.clone(),
            e.period.clone(),
            e.channel.clone(),
            e.state.clone(),
            e.attempts.to_string(),
            e.last_error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let _ = write!(out, "\n{}", t.render());
    if undelivered
        .iter()
        .any(|e| e.state == "failed" || e.state == "unconfirmed")
    {
        let _ = writeln!(
            out,
            "failed and unconfirmed digests are not sent again by themselves: \
             `secmetrics digest NAME --period PERIOD --resend` sends one again"
        );
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let mut t = Table::new(&["connector", ">pages", "last error"]);
        t.row(vec![
            "a-very-long-connector-name".into(),
            "7".into(),
            "-".into(),
        ]);
        t.row(vec!["gh".into(), "1234".into(), "HTTP 502".into()]);
        assert_eq!(
            t.render(),
            "connector                   pages  last error\n\
             a-very-long-connector-name      7  -\n\
             gh                           1234  HTTP 502\n"
        );
    }

    #[test]
    fn times_are_shown_to_the_second_in_utc() {
        assert_eq!(
            seconds("2026-12-01T22:41:29.123456+01:00"),
            "2026-12-01T21:41:29Z"
        );
        assert_eq!(seconds("not a time"), "not a time");
    }
}
