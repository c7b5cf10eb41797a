//! Emails: askama templates (HTML and plain text), sent over SMTP (lettre) when `SWITCHYARD_SMTP_URL`
//! is set; otherwise kept in the dev outbox, which platform admins read in the dashboard, so that
//! verification, password reset and invitations work on the default set-up.

use crate::config::Config;
use crate::store::{new_id, now_ms, Store};
use askama::Template;
use lettre::{
    message::{Mailbox, MultiPart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

/// One email, rendered.
#[derive(Clone, Debug)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

const FOOTER: &str =
    "You get this email because someone entered your address on a Switchyard platform. \
If that was not you, ignore it: nothing happens without the link.";

#[derive(Template)]
#[template(path = "email/verify.html")]
struct VerifyHtml<'a> {
    subject: &'a str,
    email: &'a str,
    link: &'a str,
    action: &'a str,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email/verify.txt")]
struct VerifyText<'a> {
    email: &'a str,
    link: &'a str,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email/reset.html")]
struct ResetHtml<'a> {
    subject: &'a str,
    email: &'a str,
    link: &'a str,
    action: &'a str,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email/reset.txt")]
struct ResetText<'a> {
    email: &'a str,
    link: &'a str,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email/invite.html")]
struct InviteHtml<'a> {
    subject: &'a str,
    email: &'a str,
    inviter: &'a str,
    org: &'a str,
    role: &'a str,
    expires: &'a str,
    link: &'a str,
    action: &'a str,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email/invite.txt")]
struct InviteText<'a> {
    email: &'a str,
    inviter: &'a str,
    org: &'a str,
    role: &'a str,
    expires: &'a str,
    link: &'a str,
    footer: &'a str,
}

fn render(t: &impl Template) -> String {
    // The templates are compiled in and take only strings: rendering cannot fail at run time.
    t.render()
        .unwrap_or_else(|e| format!("(could not render this email: {e})"))
}

pub fn verify_email(to: &str, link: &str) -> Email {
    let subject = "Confirm your email for Switchyard";
    Email {
        to: to.into(),
        subject: subject.into(),
        html: render(&VerifyHtml {
            subject,
            email: to,
            link,
            action: "Confirm my email",
            footer: FOOTER,
        }),
        text: render(&VerifyText {
            email: to,
            link,
            footer: FOOTER,
        }),
    }
}

pub fn reset_password(to: &str, link: &str) -> Email {
    let subject = "Reset your Switchyard password";
    Email {
        to: to.into(),
        subject: subject.into(),
        html: render(&ResetHtml {
            subject,
            email: to,
            link,
            action: "Choose a new password",
            footer: FOOTER,
        }),
        text: render(&ResetText {
            email: to,
            link,
            footer: FOOTER,
        }),
    }
}

pub struct Invite<'a> {
    pub to: &'a str,
    pub inviter: &'a str,
    pub org: &'a str,
    pub role: &'a str,
    pub expires: &'a str,
    pub link: &'a str,
}

pub fn invitation(i: &Invite<'_>) -> Email {
    let subject = format!("{} invited you to {} on Switchyard", i.inviter, i.org);
    Email {
        to: i.to.into(),
        html: render(&InviteHtml {
            subject: &subject,
            email: i.to,
            inviter: i.inviter,
            org: i.org,
            role: i.role,
            expires: i.expires,
            link: i.link,
            action: "Accept the invitation",
            footer: FOOTER,
        }),
        text: render(&InviteText {
            email: i.to,
            inviter: i.inviter,
            org: i.org,
            role: i.role,
            expires: i.expires,
            link: i.link,
            footer: FOOTER,
        }),
        subject,
    }
}

#[derive(Template)]
#[template(path = "email/low_balance.html")]
struct LowBalanceHtml<'a> {
    subject: &'a str,
    org: &'a str,
    balance: &'a str,
    threshold: &'a str,
    link: &'a str,
    action: &'a str,
    footer: &'a str,
}

#[derive(Template)]
#[template(path = "email/low_balance.txt")]
struct LowBalanceText<'a> {
    org: &'a str,
    balance: &'a str,
    threshold: &'a str,
    link: &'a str,
    footer: &'a str,
}

pub fn low_balance(to: &str, org: &str, balance: &str, threshold: &str, link: &str) -> Email {
    let subject = format!("{org}: Switchyard balance below {threshold}");
    Email {
        to: to.into(),
        html: render(&LowBalanceHtml {
            subject: &subject,
            org,
            balance,
            threshold,
            link,
            action: "Buy credits",
            footer: FOOTER,
        }),
        text: render(&LowBalanceText {
            org,
            balance,
            threshold,
            link,
            footer: FOOTER,
        }),
        subject,
    }
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox,
}

/// Sends emails, or keeps them in the outbox.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    store: Store,
}

impl Mailer {
    pub fn from_config(cfg: &Config, store: Store) -> anyhow::Result<Mailer> {
        let from: Mailbox = cfg.mail_from.parse().map_err(|e| {
            anyhow::anyhow!(
                "SWITCHYARD_MAIL_FROM {:?} is not a mailbox ({e}); use e.g. \"Switchyard <noreply@example.com>\"",
                cfg.mail_from
            )
        })?;
        let transport = match &cfg.smtp_url {
            // The URL holds the SMTP password: errors name the setting, never the value.
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "SWITCHYARD_SMTP_URL is not a valid SMTP URL ({e}); \
                             use smtp://user:pass@host:587?tls=required or smtps://user:pass@host:465"
                        )
                    })?
                    .build(),
            ),
            None => Transport::Outbox,
        };
        Ok(Mailer {
            transport,
            from,
            store,
        })
    }

    pub fn uses_outbox(&self) -> bool {
        matches!(self.transport, Transport::Outbox)
    }

    /// Sends (SMTP, in the background so the page does not wait on the mail server and its timing
    /// reveals nothing) or stores in the outbox.
    pub async fn send(&self, email: Email) -> Result<(), String> {
        match &self.transport {
            Transport::Outbox => {
                sqlx::query(
                    "INSERT INTO outbox (id, to_email, subject, text_body, html_body, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new_id())
                .bind(&email.to)
                .bind(&email.subject)
                .bind(&email.text)
                .bind(&email.html)
                .bind(now_ms())
                .execute(&self.store.writer)
                .await
                .map_err(|e| e.to_string())?;
                // The body holds a single-use link: it stays in the outbox, not in the log.
                tracing::info!(to = %email.to, subject = %email.subject,
                    "no SMTP server configured (SWITCHYARD_SMTP_URL): email kept in the dev outbox; \
                     a platform admin reads it at /admin");
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let to: Mailbox = email
                    .to
                    .parse()
                    .map_err(|e| format!("{:?} is not an email address ({e})", email.to))?;
                let message = Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(&email.subject)
                    .multipart(MultiPart::alternative_plain_html(email.text, email.html))
                    .map_err(|e| e.to_string())?;
                let smtp = smtp.clone();
                let (to, subject) = (email.to, email.subject);
                tokio::spawn(async move {
                    match smtp.send(message).await {
                        Ok(_) => tracing::info!(%to, %subject, "email sent"),
                        Err(e) => tracing::error!(%to, %subject, error = %e,
                            "sending an email failed; check SWITCHYARD_SMTP_URL and the mail server's log"),
                    }
                });
                Ok(())
            }
        }
    }
}

/// An email in the dev outbox.
#[derive(sqlx::FromRow, Clone, Debug)]
pub struct OutboxMail {
    pub id: String,
    pub to_email: String,
    pub subject: String,
    pub text_body: String,
    pub created_at: i64,
}

/// The newest emails of the outbox, newest first.
pub async fn outbox(store: &Store, limit: i64) -> Result<Vec<OutboxMail>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, to_email, subject, text_body, created_at FROM outbox ORDER BY created_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&store.pool)
    .await
}
