//! The dashboard's session store on SQLite and PostgreSQL: round trips, updates, expiry, deletion and id
//! collisions.

mod common;

use common::{Db, TestDb};
use switchyard::store::Store;
use switchyard::web::sessions::DbSessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{ExpiredDeletion, SessionStore};

fn record(expires_in_secs: i64) -> Record {
    let mut data = std::collections::HashMap::new();
    data.insert("user_id".to_string(), serde_json::json!("u-1"));
    Record {
        id: Id::default(),
        data,
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::seconds(expires_in_secs),
    }
}

async fn sessions_round_trip_expire_and_delete(db: Db) {
    let tdb = TestDb::new(db).await;
    let store = DbSessionStore::new(Store::open(&tdb.url, 2).await.expect("store"));

    let mut r = record(3600);
    store.create(&mut r).await.expect("create");
    let loaded = store.load(&r.id).await.expect("load").expect("present");
    assert_eq!(loaded.data["user_id"], "u-1");

    r.data.insert("org".into(), serde_json::json!("o-9"));
    store.save(&r).await.expect("save");
    assert_eq!(
        store
            .load(&r.id)
            .await
            .expect("load")
            .expect("present")
            .data["org"],
        "o-9"
    );

    // A colliding id is replaced by a fresh one, never overwriting the other session.
    let mut twin = record(3600);
    twin.id = r.id;
    twin.data
        .insert("user_id".into(), serde_json::json!("intruder"));
    store.create(&mut twin).await.expect("create");
    assert_ne!(twin.id, r.id);
    assert_eq!(
        store
            .load(&r.id)
            .await
            .expect("load")
            .expect("present")
            .data["user_id"],
        "u-1"
    );

    // Expired sessions do not load and are swept.
    let mut old = record(-10);
    store.create(&mut old).await.expect("create");
    assert!(store.load(&old.id).await.expect("load").is_none());
    store.delete_expired().await.expect("sweep");

    store.delete(&r.id).await.expect("delete");
    assert!(store.load(&r.id).await.expect("load").is_none());
    assert!(store.load(&twin.id).await.expect("load").is_some());
}

both_backends!(sessions_round_trip_expire_and_delete);
