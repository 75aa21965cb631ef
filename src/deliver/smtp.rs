//! One SMTP submission, step by step, each step bounded by
//! `email.timeout_secs`: connecting (TCP, implicit TLS, greeting, EHLO),
//! STARTTLS, AUTH, MAIL, each RCPT, DATA, and the message transfer with the
//! server's final answer. lettre's own timeout bounds only the TCP connect
//! of its async transport, so a server that accepts and never answers would
//! hold a send for ever.
//!
//! Failures before the message content went out are retried (the message
//! cannot have been accepted) unless the server refused for good (5xx);
//! once the content is on its way, only an explicit answer counts: without
//! one the message may have been accepted, and it is `unconfirmed`.

use super::email::EmailError;
use crate::config::{EmailConfig, SmtpTls};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Quit, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::Message;
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::time::Duration;

/// Submit `message` to the configured server.
pub async fn submit(
    cfg: &EmailConfig,
    password: Option<&SecretString>,
    message: &Message,
) -> Result<(), EmailError> {
    let limit = Duration::from_secs(cfg.timeout_secs.max(1));
    let session = Session {
        host: &cfg.host,
        limit,
    };
    let (port, implicit, starttls) = match cfg.tls {
        SmtpTls::Starttls => (cfg.port.unwrap_or(587), false, true),
        SmtpTls::Implicit => (cfg.port.unwrap_or(465), true, false),
        SmtpTls::None => (cfg.port.unwrap_or(25), false, false),
    };
    let tls =
        || TlsParameters::new(cfg.host.clone()).map_err(|e| EmailError::Build(format!("TLS: {e}")));
    let hello = ClientId::default();
    let wrapper = if implicit { Some(tls()?) } else { None };
    let mut conn = session
        .before_content(
            "connect",
            AsyncSmtpConnection::connect_tokio1(
                (cfg.host.as_str(), port),
                Some(limit),
                &hello,
                wrapper,
                None,
            ),
        )
        .await?;
    let result = session
        .exchange(
            &mut conn,
            starttls.then(tls).transpose()?,
            &hello,
            {
                match (&cfg.username, password) {
                    (Some(user), Some(pw)) => Some(Credentials::new(
                        user.clone(),
                        pw.expose_secret().to_string(),
                    )),
                    _ => None,
                }
            },
            message,
        )
        .await;
    // Best effort, bounded: the outcome is already known.
    let _ = tokio::time::timeout(limit, conn.command(Quit)).await;
    result
}

/// Where a submission stands, for error messages.
struct Session<'a> {
    host: &'a str,
    limit: Duration,
}

impl Session<'_> {
    async fn exchange(
        &self,
        conn: &mut AsyncSmtpConnection,
        starttls: Option<TlsParameters>,
        hello: &ClientId,
        credentials: Option<Credentials>,
        message: &Message,
    ) -> Result<(), EmailError> {
        if let Some(params) = starttls {
            self.before_content("STARTTLS", conn.starttls(params, hello))
                .await?;
        }
        if let Some(credentials) = &credentials {
            self.before_content("AUTH", conn.auth(DEFAULT_MECHANISMS, credentials))
                .await?;
        }
        let envelope = message.envelope();
        let raw = message.formatted();
        let mut options = Vec::new();
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(EmailError::Build(
                    "an address is not ASCII and the server does not offer SMTPUTF8".into(),
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !raw.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        self.before_content(
            "MAIL FROM",
            conn.command(Mail::new(envelope.from().cloned(), options)),
        )
        .await?;
        for to in envelope.to() {
            self.before_content("RCPT TO", conn.command(Rcpt::new(to.clone(), Vec::new())))
                .await?;
        }
        self.before_content("DATA", conn.command(Data)).await?;
        // From here the server may accept the message at any moment.
        match tokio::time::timeout(self.limit, conn.message(&raw)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => Err(EmailError::Smtp {
                host: self.host.to_string(),
                message: format!("message refused: {e}"),
                permanent: e.is_permanent(),
            }),
            Ok(Err(e)) => Err(EmailError::Unconfirmed {
                host: self.host.to_string(),
                message: format!(
                    "no answer to the message ({e}); it may have been accepted"
                ),
            }),
            Err(_) => Err(EmailError::Unconfirmed {
                host: self.host.to_string(),
                message: format!(
                    "timed out after {} s waiting for the answer to the message; it may have been accepted",
                    self.limit.as_secs()
                ),
            }),
        }
    }

    /// One step before the content went out: bounded, and a failure is
    /// retried unless the server refused for good.
    async fn before_content<T>(
        &self,
        step: &str,
        fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
    ) -> Result<T, EmailError> {
        match tokio::time::timeout(self.limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(EmailError::Smtp {
                host: self.host.to_string(),
                permanent: e.is_permanent(),
                message: format!("{step}: {e}"),
            }),
            Err(_) => Err(EmailError::Smtp {
                host: self.host.to_string(),
                permanent: false,
                message: format!("{step}: timed out after {} s", self.limit.as_secs()),
            }),
        }
    }
}
