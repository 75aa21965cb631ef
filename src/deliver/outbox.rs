//! The durable outbox: a digest is rendered and written here before it is
//! sent, at most one entry per (digest, period, channel), retried with
//! backoff until it is delivered, and still here after a restart.

use crate::store::{codec, StoreError};
use serde::{Deserialize, Serialize};

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
}

/// The outbox over the store's `outbox` tree.
pub struct Outbox<'a> {
    tree: &'a sled::Tree,
}

impl<'a> Outbox<'a> {
    /// The outbox in `tree`.
    pub fn new(tree: &'a sled::Tree) -> Self {
        Outbox { tree }
    }

    /// True when an entry for (digest, period, channel) exists, sent or not.
    pub fn contains(&self, digest: &str, period: &str, channel: &str) -> Result<bool, StoreError> {
        Ok(self
            .tree
            .contains_key(Entry::key(digest, period, channel))?)
    }

    /// Write a new entry durably; `false` (and nothing written) when one
    /// already exists for its key, so a digest is never queued twice.
    pub fn enqueue(&self, entry: &Entry) -> Result<bool, StoreError> {
        let inserted = self
            .tree
            .compare_and_swap(
                entry.own_key(),
                None as Option<&[u8]>,
                Some(codec::encode(entry)),
            )?
            .is_ok();
        self.tree.flush()?;
        Ok(inserted)
    }

    /// Replace an entry (after an attempt), durably.
    pub fn update(&self, entry: &Entry) -> Result<(), StoreError> {
        self.tree.insert(entry.own_key(), codec::encode(entry))?;
        self.tree.flush()?;
        Ok(())
    }

    /// Pending entries whose next attempt is due at `now_us`, oldest first.
    pub fn due(&self, now_us: i64) -> Result<Vec<Entry>, StoreError> {
        let mut out: Vec<Entry> = Vec::new();
        for v in self.tree.iter().values() {
            let e: Entry = codec::decode("outbox", &v?)?;
            if e.state == State::Pending && e.next_attempt_us <= now_us {
                out.push(e);
            }
        }
        out.sort_by_key(|e| e.created_us);
        Ok(out)
    }

    /// The entry under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>, StoreError> {
        self.tree
            .get(key)?
            .map(|v| codec::decode("outbox", &v))
            .transpose()
    }

    /// Every entry.
    pub fn all(&self) -> Result<Vec<Entry>, StoreError> {
        self.tree
            .iter()
            .values()
            .map(|v| codec::decode("outbox", &v?))
            .collect()
    }

    /// Entries not yet delivered.
    pub fn depth(&self) -> Result<u64, StoreError> {
        Ok(self
            .all()?
            .iter()
            .filter(|e| e.state == State::Pending)
            .count() as u64)
    }

    /// Entries not delivered (pending, sending, failed, unconfirmed), by
    /// digest, period and channel, for `status` and `/readyz`.
    pub fn undelivered(&self) -> Result<Vec<EntrySummary>, StoreError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|e| e.state != State::Sent)
            .map(|e| EntrySummary {
                digest: e.digest,
                period: e.period,
                channel: e.channel,
                state: e.state.as_str().to_string(),
                attempts: e.attempts,
                last_error: e.last_error,
            })
            .collect())
    }

    /// Entries per state.
    pub fn counts(&self) -> Result<std::collections::BTreeMap<&'static str, u64>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for e in self.all()? {
            *out.entry(e.state.as_str()).or_default() += 1;
        }
        Ok(out)
    }

    /// Remove delivered entries sent before `before_us`; the key of a removed
    /// entry is kept with an empty body so its digest is still never re-sent.
    pub fn prune_sent_before(&self, before_us: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        for e in self.all()? {
            if e.state != State::Sent || !e.sent_us.is_some_and(|t| t < before_us) {
                continue;
            }
            let slim = match &e.payload {
                Payload::Slack {
                    messages, channel, ..
                } if !messages.is_empty() => Payload::Slack {
                    messages: Vec::new(),
                    delivered: 0,
                    thread_ts: None,
                    channel: channel.clone(),
                },
                Payload::Email {
                    subject, to, html, ..
                } if !html.is_empty() => Payload::Email {
                    subject: subject.clone(),
                    text: String::new(),
                    html: String::new(),
                    images: Vec::new(),
                    to: to.clone(),
                },
                _ => continue,
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
        for mut e in self.all()? {
            if e.state == State::Sending {
                e.state = State::Unconfirmed;
                e.last_error = Some(
                    "the process stopped while sending; not re-sent (at most once): check the channel"
                        .into(),
                );
                self.update(&e)?;
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The earliest next attempt among pending entries.
    pub fn next_due_us(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .all()?
            .iter()
            .filter(|e| e.state == State::Pending)
            .map(|e| e.next_attempt_us)
            .min())
    }
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
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("outbox").unwrap();
        let ob = Outbox::new(&tree);
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
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("outbox").unwrap();
        let ob = Outbox::new(&tree);
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
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("outbox").unwrap();
        let ob = Outbox::new(&tree);
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
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        for (attempts, centre) in [(1, 30.0), (2, 60.0), (3, 120.0), (10, 3600.0)] {
            let d = backoff_secs(attempts, 30, 3600);
            assert!(d >= centre * 0.8 && d <= centre * 1.2, "{attempts}: {d}");
        }
    }
}
