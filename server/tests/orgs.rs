//! The dashboard's account flows through the same `Dashboard` calls the pages' server functions make,
//! on SQLite and PostgreSQL with the real server state: email verification and password reset by links
//! from the dev outbox (and over SMTP to a local mail server), organisations, roles, invitations, the
//! admin area, and another organisation's ids refused everywhere with nothing changed.

mod common;

use common::{Db, TestApp};
use switchyard::web::dashboard::Accounts;
use switchyard_app::account::backend::{now_secs, Dashboard, Who};
use switchyard_app::keys::NewKeyForm;

fn who(user_id: &str) -> Who {
    Who {
        user_id: user_id.into(),
        org_id: None,
        signed_in_at: now_secs(),
    }
}

fn in_org(user_id: &str, org_id: &str) -> Who {
    Who {
        org_id: Some(org_id.into()),
        ..who(user_id)
    }
}

fn key(name: &str) -> NewKeyForm {
    NewKeyForm {
        name: name.into(),
        ..NewKeyForm::default()
    }
}

/// The newest outbox email to `to`: (subject, text body).
async fn last_mail(app: &TestApp, to: &str) -> Option<(String, String)> {
    sqlx::query_as(
        "SELECT subject, text_body FROM outbox WHERE to_email = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(to)
    .fetch_optional(&app.store.pool)
    .await
    .expect("outbox")
}

/// The token of the `path` link in a body (`…/path?token=…`).
fn token_in(body: &str, path: &str) -> String {
    let marker = format!("/{path}?token=");
    let start = body.find(&marker).expect("the email holds the link") + marker.len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

async fn sign_up(d: &Accounts, email: &str, client: &str) -> String {
    d.sign_up(email, "correct horse battery", client)
        .await
        .expect("sign up")
}

async fn outbox_count(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox")
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    n
}

async fn verification_links_work_once_and_unlock_keys(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    let ada = sign_up(&d, "ada@example.com", "c1").await;
    let me = d.session_user(&who(&ada)).await.expect("signed in");
    assert!(!me.email_verified);
    // No key before the address is confirmed.
    let e = d
        .create_key(&who(&ada), key("early"))
        .await
        .expect_err("refused");
    assert!(e.contains("confirm your email"), "{e}");

    let (subject, body) = last_mail(&app, "ada@example.com").await.expect("email");
    assert_eq!(subject, "Confirm your email for Switchyard");
    assert!(
        body.contains(&format!("{}/verify?token=", app.base)),
        "{body}"
    );
    let token = token_in(&body, "verify");
    // The outbox keeps an HTML part too, rendered from the template with the same link.
    let (html,): (String,) = sqlx::query_as("SELECT html_body FROM outbox WHERE to_email = $1")
        .bind("ada@example.com")
        .fetch_one(&app.store.pool)
        .await
        .expect("html");
    assert!(html.contains("<a href=") && html.contains(&token), "{html}");

    assert_eq!(
        d.verify_email("not-a-token").await,
        Err("this link is invalid, already used or expired; ask for a new one".into())
    );
    assert_eq!(d.verify_email(&token).await, Ok("ada@example.com".into()));
    assert!(d.verify_email(&token).await.is_err(), "single use");
    assert!(d.session_user(&who(&ada)).await.expect("me").email_verified);
    assert!(d.create_key(&who(&ada), key("now")).await.is_ok());
    assert_eq!(
        d.send_verification(&who(&ada)).await,
        Err("your email address is already confirmed".into())
    );

    // A new link ends the older one; an expired link does not work.
    let bob = sign_up(&d, "bob@example.com", "c2").await;
    let first = token_in(
        &last_mail(&app, "bob@example.com").await.expect("mail").1,
        "verify",
    );
    d.send_verification(&who(&bob)).await.expect("resend");
    let second = token_in(
        &last_mail(&app, "bob@example.com").await.expect("mail").1,
        "verify",
    );
    assert_ne!(first, second);
    assert!(d.verify_email(&first).await.is_err(), "replaced");
    sqlx::query("UPDATE email_tokens SET expires_at = 1 WHERE user_id = $1")
        .bind(&bob)
        .execute(&app.store.writer)
        .await
        .expect("expire");
    assert!(d.verify_email(&second).await.is_err(), "expired");
}

async fn password_reset_by_link_ends_other_sessions(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    let ada = sign_up(&d, "ada@example.com", "c1").await;
    let before = outbox_count(&app).await;
    // An unknown address gets the same answer and no email.
    d.request_reset("nobody@example.com", "c1")
        .await
        .expect("same answer");
    assert_eq!(outbox_count(&app).await, before);
    assert!(d.request_reset("not an email", "c1").await.is_err());

    d.request_reset("ADA@example.com", "c1")
        .await
        .expect("sent");
    let (subject, body) = last_mail(&app, "ada@example.com").await.expect("mail");
    assert_eq!(subject, "Reset your Switchyard password");
    let token = token_in(&body, "reset");
    // A password that breaks the rules is refused and leaves the link working.
    let e = d
        .reset_password(&token, "short", "c1")
        .await
        .expect_err("weak");
    assert!(e.contains("at least 10 characters"), "{e}");
    // A session that signed in before the reset ends with it.
    let old = Who {
        signed_in_at: now_secs() - 5,
        ..who(&ada)
    };
    assert!(d.session_user(&old).await.is_some());
    assert_eq!(
        d.reset_password(&token, "a brand new passphrase", "c1")
            .await,
        Ok(ada.clone())
    );
    assert!(
        d.session_user(&old).await.is_none(),
        "signed out everywhere"
    );
    assert!(d.list_keys(&old).await.is_err());
    assert!(
        d.reset_password(&token, "yet another passphrase", "c1")
            .await
            .is_err(),
        "single use"
    );
    assert!(d
        .sign_in("ada@example.com", "correct horse battery", "c1")
        .await
        .is_err());
    assert_eq!(
        d.sign_in("ada@example.com", "a brand new passphrase", "c1")
            .await,
        Ok(ada.clone())
    );
    // The reset proved the address.
    assert!(d.session_user(&who(&ada)).await.expect("me").email_verified);

    // Reset emails are rate-limited per account without telling the asker.
    for _ in 0..6 {
        d.request_reset("ada@example.com", &format!("c{}", uuid::Uuid::new_v4()))
            .await
            .expect("same answer");
    }
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM outbox WHERE to_email = 'ada@example.com' AND subject LIKE 'Reset%'",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("count");
    assert!(n <= 4, "{n} reset emails");
    // And per asking address, with a clear message.
    let mut throttled = false;
    for i in 0..8 {
        if let Err(e) = d
            .request_reset(&format!("x{i}@example.com"), "10.9.9.9")
            .await
        {
            throttled |= e.contains("too many attempts");
        }
    }
    assert!(throttled);
}

async fn organisations_roles_and_the_last_owner(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    let ada = sign_up(&d, "ada@example.com", "c1").await;
    let personal = d.session_user(&who(&ada)).await.expect("me");
    assert_eq!(personal.org_name, "ada@example.com (personal)");
    assert_eq!(personal.role, "owner");

    let team = d
        .create_org(&who(&ada), "Team Rocket")
        .await
        .expect("created");
    assert!(d
        .create_org(&who(&ada), "Team Rocket")
        .await
        .expect_err("taken")
        .contains("already exists"));
    assert!(d.create_org(&who(&ada), "  ").await.is_err());
    d.check_membership(&who(&ada), &team).await.expect("member");
    let me = d.session_user(&in_org(&ada, &team)).await.expect("me");
    assert_eq!((me.org_name.as_str(), me.orgs.len()), ("Team Rocket", 2));
    d.rename_org(&in_org(&ada, &team), "Team Magma")
        .await
        .expect("renamed");
    assert_eq!(
        d.org_page(&in_org(&ada, &team)).await.expect("page").name,
        "Team Magma"
    );

    // Bob joins as a member (invitation accepted while signed in).
    let bob = sign_up(&d, "bob@example.com", "c2").await;
    let ada_verify = token_in(
        &last_mail(&app, "ada@example.com").await.expect("m").1,
        "verify",
    );
    // Inviting needs a confirmed address.
    assert!(d
        .invite(&in_org(&ada, &team), "bob@example.com", "member")
        .await
        .expect_err("unverified")
        .contains("confirm"));
    d.verify_email(&ada_verify).await.expect("verified");
    d.invite(&in_org(&ada, &team), "Bob@Example.com", "member")
        .await
        .expect("invited");
    let (subject, body) = last_mail(&app, "bob@example.com")
        .await
        .expect("invite mail");
    assert_eq!(
        subject,
        "ada@example.com invited you to Team Magma on Switchyard"
    );
    let token = token_in(&body, "invite");
    let view = d.invitation(&token, Some(&who(&bob))).await.expect("view");
    assert_eq!(
        (
            view.org_name.as_str(),
            view.role.as_str(),
            view.state.as_str(),
            view.signed_in_as.as_deref()
        ),
        ("Team Magma", "member", "pending", Some("bob@example.com"))
    );
    // Someone else holding the link cannot use it.
    let eve = sign_up(&d, "eve@example.com", "c3").await;
    assert!(d
        .accept_invitation(&who(&eve), &token)
        .await
        .expect_err("not hers")
        .contains("for bob@example.com"));
    assert_eq!(
        d.accept_invitation(&who(&bob), &token).await,
        Ok(team.clone())
    );
    assert!(
        d.accept_invitation(&who(&bob), &token).await.is_err(),
        "single use"
    );
    let bob_in_team = in_org(&bob, &team);
    assert_eq!(
        d.session_user(&bob_in_team).await.expect("bob").role,
        "member"
    );

    // Members see members but not invitations, and cannot manage.
    let page = d.org_page(&bob_in_team).await.expect("page");
    assert_eq!(page.members.len(), 2);
    assert!(page.invitations.is_empty());
    assert!(d.rename_org(&bob_in_team, "Mine").await.is_err());
    assert!(d
        .invite(&bob_in_team, "x@example.com", "member")
        .await
        .is_err());
    assert!(d.set_role(&bob_in_team, &bob, "owner").await.is_err());
    assert!(d.remove_member(&bob_in_team, &ada).await.is_err());

    // The last owner cannot step down or leave; with a second owner they can.
    let ada_in_team = in_org(&ada, &team);
    assert!(d
        .set_role(&ada_in_team, &ada, "member")
        .await
        .expect_err("last owner")
        .contains("at least one owner"));
    assert!(d
        .remove_member(&ada_in_team, &ada)
        .await
        .expect_err("last owner")
        .contains("at least one owner"));
    d.set_role(&ada_in_team, &bob, "admin")
        .await
        .expect("admin");
    // An admin cannot make owners or touch one.
    assert!(d.set_role(&bob_in_team, &bob, "owner").await.is_err());
    assert!(d.remove_member(&bob_in_team, &ada).await.is_err());
    assert!(d
        .set_role(&ada_in_team, &bob, "boss")
        .await
        .expect_err("bad role")
        .contains("role"));
    d.set_role(&ada_in_team, &bob, "owner")
        .await
        .expect("owner");
    d.set_role(&ada_in_team, &ada, "member")
        .await
        .expect("step down");
    assert_eq!(
        d.session_user(&ada_in_team).await.expect("ada").role,
        "member"
    );

    // Removing a member disables the keys they created there.
    d.create_key(&ada_in_team, key("ada's")).await.expect("key");
    d.remove_member(&bob_in_team, &ada).await.expect("removed");
    let keys = d.list_keys(&bob_in_team).await.expect("keys");
    assert_eq!((keys.len(), keys[0].status.as_str()), (1, "disabled"));
    // Ada's session falls back to her personal organisation.
    assert_eq!(
        d.session_user(&ada_in_team).await.expect("ada").org_name,
        "ada@example.com (personal)"
    );
    assert!(d.check_membership(&who(&ada), &team).await.is_err());

    // Leaving: bob is the only owner of the team now, so he cannot; of his personal org neither.
    assert!(d.remove_member(&bob_in_team, &bob).await.is_err());
}

async fn invited_people_sign_up_from_the_link(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    let ada = sign_up(&d, "ada@example.com", "c1").await;
    let token = token_in(
        &last_mail(&app, "ada@example.com").await.expect("m").1,
        "verify",
    );
    d.verify_email(&token).await.expect("verified");
    let ada_org = d.session_user(&who(&ada)).await.expect("me").org_id;
    d.invite(&who(&ada), "carol@example.com", "admin")
        .await
        .expect("invite");
    let token = token_in(
        &last_mail(&app, "carol@example.com").await.expect("m").1,
        "invite",
    );
    let view = d.invitation(&token, None).await.expect("view");
    assert!(!view.account_exists);
    assert!(d.sign_up_invited(&token, "short", "c2").await.is_err());
    let (carol, org) = d
        .sign_up_invited(&token, "correct horse battery", "c2")
        .await
        .expect("joined");
    assert_eq!(org, ada_org);
    let me = d.session_user(&in_org(&carol, &org)).await.expect("carol");
    // The link went to her address: it counts as confirmed.
    assert_eq!(
        (me.role.as_str(), me.email_verified, me.orgs.len()),
        ("admin", true, 2)
    );
    assert!(d
        .sign_up_invited(&token, "correct horse battery", "c3")
        .await
        .is_err());

    // Re-inviting replaces the open invitation; revoked and expired links do not work.
    d.invite(&who(&ada), "dan@example.com", "member")
        .await
        .expect("invite");
    let first = token_in(
        &last_mail(&app, "dan@example.com").await.expect("m").1,
        "invite",
    );
    d.invite(&who(&ada), "dan@example.com", "member")
        .await
        .expect("again");
    assert_eq!(
        d.invitation(&first, None).await.expect("view").state,
        "revoked"
    );
    let page = d.org_page(&who(&ada)).await.expect("page");
    assert_eq!(page.invitations.len(), 1);
    d.revoke_invitation(&who(&ada), &page.invitations[0].id)
        .await
        .expect("revoked");
    assert!(d
        .org_page(&who(&ada))
        .await
        .expect("page")
        .invitations
        .is_empty());
    assert!(d
        .invite(&who(&ada), "carol@example.com", "member")
        .await
        .expect_err("member")
        .contains("already a member"));
    // Only owners invite owners.
    assert!(d
        .invite(&in_org(&carol, &org), "x@example.com", "owner")
        .await
        .is_err());
    d.invite(&in_org(&carol, &org), "x@example.com", "member")
        .await
        .expect("admin invites");
    let t = token_in(
        &last_mail(&app, "x@example.com").await.expect("m").1,
        "invite",
    );
    sqlx::query("UPDATE invitations SET expires_at = 1 WHERE org_id = $1")
        .bind(&org)
        .execute(&app.store.writer)
        .await
        .expect("expire");
    assert_eq!(d.invitation(&t, None).await.expect("view").state, "expired");
    assert!(d
        .sign_up_invited(&t, "correct horse battery", "c4")
        .await
        .is_err());
}

async fn another_organisations_ids_are_refused(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    // Ada's organisation: a member, a key, an open invitation.
    let ada = sign_up(&d, "ada@example.com", "c1").await;
    d.verify_email(&token_in(
        &last_mail(&app, "ada@example.com").await.expect("m").1,
        "verify",
    ))
    .await
    .expect("verified");
    let ada_org = d.session_user(&who(&ada)).await.expect("me").org_id;
    d.create_key(&who(&ada), key("ada's")).await.expect("key");
    let ada_key = d.list_keys(&who(&ada)).await.expect("keys")[0].hash.clone();
    d.invite(&who(&ada), "friend@example.com", "member")
        .await
        .expect("invite");
    let invitation = d.org_page(&who(&ada)).await.expect("page").invitations[0]
        .id
        .clone();

    // Mallory owns another organisation and uses Ada's ids everywhere.
    let mallory = sign_up(&d, "mallory@example.com", "c2").await;
    d.verify_email(&token_in(
        &last_mail(&app, "mallory@example.com").await.expect("m").1,
        "verify",
    ))
    .await
    .expect("verified");
    let m = who(&mallory);
    assert!(d.check_membership(&m, &ada_org).await.is_err());
    // A session forged to point at Ada's organisation still works in Mallory's own.
    let forged = in_org(&mallory, &ada_org);
    assert_eq!(
        d.session_user(&forged).await.expect("me").org_name,
        "mallory@example.com (personal)"
    );
    assert!(d.list_keys(&forged).await.expect("keys").is_empty());
    assert!(d
        .org_page(&forged)
        .await
        .expect("page")
        .members
        .iter()
        .all(|x| x.email == "mallory@example.com"));
    assert_eq!(
        d.set_key_disabled(&m, &ada_key, true).await,
        Err("no such key".into())
    );
    assert_eq!(
        d.update_key(&m, &ada_key, key("mine")).await,
        Err("no such key".into())
    );
    assert_eq!(d.delete_key(&m, &ada_key).await, Err("no such key".into()));
    assert_eq!(
        d.revoke_invitation(&m, &invitation).await,
        Err("no such invitation".into())
    );
    assert_eq!(
        d.set_role(&m, &ada, "member").await,
        Err("no such member in this organisation".into())
    );
    assert_eq!(
        d.remove_member(&m, &ada).await,
        Err("no such member in this organisation".into())
    );
    assert!(d.admin_overview(&m).await.is_err(), "not a platform admin");
    assert!(d.admin_set_user_disabled(&m, &ada, true).await.is_err());

    // Nothing changed.
    let keys = d.list_keys(&who(&ada)).await.expect("keys");
    assert_eq!(
        (keys.len(), keys[0].name.as_str(), keys[0].status.as_str()),
        (1, "ada's", "active")
    );
    let page = d.org_page(&who(&ada)).await.expect("page");
    assert_eq!(
        (
            page.members.len(),
            page.members[0].role.as_str(),
            page.invitations.len()
        ),
        (1, "owner", 1)
    );
    let me = d.session_user(&who(&ada)).await.expect("ada");
    assert!(me.is_admin, "the platform's first account is its admin");
}

async fn admins_list_users_read_the_outbox_and_disable_accounts(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    let root = sign_up(&d, "root@example.com", "c1").await;
    let bob = sign_up(&d, "bob@example.com", "c2").await;
    let o = d.admin_overview(&who(&root)).await.expect("admin");
    assert!(o.outbox_in_use);
    assert!(o
        .users
        .iter()
        .any(|u| u.email == "bob@example.com" && !u.verified && !u.disabled));
    assert!(o.orgs.iter().any(|x| x.name == "acme"));
    assert!(o
        .outbox
        .iter()
        .any(|m| m.to == "bob@example.com" && m.body.contains("/verify?token=")));

    assert!(
        d.admin_set_user_disabled(&who(&root), &root, true)
            .await
            .is_err(),
        "not yourself"
    );
    d.admin_set_user_disabled(&who(&root), &bob, true)
        .await
        .expect("disabled");
    assert!(d.session_user(&who(&bob)).await.is_none(), "sessions end");
    assert!(d
        .sign_in("bob@example.com", "correct horse battery", "c2")
        .await
        .expect_err("off")
        .contains("disabled"));
    d.admin_set_user_disabled(&who(&root), &bob, false)
        .await
        .expect("enabled");
    assert!(d.session_user(&who(&bob)).await.is_some());
    assert!(d
        .admin_set_user_disabled(&who(&root), "nobody", true)
        .await
        .is_err());
}

/// A minimal SMTP server (RFC 5321 happy path, no TLS): collects what it is sent.
async fn smtp_sink() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = data.as_mut() {
                        if line == "." {
                            let _ = tx.send(data.take().unwrap_or_default());
                            let _ = w.write_all(b"250 OK queued\r\n").await;
                        } else {
                            d.push_str(&line);
                            d.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (addr, rx)
}

async fn emails_go_over_smtp_when_configured(db: Db) {
    let (smtp, mut received) = smtp_sink().await;
    let app = TestApp::start_with(db, |c| {
        c.smtp_url = Some(switchyard::config::Secret::new(format!("smtp://{smtp}")));
        c.public_url = Some("https://llm.example.com".into());
    })
    .await;
    let d = Accounts::new(app.state.clone());
    sign_up(&d, "ada@example.com", "c1").await;
    let message = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("the mail server got a message in time")
        .expect("message");
    assert!(message.contains("To: ada@example.com"), "{message}");
    assert!(
        message.contains("Subject: Confirm your email for Switchyard"),
        "{message}"
    );
    assert!(message.contains("multipart/alternative"), "{message}");
    assert!(message.contains("text/html"), "{message}");
    // Quoted-printable may fold long lines: join them before looking for the link.
    let unfolded = message.replace("=\n", "").replace("=3D", "=");
    assert!(
        unfolded.contains("https://llm.example.com/verify?token="),
        "{message}"
    );
    assert_eq!(outbox_count(&app).await, 0, "nothing kept in the outbox");
}

async fn owners_make_management_keys_that_script_the_keys_api(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    let ada = sign_up(&d, "ada@example.com", "c1").await;
    d.verify_email(&token_in(
        &last_mail(&app, "ada@example.com").await.expect("m").1,
        "verify",
    ))
    .await
    .expect("verified");
    d.create_key(&who(&ada), key("app")).await.expect("key");
    let secret = d
        .create_management_key(&who(&ada), "provisioning")
        .await
        .expect("management key");
    let listed = d
        .list_management_keys(&who(&ada))
        .await
        .expect("list")
        .expect("for owners");
    assert_eq!(
        (
            listed.len(),
            listed[0].name.as_str(),
            listed[0].created_by.as_deref()
        ),
        (1, "provisioning", Some("ada@example.com"))
    );
    // It is not among the API keys, it manages them over HTTP, and it cannot call models.
    assert_eq!(d.list_keys(&who(&ada)).await.expect("keys").len(), 1);
    let r = app
        .http
        .get(app.url("/api/v1/keys"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["data"][0]["name"], "app");
    let call = app
        .chat_with_key(&secret, serde_json::json!({"model": "test/fast", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(call.status(), 403, "a management key cannot call models");

    // Members neither see nor make them; another organisation cannot delete them.
    d.invite(&who(&ada), "bob@example.com", "member")
        .await
        .expect("invite");
    let t = token_in(
        &last_mail(&app, "bob@example.com").await.expect("m").1,
        "invite",
    );
    let (bob, org) = d
        .sign_up_invited(&t, "correct horse battery", "c2")
        .await
        .expect("bob");
    let bob = in_org(&bob, &org);
    assert_eq!(d.list_management_keys(&bob).await, Ok(None));
    assert!(d.create_management_key(&bob, "mine").await.is_err());
    assert!(d
        .delete_management_key(&bob, &listed[0].hash)
        .await
        .is_err());
    let eve = sign_up(&d, "eve@example.com", "c3").await;
    assert_eq!(
        d.delete_management_key(&who(&eve), &listed[0].hash).await,
        Err("no such key".into())
    );
    assert!(d.create_management_key(&who(&ada), " ").await.is_err());

    d.delete_management_key(&who(&ada), &listed[0].hash)
        .await
        .expect("deleted");
    assert_eq!(d.list_management_keys(&who(&ada)).await, Ok(Some(vec![])));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let r = app
        .http
        .get(app.url("/api/v1/keys"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
}

both_backends!(
    owners_make_management_keys_that_script_the_keys_api,
    verification_links_work_once_and_unlock_keys,
    password_reset_by_link_ends_other_sessions,
    organisations_roles_and_the_last_owner,
    invited_people_sign_up_from_the_link,
    another_organisations_ids_are_refused,
    admins_list_users_read_the_outbox_and_disable_accounts,
    emails_go_over_smtp_when_configured,
);
