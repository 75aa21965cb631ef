//! `GET /api/v1/export`: the backup of the store the daemon holds, what
//! `secmetrics export --all` asks for while the daemon runs. It is written
//! by a blocking task (record writes wait while cursors, records and
//! history are read) and streamed as it is written, never held whole.

use super::Shared;
use crate::backup::dump::{self, SecretGuard};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The route, merged into the admin socket's router.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/api/v1/export", get(export_all))
}

/// Bytes sent to the answer at a time.
const CHUNK: usize = 64 * 1024;

async fn export_all(State(s): State<Arc<Shared>>) -> Response {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let guard = SecretGuard::from_secrets(&s.secrets);
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let written = dump::write(&s.store, &mut out, &guard, chrono::Utc::now());
        match written {
            Ok(lines) => tracing::info!(
                lines = lines.values().sum::<u64>(),
                "backup sent through the admin API"
            ),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "backup through the admin API stopped");
                // The answer ends in an error: the client never sees `$end`.
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(Chunks(rx)),
    )
        .into_response()
}

/// A `Write` that hands its bytes to the answer in chunks; a client that
/// went away stops the backup (broken pipe).
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The chunks as the stream the answer's body reads.
struct Chunks(mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
