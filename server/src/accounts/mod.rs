//! Accounts: users (argon2id passwords), organisations and memberships; sign-up makes a personal
//! organisation, the first account of a platform is its admin. The dashboard's pages and sessions build on
//! these; the operator also creates organisations and admins from the command line.

pub mod orgs;
pub mod tokens;

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
    add_member(&mut tx, &org.id, &user_id, Role::Owner, now).await?;
    tx.commit().await?;
    Ok(org)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// Adds a user to an org with a role, in the caller's transaction.
pub async fn add_member(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org_id: &str,
    user_id: &str,
    role: Role,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
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

pub fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty() && !domain.is_empty() && !e.contains(char::is_whitespace) && e.len() <= 254
}

/// A person who can sign in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub is_admin: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error("{0:?} is not an email address")]
    BadEmail(String),
    #[error("the password must be {}", .0.join(", "))]
    WeakPassword(Vec<&'static str>),
    /// Deliberately vague: it must not tell a stranger whether an address has an account.
    #[error("could not create an account with this email; if you already have one, sign in or reset your password")]
    EmailTaken,
    /// The same answer for an unknown email and a wrong password.
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("this account is disabled; contact the platform's operator")]
    Disabled,
    /// A link from an email that does not work (any more); the same answer for every reason.
    #[error("this link is invalid, already used or expired; ask for a new one")]
    BadLink,
    /// Something the person asked that the rules do not allow; the message says which rule.
    #[error("{0}")]
    Refused(String),
    /// Not there, or not theirs: the same answer.
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Internal(e.to_string())
    }
}

/// argon2id with a random salt, off the async threads (it is deliberately slow).
pub async fn hash_password(password: &str) -> Result<String, AccountError> {
    let pw = password.to_string();
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::PasswordHasher;
        argon2::Argon2::default()
            .hash_password(pw.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| AccountError::Internal(e.to_string()))?
    .map_err(|e| AccountError::Internal(e.to_string()))
}

async fn verify_password(password: &str, phc: &str) -> bool {
    let (pw, phc) = (password.to_string(), phc.to_string());
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{phc::PasswordHash, PasswordVerifier};
        PasswordHash::new(&phc).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(pw.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash of a password nobody has, verified against when the email is unknown so that both failures
/// take the same time.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The email, normalised, if it is an address and the password follows the rules.
pub(crate) fn checked_credentials(email: &str, password: &str) -> Result<String, AccountError> {
    let email = email.trim().to_ascii_lowercase();
    if !valid_email(&email) {
        return Err(AccountError::BadEmail(email));
    }
    let problems = switchyard_app::password_problems(password, &email);
    if !problems.is_empty() {
        return Err(AccountError::WeakPassword(problems));
    }
    Ok(email)
}

/// Creates an account and its personal organisation (owned by it). The first account of a platform
/// without a platform admin becomes the platform admin.
pub async fn sign_up(
    store: &Store,
    email: &str,
    password: &str,
) -> Result<(User, Org), AccountError> {
    let email = checked_credentials(email, password)?;
    let hash = hash_password(password).await?;
    let now = now_ms();
    let mut tx = store.writer.begin().await?;
    let user_id = new_id();
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, password_hash, is_admin, created_at) \
         SELECT $1, $2, $3, CASE WHEN EXISTS (SELECT 1 FROM users WHERE is_admin = 1) THEN 0 ELSE 1 END, $4",
    )
    .bind(&user_id)
    .bind(&email)
    .bind(&hash)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Err(AccountError::EmailTaken),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let (is_admin,): (i64,) = sqlx::query_as("SELECT is_admin FROM users WHERE id = $1")
        .bind(&user_id)
        .fetch_one(&mut *tx)
        .await?;
    // Personal organisation: "<email> (personal)", made unique if an operator already used the name.
    let mut name = format!("{email} (personal)");
    let (taken,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs WHERE name = $1")
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?;
    if taken > 0 {
        name = format!("{name} {}", &user_id[user_id.len() - 6..]);
    }
    let org = Org { id: new_id(), name };
    sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&org.id)
        .bind(&org.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    add_member(&mut tx, &org.id, &user_id, Role::Owner, now).await?;
    tx.commit().await?;
    tracing::info!(user = %user_id, admin = is_admin != 0, "account created");
    Ok((
        User {
            id: user_id,
            email,
            is_admin: is_admin != 0,
        },
        org,
    ))
}

/// Checks an email and password. Unknown emails and wrong passwords get the same error, in the same time.
pub async fn sign_in(store: &Store, email: &str, password: &str) -> Result<User, AccountError> {
    let email = email.trim().to_ascii_lowercase();
    let row: Option<(String, Option<String>, i64, i64)> =
        sqlx::query_as("SELECT id, password_hash, is_admin, disabled FROM users WHERE email = $1")
            .bind(&email)
            .fetch_optional(&store.pool)
            .await?;
    let Some((id, Some(hash), is_admin, disabled)) = row else {
        let dummy = match DUMMY_HASH.get() {
            Some(h) => h.clone(),
            None => {
                let h = hash_password("not a real password, only for timing").await?;
                DUMMY_HASH.get_or_init(|| h).clone()
            }
        };
        let _ = verify_password(password, &dummy).await;
        return Err(AccountError::InvalidCredentials);
    };
    if !verify_password(password, &hash).await {
        return Err(AccountError::InvalidCredentials);
    }
    if disabled != 0 {
        return Err(AccountError::Disabled);
    }
    Ok(User {
        id,
        email,
        is_admin: is_admin != 0,
    })
}

/// Makes (or promotes) a platform admin with this email and password; the operator's bootstrap.
pub async fn create_admin(
    store: &Store,
    email: &str,
    password: &str,
) -> Result<User, AccountError> {
    let email = checked_credentials(email, password)?;
    let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
        .bind(&email)
        .fetch_optional(&store.pool)
        .await?;
    // The operator vouches for the address of the admins they make.
    if exists.is_none() {
        let (user, _) = sign_up(store, &email, password).await?;
        sqlx::query("UPDATE users SET is_admin = 1, email_verified_at = COALESCE(email_verified_at, created_at) WHERE id = $1")
            .bind(&user.id)
            .execute(&store.writer)
            .await?;
        return Ok(User {
            is_admin: true,
            ..user
        });
    }
    let (id,) = exists.expect("checked above");
    let hash = hash_password(password).await?;
    sqlx::query(
        "UPDATE users SET password_hash = $1, is_admin = 1, disabled = 0, password_changed_at = $3, \
         email_verified_at = COALESCE(email_verified_at, $3) WHERE id = $2",
    )
    .bind(&hash)
    .bind(&id)
    .bind(now_ms())
        .execute(&store.writer)
        .await?;
    Ok(User {
        id,
        email,
        is_admin: true,
    })
}

/// Marks the address of the token's user as verified; returns it.
pub async fn verify_email(store: &Store, token: &str) -> Result<String, AccountError> {
    let mut tx = store.writer.begin().await?;
    let Some(user_id) = tokens::consume(&mut tx, token, tokens::Purpose::Verify).await? else {
        return Err(AccountError::BadLink);
    };
    sqlx::query(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) WHERE id = $2",
    )
    .bind(now_ms())
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    let (email,): (String,) = sqlx::query_as("SELECT email FROM users WHERE id = $1")
        .bind(&user_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(user = %user_id, "email verified");
    Ok(email)
}

/// The id of the enabled account with this email, if any (who a reset link may be sent to).
pub async fn find_enabled_user(store: &Store, email: &str) -> Result<Option<String>, AccountError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM users WHERE email = $1 AND disabled = 0")
            .bind(email.trim().to_ascii_lowercase())
            .fetch_optional(&store.pool)
            .await?;
    Ok(row.map(|r| r.0))
}

/// Sets a new password with a reset token. Sessions signed in before now end; the link also proves
/// the address, so it counts as verified.
pub async fn reset_password(
    store: &Store,
    token: &str,
    password: &str,
) -> Result<User, AccountError> {
    // Check the password before using the token up, so that a refused password leaves the link working.
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT u.email FROM email_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.hash = $1 AND t.purpose = 'reset' AND t.used_at IS NULL AND t.expires_at > $2",
    )
    .bind(tokens::token_hash(token))
    .bind(now_ms())
    .fetch_optional(&store.pool)
    .await?;
    let Some((email,)) = row else {
        return Err(AccountError::BadLink);
    };
    checked_credentials(&email, password)?;
    let hash = hash_password(password).await?;
    let mut tx = store.writer.begin().await?;
    let Some(user_id) = tokens::consume(&mut tx, token, tokens::Purpose::Reset).await? else {
        return Err(AccountError::BadLink);
    };
    let now = now_ms();
    sqlx::query(
        "UPDATE users SET password_hash = $1, password_changed_at = $2, \
         email_verified_at = COALESCE(email_verified_at, $2) WHERE id = $3",
    )
    .bind(&hash)
    .bind(now)
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    let (is_admin, disabled): (i64, i64) =
        sqlx::query_as("SELECT is_admin, disabled FROM users WHERE id = $1")
            .bind(&user_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    if disabled != 0 {
        return Err(AccountError::Disabled);
    }
    tracing::info!(user = %user_id, "password reset");
    Ok(User {
        id: user_id,
        email,
        is_admin: is_admin != 0,
    })
}
