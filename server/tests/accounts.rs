//! Accounts on SQLite and PostgreSQL: sign-up with a personal organisation, the first account as platform
//! admin, password rules, sign-in that does not tell strangers which emails exist, and the admin bootstrap.

mod common;

use common::{Db, TestDb};
use switchyard::accounts::{create_admin, sign_in, sign_up, AccountError};
use switchyard::store::Store;

async fn store(db: Db) -> (TestDb, Store) {
    let tdb = TestDb::new(db).await;
    let store = Store::open(&tdb.url, 4).await.expect("store");
    (tdb, store)
}

async fn sign_up_makes_a_personal_org_and_the_first_account_is_admin(db: Db) {
    let (_db, store) = store(db).await;
    let (ada, org) = sign_up(&store, " Ada@Example.com ", "correct horse battery")
        .await
        .expect("sign up");
    assert_eq!(ada.email, "ada@example.com");
    assert!(ada.is_admin, "the first account of a platform is its admin");
    assert_eq!(org.name, "ada@example.com (personal)");
    let (role,): (String,) =
        sqlx::query_as("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(&org.id)
            .bind(&ada.id)
            .fetch_one(&store.pool)
            .await
            .expect("membership");
    assert_eq!(role, "owner");
    let (bob, _) = sign_up(&store, "bob@example.com", "another long password")
        .await
        .expect("sign up");
    assert!(!bob.is_admin);

    // Stored as argon2id, never as the password.
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
        .bind(&bob.id)
        .fetch_one(&store.pool)
        .await
        .expect("hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("another long password"));
}

async fn bad_sign_ups_are_refused_with_reasons(db: Db) {
    let (_db, store) = store(db).await;
    sign_up(&store, "ada@example.com", "correct horse battery")
        .await
        .expect("sign up");
    assert_eq!(
        sign_up(&store, "ADA@example.com", "a different password")
            .await
            .expect_err("dup"),
        AccountError::EmailTaken
    );
    assert!(matches!(
        sign_up(&store, "not-an-email", "correct horse battery").await,
        Err(AccountError::BadEmail(_))
    ));
    match sign_up(&store, "cy@example.com", "short").await {
        Err(AccountError::WeakPassword(p)) => assert_eq!(p, vec!["at least 10 characters"]),
        other => panic!("{other:?}"),
    }
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&store.pool)
        .await
        .expect("count");
    assert_eq!(n, 1, "nothing was created by a refused sign-up");
    let msg = AccountError::EmailTaken.to_string();
    assert!(
        !msg.contains("exists"),
        "must not confirm that the address has an account: {msg}"
    );
}

async fn sign_in_checks_the_password_and_says_the_same_for_strangers(db: Db) {
    let (_db, store) = store(db).await;
    let (ada, _) = sign_up(&store, "ada@example.com", "correct horse battery")
        .await
        .expect("sign up");
    assert_eq!(
        sign_in(&store, "ADA@example.com", "correct horse battery")
            .await
            .expect("sign in"),
        ada
    );
    assert_eq!(
        sign_in(&store, "ada@example.com", "wrong horse battery").await,
        Err(AccountError::InvalidCredentials)
    );
    assert_eq!(
        sign_in(&store, "nobody@example.com", "correct horse battery").await,
        Err(AccountError::InvalidCredentials)
    );
    sqlx::query("UPDATE users SET disabled = 1 WHERE id = $1")
        .bind(&ada.id)
        .execute(&store.writer)
        .await
        .expect("disable");
    assert_eq!(
        sign_in(&store, "ada@example.com", "correct horse battery").await,
        Err(AccountError::Disabled)
    );
}

async fn the_operator_can_make_an_admin(db: Db) {
    let (_db, store) = store(db).await;
    sign_up(&store, "first@example.com", "correct horse battery")
        .await
        .expect("first");
    // An org owner created by the CLI has no password yet; admin create gives it one.
    switchyard::accounts::create_org(&store, "acme", "ops@acme.test")
        .await
        .expect("org");
    let ops = create_admin(&store, "ops@acme.test", "operator password 1")
        .await
        .expect("admin");
    assert!(ops.is_admin);
    assert_eq!(
        sign_in(&store, "ops@acme.test", "operator password 1")
            .await
            .expect("sign in")
            .id,
        ops.id
    );
    let fresh = create_admin(&store, "new@example.com", "operator password 2")
        .await
        .expect("admin");
    assert!(fresh.is_admin);
    assert!(
        sign_in(&store, "new@example.com", "operator password 2")
            .await
            .expect("sign in")
            .is_admin
    );
    assert!(matches!(
        create_admin(&store, "x@example.com", "short").await,
        Err(AccountError::WeakPassword(_))
    ));
}

async fn sign_in_attempts_are_rate_limited(db: Db) {
    use switchyard_app::account::backend::Dashboard;
    let app = common::TestApp::start(db).await;
    let store = app.store.clone();
    sign_up(&store, "ada@example.com", "correct horse battery")
        .await
        .expect("sign up");
    let pages = switchyard::web::dashboard::Accounts::new(app.state.clone());
    for _ in 0..10 {
        let e = pages
            .sign_in("ada@example.com", "wrong horse battery", "10.0.0.1")
            .await
            .expect_err("wrong");
        assert_eq!(e, "wrong email or password");
    }
    // Even the right password waits now, from any address: the account is being guessed at.
    let e = pages
        .sign_in("ada@example.com", "correct horse battery", "10.0.0.2")
        .await
        .expect_err("throttled");
    assert!(e.contains("too many attempts"), "{e}");
    // Another account is unaffected; one address trying many accounts is throttled too.
    sign_up(&store, "bob@example.com", "another long password")
        .await
        .expect("sign up");
    assert!(pages
        .sign_in("bob@example.com", "another long password", "10.0.0.3")
        .await
        .is_ok());
    let mut throttled = false;
    for i in 0..25 {
        if let Err(e) = pages
            .sign_in(
                &format!("x{i}@example.com"),
                "whatever password",
                "10.0.0.9",
            )
            .await
        {
            throttled |= e.contains("too many attempts");
        }
    }
    assert!(throttled, "one address cannot try accounts without limit");
}

both_backends!(
    sign_in_attempts_are_rate_limited,
    sign_up_makes_a_personal_org_and_the_first_account_is_admin,
    bad_sign_ups_are_refused_with_reasons,
    sign_in_checks_the_password_and_says_the_same_for_strangers,
    the_operator_can_make_an_admin,
);
