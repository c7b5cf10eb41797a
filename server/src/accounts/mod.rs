//! Accounts: users, organisations and memberships. The dashboard's sign-up and sessions build on these;
//! for now the operator creates organisations from the command line.

use crate::store::{is_unique_violation, new_id, now_ms, Store};
use anyhow::{bail, Context};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
}

/// Creates an organisation and makes `owner_email` its owner (creating that user when new).
pub async fn create_org(store: &Store, name: &str, owner_email: &str) -> anyhow::Result<Org> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        bail!("--name must be 1 to 100 characters");
    }
    let email = owner_email.trim().to_ascii_lowercase();
    if !valid_email(&email) {
        bail!("--owner-email {owner_email:?} is not an email address");
    }
    let now = now_ms();
    let mut tx = store.writer.begin().await?;
    let org = Org {
        id: new_id(),
        name: name.to_string(),
    };
    let inserted = sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&org.id)
        .bind(&org.name)
        .bind(now)
        .execute(&mut *tx)
        .await;
    if let Err(e) = inserted {
        if is_unique_violation(&e) {
            bail!("an organisation named {name:?} already exists");
        }
        return Err(e).context("creating the organisation");
    }
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING")
        .bind(new_id())
        .bind(&email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let (user_id,): (String,) = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
    )
    .bind(&org.id)
    .bind(&user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(org)
}

pub async fn find_org(store: &Store, name: &str) -> anyhow::Result<Org> {
    let row: Option<(String, String)> = sqlx::query_as("SELECT id, name FROM orgs WHERE name = $1")
        .bind(name.trim())
        .fetch_optional(&store.pool)
        .await?;
    match row {
        Some((id, name)) => Ok(Org { id, name }),
        None => bail!("no organisation named {name:?}; `switchyard org create --name … --owner-email …` makes one"),
    }
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty() && !domain.is_empty() && !e.contains(char::is_whitespace) && e.len() <= 254
}
