//! The durable outbox: a digest is rendered and written here before it is
//! sent, at most one entry per (digest, period, channel), retried with
//! backoff until it is delivered, and still here after a restart.

use crate::store::{codec, Store, StoreError};
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionError;
use sled::Transactional;

/// What is to be delivered, fully rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    /// Slack messages (JSON bodies); the first starts a thread the others reply in.
    Slack {
        /// Message bodies, each a JSON object text with `text` and `blocks`.
        messages: Vec<String>,
        /// How many messages were already delivered (a retry resumes there).
        delivered: u32,
        /// Thread of the first message, once posted with a bot token.
        thread_ts: Option<String>,
        /// Channel override for this digest.
        channel: Option<String>,
    },
    /// One email.
    Email {
        /// Subject line.
        subject: String,
        /// Plain-text part.
        text: String,
        /// HTML part (references the images by `cid:`).
        html: String,
        /// Inline PNG images: (content id, bytes).
        images: Vec<(String, Vec<u8>)>,
        /// Recipients.
        to: Vec<String>,
    },
}

/// Delivery state of an entry. (New states go at the end: the stored
/// encoding is the variant's position.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Waiting to be (re)tried.
    Pending,
    /// Delivered.
    Sent,
    /// An attempt is under way. Found at start, it means the process died
    /// mid-attempt: the entry becomes `Unconfirmed`, never re-sent.
    Sending,
    /// The channel refused it for good (bad credentials, unknown channel,
    /// invalid address); not retried.
    Failed,
    /// The process died while sending: it may or may not have arrived.
    /// Not re-sent, so a digest is sent at most once.
    Unconfirmed,
}

impl State {
    /// Lowercase name for status output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sent => "sent",
            State::Sending => "sending",
            State::Failed => "failed",
            State::Unconfirmed => "unconfirmed",
        }
    }
}

/// One outbox entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Digest name.
    pub digest: String,
    /// Period label, e.g. `2026-10`.
    pub period: String,
    /// Channel name (`slack`, `email`).
    pub channel: String,
    /// What to send.
    pub payload: Payload,
    /// Delivery state.
    pub state: State,
    /// Attempts so far.
    pub attempts: u32,
    /// Earliest next attempt (µs since the epoch).
    pub next_attempt_us: i64,
    /// Error of the last failed attempt (never a secret).
    pub last_error: Option<String>,
    /// When the entry was written.
    pub created_us: i64,
    /// When it was delivered.
    pub sent_us: Option<i64>,
}

impl Entry {
    /// The outbox key: one entry per (digest, period, channel), ever.
    pub fn key(digest: &str, period: &str, channel: &str) -> Vec<u8> {
        format!("{digest}\u{0}{period}\u{0}{channel}").into_bytes()
    }

    /// This entry's key.
    pub fn own_key(&self) -> Vec<u8> {
        Entry::key(&self.digest, &self.period, &self.channel)
    }
}

/// One entry as `status` and `/readyz` show it (no payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntrySummary {
    /// Digest name.
    pub digest: String,
    /// Period label.
    pub period: String,
    /// Channel name.
    pub channel: String,
    /// Delivery state (`pending`, `sending`, `failed`, `unconfirmed`).
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When a pending entry is tried next (RFC 3339); none for the others.
    #[serde(default)]
    pub next_attempt: Option<String>,
}

/// What the outbox keeps beside each entry, under the same key: all but
/// the rendered payload. Scans (`/readyz`, `/metrics`, `status`, what is
/// due) read these alone and never decode a body with its PNGs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Digest name.
    pub digest: String,
    /// Period label.
    pub period: String,
    /// Channel name.
    pub channel: String,
    /// Delivery state.
    pub state: State,
    /// Attempts so far.
    pub attempts: u32,
    /// Earliest next attempt (µs since the epoch).
    pub next_attempt_us: i64,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// When the entry was written.
    pub created_us: i64,
    /// When it was delivered.
    pub sent_us: Option<i64>,
    /// Its rendered body was removed (delivered long ago).
    pub pruned: bool,
}

impl Summary {
    fn key(&self) -> Vec<u8> {
        Entry::key(&self.digest, &self.period, &self.channel)
    }

    /// The view `status` and `/readyz` show.
    pub fn view(&self) -> EntrySummary {
        EntrySummary {
            digest: self.digest.clone(),
            period: self.period.clone(),
            channel: self.channel.clone(),
            state: self.state.as_str().to_string(),
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            next_attempt: (self.state == State::Pending).then(|| {
                crate::store::codec::time(self.next_attempt_us)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            }),
        }
    }
}

impl Entry {
    /// The entry's summary (all but the payload).
    pub fn summary(&self) -> Summary {
        Summary {
            digest: self.digest.clone(),
            period: self.period.clone(),
            channel: self.channel.clone(),
            state: self.state,
            attempts: self.attempts,
            next_attempt_us: self.next_attempt_us,
            last_error: self.last_error.clone(),
            created_us: self.created_us,
            sent_us: self.sent_us,
            pruned: self.payload.is_pruned(),
        }
    }

    /// The entry as the store keeps it: (key, encoded body, encoded
    /// summary), for [`Store::commit_digest`].
    pub fn encoded(&self) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (
            self.own_key(),
            codec::encode(self),
            codec::encode(&self.summary()),
        )
    }
}

impl Payload {
    /// The rendered body was removed ([`Outbox::prune_sent_before`]).
    pub fn is_pruned(&self) -> bool {
        match self {
            Payload::Slack { messages, .. } => messages.is_empty(),
            Payload::Email { html, .. } => html.is_empty(),
        }
    }
}

/// Outbox entries by state.
pub type Counts = std::collections::BTreeMap<&'static str, u64>;

/// The durable outbox: the one place that reads and writes the store's
/// outbox trees (entry bodies, and their summaries under the same keys,
/// always written together).
pub struct Outbox<'a> {
    store: &'a Store,
    bodies: &'a sled::Tree,
    index: &'a sled::Tree,
}

/// The store fact saying every body has its summary (stores written before
/// the summaries existed get them once, at the first open).
const INDEX_BUILT: &str = "outbox/index_built";

impl<'a> Outbox<'a> {
    /// The outbox of `store`.
    pub fn open(store: &'a Store) -> Result<Self, StoreError> {
        let (bodies, index) = store.outbox_trees();
        let outbox = Outbox {
            store,
            bodies,
            index,
        };
        if store.meta(INDEX_BUILT)?.is_none() {
            outbox.build_index()?;
        }
        Ok(outbox)
    }

    /// Write the summary of every body (a store from before summaries).
    fn build_index(&self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for item in self.bodies.iter() {
            let (key, value) = item?;
            let e: Entry = codec::decode("outbox", &value)?;
            batch.insert(key, codec::encode(&e.summary()));
        }
        self.index.apply_batch(batch)?;
        self.store.put_meta(INDEX_BUILT, b"1")
    }

    fn write(&self, entry: &Entry, only_if_new: bool) -> Result<bool, StoreError> {
        let (key, body, summary) = entry.encoded();
        let written = (self.bodies, self.index)
            .transaction(|(b, i)| {
                if only_if_new && b.get(&key)?.is_some() {
                    return Ok(false);
                }
                b.insert(key.as_slice(), body.as_slice())?;
                i.insert(key.as_slice(), summary.as_slice())?;
                Ok(true)
            })
            .map_err(|e: TransactionError<StoreError>| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Sled(e),
            })?;
        self.store.flush()?;
        Ok(written)
    }

    /// True when an entry for (digest, period, channel) exists, sent or not.
    pub fn contains(&self, digest: &str, period: &str, channel: &str) -> Result<bool, StoreError> {
        Ok(self
            .index
            .contains_key(Entry::key(digest, period, channel))?)
    }

    /// Write a new entry durably; `false` (and nothing written) when one
    /// already exists for its key, so a digest is never queued twice.
    pub fn enqueue(&self, entry: &Entry) -> Result<bool, StoreError> {
        self.write(entry, true)
    }

    /// Replace an entry (after an attempt), durably, with its summary.
    pub fn update(&self, entry: &Entry) -> Result<(), StoreError> {
        self.write(entry, false).map(|_| ())
    }

    /// Every entry's summary, in key order.
    pub fn summaries(&self) -> Result<Vec<Summary>, StoreError> {
        self.index
            .iter()
            .values()
            .map(|v| codec::decode("outbox_index", &v?))
            .collect()
    }

    /// Pending entries whose next attempt is due at `now_us`, oldest first
    /// (only their bodies are read).
    pub fn due(&self, now_us: i64) -> Result<Vec<Entry>, StoreError> {
        let mut due: Vec<Summary> = self
            .summaries()?
            .into_iter()
            .filter(|s| s.state == State::Pending && s.next_attempt_us <= now_us)
            .collect();
        due.sort_by_key(|s| s.created_us);
        let mut out = Vec::with_capacity(due.len());
        for s in due {
            if let Some(e) = self.get(&s.key())? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The entry under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.bodies
            .get(key)?
            .map(|v| codec::decode("outbox", &v))
            .transpose()
    }

    /// Every entry, bodies included.
    pub fn all(&self) -> Result<Vec<Entry>, StoreError> {
        self.bodies
            .iter()
            .values()
            .map(|v| codec::decode("outbox", &v?))
            .collect()
    }

    /// Entries waiting to be sent (pending).
    pub fn depth(&self) -> Result<u64, StoreError> {
        Ok(depth_of(&self.summaries()?))
    }

    /// Entries not delivered (pending, sending, failed, unconfirmed), by
    /// digest, period and channel, for `status` and `/readyz`.
    pub fn undelivered(&self) -> Result<Vec<EntrySummary>, StoreError> {
        Ok(undelivered_of(&self.summaries()?))
    }

    /// Entries per state.
    pub fn counts(&self) -> Result<Counts, StoreError> {
        Ok(counts_of(&self.summaries()?))
    }

    /// Remove the rendered body of delivered entries sent before
    /// `before_us`; the entry stays with an empty body, so its digest is
    /// still never re-sent. Only those bodies are read.
    pub fn prune_sent_before(&self, before_us: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        for s in self.summaries()? {
            if s.state != State::Sent || s.pruned || !s.sent_us.is_some_and(|t| t < before_us) {
                continue;
            }
            let Some(e) = self.get(&s.key())? else {
                continue;
            };
            let slim = match &e.payload {
                Payload::Slack { channel, .. } => Payload::Slack {
                    messages: Vec::new(),
                    delivered: 0,
                    thread_ts: None,
                    channel: channel.clone(),
                },
                Payload::Email { subject, to, .. } => Payload::Email {
                    subject: subject.clone(),
                    text: String::new(),
                    html: String::new(),
                    images: Vec::new(),
                    to: to.clone(),
                },
            };
            self.update(&Entry { payload: slim, ..e })?;
            n += 1;
        }
        Ok(n)
    }

    /// At start: entries left `Sending` by a process that died mid-attempt
    /// become `Unconfirmed` (not re-sent: at most once). Returns them.
    pub fn recover_interrupted(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for s in self.summaries()? {
            if s.state != State::Sending {
                continue;
            }
            let Some(mut e) = self.get(&s.key())? else {
                continue;
            };
            e.state = State::Unconfirmed;
            e.last_error = Some(
                "the process stopped while sending; not re-sent (at most once): check the channel"
                    .into(),
            );
            self.update(&e)?;
            out.push(e);
        }
        Ok(out)
    }

    /// The earliest next attempt among pending entries.
    pub fn next_due_us(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .summaries()?
            .iter()
            .filter(|e| e.state == State::Pending)
            .map(|e| e.next_attempt_us)
            .min())
    }
}

/// Entries waiting to be sent among `summaries`.
pub fn depth_of(summaries: &[Summary]) -> u64 {
    summaries
        .iter()
        .filter(|e| e.state == State::Pending)
        .count() as u64
}

/// Entries per state among `summaries`.
pub fn counts_of(summaries: &[Summary]) -> Counts {
    let mut out = Counts::new();
    for e in summaries {
        *out.entry(e.state.as_str()).or_default() += 1;
    }
    out
}

/// The undelivered entries among `summaries`.
pub fn undelivered_of(summaries: &[Summary]) -> Vec<EntrySummary> {
    summaries
        .iter()
        .filter(|e| e.state != State::Sent)
        .map(Summary::view)
        .collect()
}

/// Exponential backoff with ±20% jitter: base * 2^(attempts-1), capped.
pub fn backoff_secs(attempts: u32, base: u64, max: u64) -> f64 {
    let exp = base.saturating_mul(1u64 << attempts.saturating_sub(1).min(30));
    let capped = exp.min(max).max(1) as f64;
    let jitter = 0.8 + 0.4 * rand_unit();
    capped * jitter
}

fn rand_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    // A fresh RandomState is randomly keyed: enough for jitter.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(channel: &str) -> Entry {
        Entry {
            digest: "monthly".into(),
            period: "2026-10".into(),
            channel: channel.into(),
            payload: Payload::Slack {
                messages: vec!["{}".into()],
                delivered: 0,
                thread_ts: None,
                channel: None,
            },
            state: State::Pending,
            attempts: 0,
            next_attempt_us: 0,
            last_error: None,
            created_us: 1,
            sent_us: None,
        }
    }

    #[test]
    fn an_entry_is_queued_once_per_digest_period_channel() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ob = Outbox::open(&store).unwrap();
        assert!(ob.enqueue(&entry("slack")).unwrap());
        assert!(!ob.enqueue(&entry("slack")).unwrap());
        assert!(ob.enqueue(&entry("email")).unwrap());
        assert_eq!(ob.depth().unwrap(), 2);
        let mut e = ob.due(0).unwrap().remove(0);
        e.state = State::Sent;
        ob.update(&e).unwrap();
        assert_eq!(ob.depth().unwrap(), 1);
        assert!(ob.contains("monthly", "2026-10", "slack").unwrap());
    }

    #[test]
    fn an_entry_left_sending_by_a_crash_becomes_unconfirmed_and_is_not_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ob = Outbox::open(&store).unwrap();
        let mut e = entry("slack");
        e.state = State::Sending;
        ob.enqueue(&e).unwrap();
        let recovered = ob.recover_interrupted().unwrap();
        assert_eq!(recovered.len(), 1);
        assert!(ob.due(i64::MAX).unwrap().is_empty());
        assert_eq!(ob.counts().unwrap().get("unconfirmed"), Some(&1));
        assert!(ob.recover_interrupted().unwrap().is_empty());
    }

    #[test]
    fn old_delivered_entries_lose_their_body_but_keep_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ob = Outbox::open(&store).unwrap();
        let mut e = entry("slack");
        e.state = State::Sent;
        e.sent_us = Some(100);
        ob.enqueue(&e).unwrap();
        assert_eq!(ob.prune_sent_before(50).unwrap(), 0);
        assert_eq!(ob.prune_sent_before(200).unwrap(), 1);
        assert_eq!(ob.prune_sent_before(200).unwrap(), 0);
        assert!(!ob.enqueue(&entry("slack")).unwrap(), "never queued again");
        let Payload::Slack { messages, .. } = &ob.all().unwrap()[0].payload else {
            panic!()
        };
        assert!(messages.is_empty());
        assert!(ob.summaries().unwrap()[0].pruned);
    }

    #[test]
    fn summaries_follow_every_write_and_are_built_once_for_an_older_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A store written before summaries existed: bodies only.
            let store = Store::open(dir.path()).unwrap();
            let (bodies, _) = store.outbox_trees();
            for c in ["slack", "email"] {
                let e = entry(c);
                bodies.insert(e.own_key(), codec::encode(&e)).unwrap();
            }
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let ob = Outbox::open(&store).unwrap();
        assert_eq!(ob.summaries().unwrap().len(), 2);
        assert_eq!(ob.depth().unwrap(), 2);
        let mut e = ob.due(0).unwrap().remove(0);
        assert_eq!(e.channel, "email", "key order: email before slack");
        e.state = State::Failed;
        e.attempts = 3;
        e.last_error = Some("HTTP 404: channel_not_found".into());
        ob.update(&e).unwrap();
        let s = ob.undelivered().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].state, "failed");
        assert_eq!(s[0].attempts, 3);
        assert_eq!(
            s[0].last_error.as_deref(),
            Some("HTTP 404: channel_not_found")
        );
        assert_eq!(ob.counts().unwrap().get("failed"), Some(&1));
        assert_eq!(ob.counts().unwrap().get("pending"), Some(&1));
        // Every body has its summary, and the other way round.
        for summary in ob.summaries().unwrap() {
            let body = ob.get(&summary.key()).unwrap().unwrap();
            assert_eq!(body.summary(), summary);
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        for (attempts, centre) in [(1, 30.0), (2, 60.0), (3, 120.0), (10, 3600.0)] {
            let d = backoff_secs(attempts, 30, 3600);
            assert!(d >= centre * 0.8 && d <= centre * 1.2, "{attempts}: {d}");
        }
    }
}
