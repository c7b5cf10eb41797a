//! The API keys page's server side on SQLite and PostgreSQL: what each role sees and may change, field
//! checks that name the field, and another organisation's keys staying out of reach.

mod common;

use common::{actor, Db, TestDb};
use switchyard::accounts::{self, sign_up, Role};
use switchyard::store::{now_ms, Store};
use switchyard::web::key_pages;
use switchyard_app::keys::NewKeyForm;

fn form(name: &str) -> NewKeyForm {
    NewKeyForm {
        name: name.into(),
        ..NewKeyForm::default()
    }
}

async fn members_see_their_own_keys_and_admins_see_all(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = Store::open(&tdb.url, 4).await.expect("store");
    let (owner, org) = sign_up(&store, "owner@example.com", "correct horse battery")
        .await
        .expect("owner");
    let (member, _) = sign_up(&store, "member@example.com", "another long password")
        .await
        .expect("member");
    // Make the owner's organisation the member's only one, as a member (not owner).
    sqlx::query("DELETE FROM memberships WHERE user_id = $1")
        .bind(&member.id)
        .execute(&store.writer)
        .await
        .expect("reset");
    let mut tx = store.writer.begin().await.expect("tx");
    accounts::add_member(&mut tx, &org.id, &member.id, Role::Member, now_ms())
        .await
        .expect("join");
    tx.commit().await.expect("commit");

    key_pages::create(&store, &actor(&store, &owner.id).await, form("owner's"))
        .await
        .expect("owner key");
    key_pages::create(&store, &actor(&store, &member.id).await, form("member's"))
        .await
        .expect("member key");
    let all = key_pages::list(&store, &actor(&store, &owner.id).await)
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["owner's", "member's"]
    );
    assert_eq!(all[1].created_by.as_deref(), Some("member@example.com"));
    let mine = key_pages::list(&store, &actor(&store, &member.id).await)
        .await
        .expect("list");
    assert_eq!(
        mine.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["member's"]
    );

    // A member cannot touch the owner's key; the owner can touch the member's.
    let owners_hash = all[0].hash.clone();
    assert_eq!(
        key_pages::set_disabled(&store, &actor(&store, &member.id).await, &owners_hash, true).await,
        Err("no such key".into())
    );
    assert_eq!(
        key_pages::delete(&store, &actor(&store, &member.id).await, &owners_hash).await,
        Err("no such key".into())
    );
    key_pages::set_disabled(&store, &actor(&store, &owner.id).await, &all[1].hash, true)
        .await
        .expect("disable");
    assert_eq!(
        key_pages::list(&store, &actor(&store, &member.id).await)
            .await
            .expect("list")[0]
            .status,
        "disabled"
    );

    // Another organisation's owner reaches none of it.
    let (stranger, _) = sign_up(&store, "stranger@example.com", "yet another password")
        .await
        .expect("stranger");
    assert!(key_pages::list(&store, &actor(&store, &stranger.id).await)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        key_pages::delete(&store, &actor(&store, &stranger.id).await, &owners_hash).await,
        Err("no such key".into())
    );
    assert_eq!(
        key_pages::list(&store, &actor(&store, &owner.id).await)
            .await
            .expect("list")
            .len(),
        2,
        "nothing was deleted"
    );
}

async fn the_create_form_names_the_field_to_fix(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = Store::open(&tdb.url, 4).await.expect("store");
    let (owner, _) = sign_up(&store, "owner@example.com", "correct horse battery")
        .await
        .expect("owner");
    let cases = [
        (
            NewKeyForm {
                name: " ".into(),
                ..NewKeyForm::default()
            },
            "name",
        ),
        (
            NewKeyForm {
                limit_usd: "lots".into(),
                ..form("k")
            },
            "credit limit",
        ),
        (
            NewKeyForm {
                limit_reset: "daily".into(),
                ..form("k")
            },
            "a reset needs a credit limit",
        ),
        (
            NewKeyForm {
                expires: "2001-01-01".into(),
                ..form("k")
            },
            "in the future",
        ),
        (
            NewKeyForm {
                expires: "soon".into(),
                ..form("k")
            },
            "expires on",
        ),
        (
            NewKeyForm {
                models: "nobody/none".into(),
                ..form("k")
            },
            "not in the catalog",
        ),
        (
            NewKeyForm {
                rpm: "0".into(),
                ..form("k")
            },
            "requests per minute",
        ),
        (
            NewKeyForm {
                concurrency: "0".into(),
                ..form("k")
            },
            "requests at a time",
        ),
    ];
    for (f, needle) in cases {
        let e = key_pages::create(&store, &actor(&store, &owner.id).await, f.clone())
            .await
            .expect_err("refused");
        assert!(e.contains(needle), "{f:?}: {e}");
    }
    assert!(
        key_pages::list(&store, &actor(&store, &owner.id).await)
            .await
            .expect("list")
            .is_empty(),
        "nothing was created"
    );
    let secret = key_pages::create(
        &store,
        &actor(&store, &owner.id).await,
        NewKeyForm {
            limit_usd: "$2.50".into(),
            limit_reset: "weekly".into(),
            expires: "2099-12-31".into(),
            rpm: "60".into(),
            concurrency: "4".into(),
            ..form("full")
        },
    )
    .await
    .expect("created");
    assert!(secret.starts_with("sk-sy-v1-"));
    let k = &key_pages::list(&store, &actor(&store, &owner.id).await)
        .await
        .expect("list")[0];
    assert_eq!(
        (
            k.limit_usd.as_deref(),
            k.limit_reset.as_deref(),
            k.expires.as_deref(),
            k.rpm,
            k.concurrency
        ),
        (
            Some("2.5"),
            Some("weekly"),
            Some("2099-12-31"),
            Some(60),
            Some(4)
        )
    );
}

async fn usage_today_and_this_month_come_from_the_request_log(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = Store::open(&tdb.url, 4).await.expect("store");
    let (owner, org) = sign_up(&store, "owner@example.com", "correct horse battery")
        .await
        .expect("owner");
    key_pages::create(&store, &actor(&store, &owner.id).await, form("busy"))
        .await
        .expect("key");
    let (key_id,): (String,) = sqlx::query_as("SELECT id FROM api_keys WHERE org_id = $1")
        .bind(&org.id)
        .fetch_one(&store.pool)
        .await
        .expect("id");
    let now = now_ms();
    // Two requests now, one 40 days ago (outside this month), charged 1000, 2000 and 4000 nanos.
    for (i, (at, charge)) in [
        (now, 1000i64),
        (now - 1, 2000),
        (now - 40 * 86_400_000, 4000),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO generations (id, org_id, key_id, model_slug, charge_nanos, status, created_at) \
             VALUES ($1, $2, $3, 'm/x', $4, 200, $5)",
        )
        .bind(format!("gen-test-{i}"))
        .bind(&org.id)
        .bind(&key_id)
        .bind(charge)
        .bind(at)
        .execute(&store.writer)
        .await
        .expect("generation");
    }
    let k = &key_pages::list(&store, &actor(&store, &owner.id).await)
        .await
        .expect("list")[0];
    assert_eq!(k.usage_today_usd, "0.000003");
    assert_eq!(k.usage_month_usd, "0.000003");
}

both_backends!(
    members_see_their_own_keys_and_admins_see_all,
    the_create_form_names_the_field_to_fix,
    usage_today_and_this_month_come_from_the_request_log,
);
