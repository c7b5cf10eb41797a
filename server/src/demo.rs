//! `switchyard serve --demo`: a platform a newcomer can call at once. Starts the development upstream,
//! applies the demo catalog pointing at it, and makes sure a demo organisation with credits and a key
//! exists (the key is kept in the data folder so that every start can print it again).

use crate::{
    accounts, billing::ledger, catalog, crypto::Cipher, devupstream, keys, money::Nanos,
    store::Store,
};
use anyhow::Context;
use std::{net::SocketAddr, path::Path};

pub const DEMO_CATALOG: &str = include_str!("../../assets/demo-catalog.toml");
pub const DEMO_ORG: &str = "Demo";
const DEMO_OWNER: &str = "demo@switchyard.local";

pub struct Demo {
    pub upstream: SocketAddr,
    pub api_key: String,
    /// The demo owner's sign-in: email and password (kept in the data folder).
    pub login: (String, String),
}

pub async fn prepare(
    store: &Store,
    cipher: &Cipher,
    data_dir: &Path,
    upstream_addr: SocketAddr,
) -> anyhow::Result<Demo> {
    let upstream_key = format!("sk-dev-{}", uuid::Uuid::new_v4().simple());
    let (upstream, _) = devupstream::spawn(
        upstream_addr,
        devupstream::FakeConfig {
            chunk_delay_ms: 40,
            api_key: Some(upstream_key.clone()),
            more_keys: Vec::new(),
        },
    )
    .await
    .with_context(|| format!("starting the development upstream on {upstream_addr}"))?;
    let url = format!("http://{upstream}/v1");
    let env = move |name: &str| match name {
        "SWITCHYARD_DEMO_UPSTREAM_URL" => Some(url.clone()),
        "SWITCHYARD_DEMO_UPSTREAM_KEY" => Some(upstream_key.clone()),
        other => std::env::var(other).ok(),
    };
    catalog::file::apply(
        store,
        cipher,
        "assets/demo-catalog.toml",
        DEMO_CATALOG,
        &env,
    )
    .await?;

    let org = match accounts::find_org(store, DEMO_ORG).await {
        Ok(o) => o,
        Err(_) => accounts::create_org(store, DEMO_ORG, DEMO_OWNER).await?,
    };
    ledger::grant(
        store,
        &org.id,
        Nanos::parse_usd("10")?,
        "grant:demo-initial",
        Some("demo credits"),
    )
    .await?;

    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let key_file = data_dir.join("demo-api-key.txt");
    let saved = std::fs::read_to_string(&key_file)
        .ok()
        .map(|s| s.trim().to_string());
    let live = match &saved {
        Some(secret) => keys::lookup(store, &keys::hash_secret(secret))
            .await?
            .filter(|k| !k.revoked && !k.disabled),
        None => None,
    };
    let api_key = match (saved, live) {
        (Some(secret), Some(_)) => secret,
        _ => {
            let k = keys::create_key(store, &org.id, "demo", None, None).await?;
            std::fs::write(&key_file, &k.secret)
                .with_context(|| format!("saving the demo key to {}", key_file.display()))?;
            k.secret
        }
    };
    // The demo owner can sign in to the dashboard; the password is made once and kept beside the key.
    let login_file = data_dir.join("demo-login.txt");
    let password = match std::fs::read_to_string(&login_file)
        .ok()
        .map(|s| s.trim().to_string())
    {
        Some(p) if accounts::sign_in(store, DEMO_OWNER, &p).await.is_ok() => p,
        _ => {
            let p = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            accounts::create_admin(store, DEMO_OWNER, &p)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            std::fs::write(&login_file, &p)
                .with_context(|| format!("saving the demo login to {}", login_file.display()))?;
            p
        }
    };
    Ok(Demo {
        upstream,
        api_key,
        login: (DEMO_OWNER.to_string(), password),
    })
}
