//! Logging with `tracing`: human-readable on a terminal, JSON lines
//! otherwise, or straight to the journal when systemd started us with a
//! journal stream (or as configured); level from `RUST_LOG` or `log.level`.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The format `auto` resolves to: the journal when systemd connected
/// stderr to it (`JOURNAL_STREAM`), text on a terminal, JSON otherwise.
fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Text,
        LogFormat::Auto => LogFormat::Json,
        other => other,
    }
}

/// Install the global subscriber (once; later calls do nothing). Logs go to
/// stderr (or the journal) so command output on stdout stays clean.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = resolve(cfg.format);
    if format == LogFormat::Journald {
        match tracing_journald::layer() {
            Ok(layer) => {
                let _ = tracing_subscriber::registry()
                    .with(filter)
                    .with(layer.with_syslog_identifier("secmetrics".into()))
                    .try_init();
                return;
            }
            Err(e) => {
                eprintln!("secmetrics: the journal is not reachable ({e}); logging JSON to stderr")
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == LogFormat::Text {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    } else {
        builder.json().try_init()
    };
}
