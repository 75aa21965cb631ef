//! Email content with `lettre`: multipart text + HTML with the charts inline
//! as PNG (mail clients block SVG), and a subject naming the period and the
//! KPI that moved the wrong way the most. [`super::smtp`] submits it.

use crate::kpi::{KpiPack, Trend};
use crate::report::{self, Line};
use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;

/// A failed email. Never contains the password.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// An address or the message could not be built.
    #[error("email: {0}")]
    Build(String),
    /// The SMTP exchange failed.
    #[error("smtp {host}: {message}")]
    Smtp {
        /// Server.
        host: String,
        /// What failed.
        message: String,
        /// The server refused for good (a 5xx answer).
        permanent: bool,
    },
    /// The message content went out but no answer came: the server may
    /// have accepted it, so it is not sent again.
    #[error("smtp {host}: {message}")]
    Unconfirmed {
        /// Server.
        host: String,
        /// What happened.
        message: String,
    },
}

impl EmailError {
    /// Errors that a retry cannot fix: a bad address, a 5xx refusal.
    pub fn is_permanent(&self) -> bool {
        match self {
            EmailError::Build(_) => true,
            EmailError::Smtp { permanent, .. } => *permanent,
            EmailError::Unconfirmed { .. } => false,
        }
    }

    /// The message may have been accepted without the server saying so.
    pub fn is_unconfirmed(&self) -> bool {
        matches!(self, EmailError::Unconfirmed { .. })
    }
}

/// The subject: the period and the worst-moving KPI, if any worsened.
pub fn subject(title: &str, pack: &KpiPack, lines: &[Line]) -> String {
    let worst = lines
        .iter()
        .filter(|l| l.trend == Some(Trend::Worsening))
        .max_by(|a, b| {
            relative_move(pack, a)
                .partial_cmp(&relative_move(pack, b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    match worst {
        Some(l) => format!(
            "{title} {}: {} worsened to {} (from {})",
            pack.period.label(),
            l.title,
            l.figure,
            l.previous
        ),
        None => format!("{title} {}: no KPI worsened", pack.period.label()),
    }
}

/// |current - previous| / max(|previous|, tiny): how far a KPI moved.
fn relative_move(pack: &KpiPack, l: &Line) -> f64 {
    let Some(k) = pack.kpis.line(l.id) else {
        return 0.0;
    };
    match (k.headline, k.previous) {
        (Some(c), Some(p)) => {
            let (c, p) = (c.as_f64(), p.as_f64());
            (c - p).abs() / p.abs().max(1e-9)
        }
        _ => 0.0,
    }
}

/// The plain-text body.
pub fn text_body(title: &str, pack: &KpiPack, lines: &[Line], report_url: Option<&str>) -> String {
    let mut s = format!("{title} — {}\n\n", pack.period.label());
    for l in lines {
        s.push_str(&format!(
            "{} {}: {} (previous {}; {}; target {}, {})\n  {}\n  {}\n\n",
            l.arrow,
            l.title,
            l.figure,
            l.previous,
            report::trend_word(l.trend),
            l.target,
            report::status_word(l.status),
            l.detail,
            l.business
        ));
    }
    if !pack.warnings.is_empty() {
        s.push_str("Warnings:\n");
        for w in &pack.warnings {
            s.push_str(&format!("- {w}\n"));
        }
    }
    if let Some(url) = report_url {
        s.push_str(&format!("\nFull report: {url}\n"));
    }
    s
}

/// The HTML body; `images` are (content id, alt text) of inline PNGs.
pub fn html_body(
    title: &str,
    pack: &KpiPack,
    lines: &[Line],
    images: &[(String, String)],
    report_url: Option<&str>,
) -> String {
    use crate::report::html::escape;
    let mut s = format!(
        "<!doctype html><html><body style=\"font-family:Arial,sans-serif;color:#222\">\
         <h2>{} — {}</h2><table cellpadding=\"6\" style=\"border-collapse:collapse\">",
        escape(title),
        escape(&pack.period.label())
    );
    for l in lines {
        s.push_str(&format!(
            "<tr style=\"border-top:1px solid #ddd\"><td><b>{}</b><br><small>{}</small></td>\
             <td style=\"font-size:1.2em\">{} {}</td><td>previous {}<br>{}</td>\
             <td>target {}<br>{}</td></tr><tr><td colspan=\"4\"><i>{}</i></td></tr>",
            escape(l.title),
            escape(&l.detail),
            escape(&l.figure),
            l.arrow,
            escape(&l.previous),
            report::trend_word(l.trend),
            escape(&l.target),
            report::status_word(l.status),
            escape(&l.business)
        ));
    }
    s.push_str("</table>");
    for (cid, alt) in images {
        s.push_str(&format!(
            "<p><img src=\"cid:{cid}\" alt=\"{}\" width=\"720\"></p>",
            escape(alt)
        ));
    }
    if !pack.warnings.is_empty() {
        s.push_str("<h3>Warnings</h3><ul>");
        for w in &pack.warnings {
            s.push_str(&format!("<li>{}</li>", escape(w)));
        }
        s.push_str("</ul>");
    }
    if let Some(url) = report_url {
        s.push_str(&format!(
            "<p><a href=\"{}\">Full report</a></p>",
            escape(url)
        ));
    }
    s.push_str("</body></html>");
    s
}

/// The `Message-ID` of an outbox entry: the same for every attempt and
/// resend of that entry (a mail client that has one copy shows one), unique
/// per (digest, period, channel, entry), in the sender's domain.
pub fn message_id(
    from: &str,
    digest: &str,
    period: &str,
    channel: &str,
    created_us: i64,
) -> String {
    let atom = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or("secmetrics.invalid");
    format!(
        "<{created_us}.{}.{}.{}@{domain}>",
        atom(digest),
        atom(period),
        atom(channel)
    )
}

/// Build the MIME message: multipart/alternative of text and
/// multipart/related (HTML + inline PNGs), with the given `Message-ID`.
pub fn build_message(
    from: &str,
    to: &[String],
    message_id: &str,
    subject: &str,
    text: &str,
    html: &str,
    images: &[(String, Vec<u8>)],
) -> Result<Message, EmailError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| EmailError::Build(format!("`email.from` {from:?}: {e}")))?;
    let mut builder = Message::builder()
        .from(from)
        .message_id(Some(message_id.to_string()))
        .subject(subject);
    if to.is_empty() {
        return Err(EmailError::Build("no recipients (`email.to`)".into()));
    }
    for r in to {
        let mb: Mailbox = r
            .parse()
            .map_err(|e| EmailError::Build(format!("recipient {r:?}: {e}")))?;
        builder = builder.to(mb);
    }
    let mut related = MultiPart::related().singlepart(SinglePart::html(html.to_string()));
    for (cid, png) in images {
        related = related.singlepart(Attachment::new_inline(cid.clone()).body(
            png.clone(),
            ContentType::parse("image/png").expect("static mime"),
        ));
    }
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(text.to_string()))
        .multipart(related);
    builder
        .multipart(alternative)
        .map_err(|e| EmailError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_id_names_the_entry_in_the_senders_domain() {
        let id = message_id(
            "secmetrics <secmetrics@example.test>",
            "monthly digest",
            "2026-W48",
            "email",
            1_700_000_000_000_000,
        );
        assert_eq!(
            id,
            "<1700000000000000.monthly-digest.2026-W48.email@example.test>"
        );
        assert_eq!(
            message_id("nobody", "d", "2026-11", "email", 1),
            "<1.d.2026-11.email@secmetrics.invalid>"
        );
        let msg = build_message(
            "secmetrics <secmetrics@example.test>",
            &["ciso@example.test".into()],
            &id,
            "s",
            "t",
            "<p>h</p>",
            &[],
        )
        .unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains(&format!("Message-ID: {id}\r\n")), "{text}");
    }
}
