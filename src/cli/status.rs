//! `secmetrics status`: what the store holds, per kind and source.

use super::Context;
use crate::deliver::outbox::{self, EntrySummary, Outbox};
use crate::sync::{LastPass, PassState};
use secmetrics_connectors::Kind;
use std::collections::BTreeMap;

/// Options of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Print the store status.
pub fn run(ctx: &Context, args: StatusArgs) -> anyhow::Result<i32> {
    let daemon = daemon_status(ctx).filter(|r| {
        // Only when the daemon holds the store asked about.
        let theirs = r["store"].as_str().map(std::path::PathBuf::from);
        let same = |p: &std::path::Path| std::fs::canonicalize(p).ok();
        theirs.is_some_and(|t| same(&t).is_some() && same(&t) == same(&ctx.store_path))
    });
    if let Some(ready) = daemon {
        // The daemon holds the store: show what it reports.
        if args.json {
            println!("{}", serde_json::to_string_pretty(&ready)?);
        } else {
            println!(
                "daemon       running ({})",
                ctx.config.admin.socket.display()
            );
            println!("store        {}", ready["store"].as_str().unwrap_or("?"));
            let undelivered: Vec<EntrySummary> =
                serde_json::from_value(ready["outbox_undelivered"].clone()).unwrap_or_default();
            print_outbox(&ready["outbox"], &undelivered);
            if let Some(held) = ready["digests_held"].as_array().filter(|h| !h.is_empty()) {
                println!("\nscheduled digests not in the outbox yet:");
                println!("{:<16} {:<12} {:<22} reason", "digest", "period", "fired");
                for h in held {
                    println!(
                        "{:<16} {:<12} {:<22} {}",
                        h["digest"].as_str().unwrap_or("?"),
                        h["period"].as_str().unwrap_or("?"),
                        h["fire_time"].as_str().unwrap_or("?"),
                        h["reason"].as_str().unwrap_or("?")
                    );
                }
            }
            if let Some(c) = ready["connectors"].as_object() {
                println!(
                    "\n{:<20} {:<20} {:<20} {:>9} {:>7}  last error",
                    "connector", "last pass", "last success", "records", "errors"
                );
                for (name, s) in c {
                    let pass: Option<LastPass> =
                        serde_json::from_value(s["last_pass"].clone()).ok();
                    println!(
                        "{:<20} {:<20} {:<20} {:>9} {:>7}  {}",
                        name,
                        pass_cell(pass.as_ref()),
                        seconds(s["last_success"].as_str()),
                        s["records"],
                        s["errors"],
                        s["last_error"].as_str().unwrap_or("-")
                    );
                    print_problems(name, pass.as_ref());
                }
            }
        }
        return Ok(0);
    }
    let store = ctx.open_store()?;
    let status = store.status()?;
    let summaries = Outbox::open(&store)?.summaries()?;
    let passes: BTreeMap<String, LastPass> = LastPass::load_all(&store)?.into_iter().collect();
    // Connectors with a cursor or a last pass (one interrupted before its
    // first page has no cursor yet).
    let names: std::collections::BTreeSet<&String> =
        status.cursors.keys().chain(passes.keys()).collect();
    let mut per_kind: BTreeMap<Kind, u64> = BTreeMap::new();
    for ((kind, _), n) in &status.records {
        *per_kind.entry(*kind).or_default() += n;
    }
    if args.json {
        let json = serde_json::json!({
            "store": store.path(),
            "size_on_disk": status.size_on_disk,
            "last_import": status.last_import.map(|t| t.to_rfc3339()),
            "records": per_kind.iter().map(|(k, n)| (k.as_str(), n)).collect::<BTreeMap<_, _>>(),
            "records_by_source": status.records.iter()
                .map(|((k, s), n)| serde_json::json!({"kind": k.as_str(), "source": s, "count": n}))
                .collect::<Vec<_>>(),
            "gone": status.gone.values().sum::<u64>(),
            "history_entries": status.history_entries,
            "repos_secret_scanning_unknown": status.repos_unknown_scanning,
            "outbox_depth": outbox::depth_of(&summaries),
            "outbox": outbox::counts_of(&summaries),
            "outbox_undelivered": outbox::undelivered_of(&summaries),
            "connectors": names.iter().map(|name| {
                let c = status.cursors.get(*name).cloned().unwrap_or_default();
                ((*name).clone(), serde_json::json!({
                    "last_commit": c.last_commit_us.map(crate::store::time_text),
                    "last_success": c.last_success_us.map(crate::store::time_text),
                    "last_error": c.last_error,
                    "last_pass": passes.get(*name),
                }))
            }).collect::<BTreeMap<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(0);
    }
    println!(
        "store        {} ({})",
        store.path().display(),
        human_bytes(status.size_on_disk)
    );
    println!(
        "last import  {}",
        status
            .last_import
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into())
    );
    println!();
    println!("{:<14} {:<20} {:>10}", "kind", "source", "records");
    for ((kind, source), n) in &status.records {
        println!("{:<14} {:<20} {:>10}", kind.as_str(), source, n);
    }
    println!();
    println!("{:<14} {:>10}", "kind", "distinct");
    for (kind, n) in &per_kind {
        println!("{:<14} {:>10}", kind.as_str(), n);
    }
    println!("{:<14} {:>10}", "total", per_kind.values().sum::<u64>());
    let gone: u64 = status.gone.values().sum();
    if gone > 0 {
        println!("\n{gone} records are marked gone (no longer returned by their source).");
    }
    if status.repos_unknown_scanning > 0 {
        println!(
            "\n{} in-scope repos have an unknown secret-scanning state (the token cannot see \
             `security_and_analysis`); they count as not covered.",
            status.repos_unknown_scanning
        );
    }
    println!("history entries {}", status.history_entries);
    print_outbox(
        &serde_json::to_value(outbox::counts_of(&summaries))?,
        &outbox::undelivered_of(&summaries),
    );
    if !names.is_empty() {
        println!(
            "\n{:<20} {:<20} {:<20} {:<20} last error",
            "connector", "last pass", "last commit", "last success"
        );
        for name in &names {
            let c = status.cursors.get(*name).cloned().unwrap_or_default();
            let pass = passes.get(*name);
            println!(
                "{:<20} {:<20} {:<20} {:<20} {}",
                name,
                pass_cell(pass),
                c.last_commit_us
                    .map(crate::store::time_text)
                    .unwrap_or_else(|| "-".into()),
                c.last_success_us
                    .map(crate::store::time_text)
                    .unwrap_or_else(|| "-".into()),
                c.last_error.as_deref().unwrap_or("-"),
            );
            print_problems(name, pass);
        }
    }
    Ok(0)
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

/// The unreadable items a partial pass named, indented under its row.
fn print_problems(name: &str, pass: Option<&LastPass>) {
    if let Some(p) = pass.filter(|p| p.state == PassState::Partial) {
        for problem in &p.problems {
            println!("    {name}: unreadable: {problem}");
        }
    }
}

/// An RFC 3339 time to the second, `-` when absent.
fn seconds(t: Option<&str>) -> String {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|| "-".into())
}

/// The outbox: counts by state, then every entry not delivered by digest,
/// period and channel (failed and unconfirmed ones need an operator).
fn print_outbox(counts: &serde_json::Value, undelivered: &[EntrySummary]) {
    let n = |state: &str| counts[state].as_u64().unwrap_or(0);
    println!(
        "outbox       {} waiting to be sent; pending {}, sending {}, sent {}, failed {}, unconfirmed {}",
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
    println!(
        "\n{:<16} {:<12} {:<8} {:<12} {:>8}  last error",
        "digest", "period", "channel", "state", "attempts"
    );
    for e in undelivered {
        println!(
            "{:<16} {:<12} {:<8} {:<12} {:>8}  {}",
            e.digest,
            e.period,
            e.channel,
            e.state,
            e.attempts,
            e.last_error.as_deref().unwrap_or("-")
        );
    }
    if undelivered
        .iter()
        .any(|e| e.state == "failed" || e.state == "unconfirmed")
    {
        println!(
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

/// `/readyz` of a running daemon, if one answers on the admin socket.
fn daemon_status(ctx: &Context) -> Option<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let client = super::admin_client::connect(&ctx.config.admin.socket).await?;
        client
            .get(super::admin_client::url("/readyz"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    })
}
