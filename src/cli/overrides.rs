//! `secmetrics override`: set, list and remove manual overrides (validity
//! and severity a person decided, with who, why and when). Through the
//! daemon's admin API when it holds the store, directly otherwise.

use super::{admin_client, Context};
use crate::reconcile::overrides::{self, OverrideView, SetOverride};
use secmetrics_connectors::{Severity, Validity};

/// Options of `override`.
#[derive(Debug, clap::Args)]
pub struct OverrideArgs {
    /// The record: KIND/SOURCE/ID (e.g. finding/jira/SEC-12).
    #[arg(
        value_name = "KIND/SOURCE/ID",
        required_unless_present_any = ["list", "remove"],
        conflicts_with_all = ["list", "remove"],
        requires_all = ["validity", "reason"]
    )]
    pub target: Option<String>,
    /// Validity to set: valid, unverified, false_positive, duplicate, invalid.
    #[arg(long, value_parser = parse_validity)]
    pub validity: Option<Validity>,
    /// Severity to set: critical, high, medium, low, info.
    #[arg(long, value_parser = parse_severity)]
    pub severity: Option<Severity>,
    /// Why (kept with the override and shown by `explain`).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Who decided (default: the OS user).
    #[arg(long, value_name = "WHO")]
    pub by: Option<String>,
    /// List the overrides in force.
    #[arg(long, conflicts_with = "remove")]
    pub list: bool,
    /// Remove the override of this record.
    #[arg(long, value_name = "KIND/SOURCE/ID")]
    pub remove: Option<String>,
    /// With `--list`: print JSON.
    #[arg(long, requires = "list")]
    pub json: bool,
}

fn parse_validity(s: &str) -> Result<Validity, String> {
    Validity::parse(s).ok_or_else(|| format!("expected one of {}", Validity::expected()))
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("expected one of {}", Severity::expected()))
}

/// The OS user running the command: `$USER`, `$LOGNAME`, else the name of
/// the process's uid in /etc/passwd, else `uid N`.
pub fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid.to_string()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

fn describe(v: &OverrideView) -> String {
    format!(
        "validity {}{} by {} at {} ({})",
        v.validity,
        v.severity
            .as_deref()
            .map(|s| format!(", severity {s}"))
            .unwrap_or_default(),
        v.by,
        v.at,
        v.reason
    )
}

enum Action {
    Set(SetOverride),
    Remove { target: String, by: String },
    List,
}

enum Outcome {
    Set {
        set: OverrideView,
        replaced: Option<OverrideView>,
    },
    Removed(Option<OverrideView>),
    Listed(Vec<OverrideView>),
}

/// Run `override`.
pub fn run(ctx: &Context, args: OverrideArgs) -> anyhow::Result<i32> {
    let by = args.by.clone().unwrap_or_else(os_user);
    let action = if args.list {
        Action::List
    } else if let Some(target) = args.remove.clone() {
        Action::Remove { target, by }
    } else {
        let (Some(target), Some(validity), Some(reason)) =
            (args.target.clone(), args.validity, args.reason.clone())
        else {
            anyhow::bail!("override needs KIND/SOURCE/ID, --validity and --reason");
        };
        Action::Set(SetOverride {
            target,
            validity: validity.as_str().to_string(),
            severity: args.severity.map(|s| s.as_str().to_string()),
            reason,
            by,
        })
    };
    let outcome = match through_daemon(ctx, &action)? {
        Some(o) => o,
        None => locally(ctx, action)?,
    };
    match outcome {
        Outcome::Set { set, replaced } => {
            println!("override set on {}: {}", set.target, describe(&set));
            if let Some(r) = replaced {
                println!("it replaces: {}", describe(&r));
            }
            Ok(0)
        }
        Outcome::Removed(Some(r)) => {
            println!("override removed from {}: was {}", r.target, describe(&r));
            Ok(0)
        }
        Outcome::Removed(None) => {
            eprintln!(
                "no override on {}",
                args.remove.as_deref().unwrap_or_default()
            );
            Ok(1)
        }
        Outcome::Listed(list) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no overrides");
            } else {
                println!(
                    "{:<40} {:<15} {:<9} {:<12} {:<21} reason",
                    "record", "validity", "severity", "by", "at"
                );
                for v in &list {
                    println!(
                        "{:<40} {:<15} {:<9} {:<12} {:<21} {}",
                        v.target,
                        v.validity,
                        v.severity.as_deref().unwrap_or("-"),
                        v.by,
                        v.at,
                        v.reason
                    );
                }
            }
            Ok(0)
        }
    }
}

fn locally(ctx: &Context, action: Action) -> anyhow::Result<Outcome> {
    let store = ctx.open_store()?;
    let now = chrono::Utc::now();
    Ok(match action {
        Action::List => Outcome::Listed(overrides::list(&store)?),
        Action::Remove { target, by } => {
            Outcome::Removed(overrides::remove(&store, &target, &by, now)?)
        }
        Action::Set(req) => {
            let replaced = overrides::set(&store, &req, now)?;
            let identity = overrides::parse_target(&req.target)?;
            let set = store
                .override_of(&identity)?
                .map(|o| OverrideView::new(&identity, &o))
                .ok_or_else(|| anyhow::anyhow!("the override was not kept"))?;
            Outcome::Set { set, replaced }
        }
    })
}

/// Ask the daemon, when one answers; `None` when none runs.
fn through_daemon(ctx: &Context, action: &Action) -> anyhow::Result<Option<Outcome>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let Some(client) = admin_client::connect(&ctx.config.admin.socket).await else {
            return Ok(None);
        };
        let resp = match action {
            Action::List => client.get(admin_client::url("/api/v1/overrides")),
            Action::Set(req) => client
                .post(admin_client::url("/api/v1/overrides"))
                .json(req),
            Action::Remove { target, by } => {
                let identity = overrides::parse_target(target)?;
                client
                    .delete(admin_client::url(&admin_client::record_path(
                        "/api/v1/overrides",
                        &identity,
                    )))
                    .query(&[("by", by)])
            }
        }
        .send()
        .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        if status == reqwest::StatusCode::NOT_FOUND && matches!(action, Action::Remove { .. }) {
            return Ok(Some(Outcome::Removed(None)));
        }
        if !status.is_success() {
            anyhow::bail!(
                "the daemon refused: {}",
                body["error"].as_str().unwrap_or("unknown error")
            );
        }
        Ok(Some(match action {
            Action::List => Outcome::Listed(serde_json::from_value(body)?),
            Action::Set(_) => Outcome::Set {
                set: serde_json::from_value(body["override"].clone())?,
                replaced: serde_json::from_value(body["replaced"].clone())?,
            },
            Action::Remove { .. } => {
                Outcome::Removed(serde_json::from_value(body["removed"].clone())?)
            }
        }))
    })
}
