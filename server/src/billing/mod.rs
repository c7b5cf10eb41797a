//! Billing: the credit ledger, holds and settlement.
//!
//! The `CreditGate` admits a request by reserving its worst-case cost against the org balance and the key
//! limit (conditional UPDATEs, so concurrent requests can never reserve more than there is), and settles it
//! by writing the generation, the usage ledger entry and the projections and releasing the hold, in one
//! transaction, idempotent by generation id. All of this goes through one writer task that commits whatever
//! is queued in a single transaction (group commit): one commit serves many requests under load.
//!
//! When the database cannot take a batch (unreachable, locked, or silent for `BATCH_WAIT`), its
//! settlements go to the local journal (fsync'd) before their requests are told they are done, admissions
//! are refused at once (503) until the database answers again, and the journal is replayed — at start,
//! and every second while it holds anything. No settlement is ever dropped.

pub mod alerts;
pub mod audit;
mod batch;
pub mod journal;
pub mod ledger;
pub mod promo;
pub mod purchases;
pub mod stripe_sig;
pub mod topup;

use crate::money::Nanos;
use crate::store::{new_id, now_ms, Store};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Credit reserved for one request in flight.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub org_id: String,
    pub key_id: String,
    pub amount: Nanos,
    /// For a key whose limit resets: when the current period began (the key's period usage restarts
    /// from zero the first time a request of a new period is admitted).
    pub period_start: Option<i64>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone)]
pub enum Refusal {
    Balance { available: Nanos },
    KeyLimit { remaining: Nanos },
    Unavailable(String),
}

/// What a provider may bill the platform that no tenant is charged for, recorded beside the request
/// (`operator_losses`) so that admins see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    pub kind: LossKind,
    pub provider_slug: String,
    pub endpoint_id: String,
    /// The provider cost at stake (for an abandoned attempt, its worst case).
    pub cost: Nanos,
    /// What the tenant would have been charged for it.
    pub uncollected: Nanos,
    pub note: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// The provider reported usage costing more than the hold: the tenant paid the hold.
    OverHold,
    /// The gateway gave up on an attempt after the provider may have started generating.
    Abandoned,
    /// The request's hold was released before it settled (its instance was taken for dead) and the
    /// organisation could not pay all of it.
    HoldReleased,
    /// An instance died with the request in flight; its hold was released unsettled.
    InstanceDied,
}

impl LossKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LossKind::OverHold => "over_hold",
            LossKind::Abandoned => "abandoned",
            LossKind::HoldReleased => "hold_released",
            LossKind::InstanceDied => "instance_died",
        }
    }
}

/// One request's outcome, as recorded in the request log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Generation {
    pub id: String,
    pub org_id: String,
    pub key_id: String,
    pub model_slug: String,
    pub provider_slug: Option<String>,
    pub endpoint_id: Option<String>,
    pub upstream_model: Option<String>,
    pub upstream_id: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The parts of the prompt read from and written to the provider's cache.
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// The part of the completion spent reasoning (as the provider reports it).
    pub reasoning_tokens: u64,
    pub usage_estimated: bool,
    pub cost: Nanos,
    /// What the organisation is charged: never more than `held`.
    pub charge: Nanos,
    /// What was reserved for the request.
    pub held: Nanos,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub finish_reason: Option<String>,
    pub native_finish_reason: Option<String>,
    pub streamed: bool,
    pub cancelled: bool,
    pub status: u16,
    pub error: Option<String>,
    pub attempts: serde_json::Value,
    pub created_at: i64,
    /// The prompt and the answer, kept only for organisations that turned prompt logging on.
    pub content: Option<Box<Content>>,
    /// What providers billed for this request that it is not charged for.
    #[serde(default)]
    pub losses: Vec<Loss>,
}

/// A logged prompt (the request's messages as JSON) and the answer's text.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Content {
    pub request: String,
    pub response: String,
}

impl Serialize for Nanos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Nanos {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i64::deserialize(d).map(Nanos)
    }
}

enum Op {
    Admit {
        hold: Hold,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    Settle {
        hold: Hold,
        generation: Box<Generation>,
        reply: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Releases a hold whose admission its request gave up waiting for (if it was admitted at all).
    Release { hold: Hold },
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// The handle the gateway holds. Cloning is cheap.
#[derive(Clone)]
pub struct CreditGate {
    tx: mpsc::UnboundedSender<Op>,
    instance_id: String,
    /// How long a request waits for its admission before it is answered 503.
    admission_wait: Duration,
}

const MAX_BATCH: usize = 512;
/// The longest a batch may take to commit before the database is taken for unavailable.
const BATCH_WAIT: Duration = Duration::from_secs(5);
/// While the database is unavailable (batches go straight to the journal), how often it is asked.
const DOWN_PROBE: Duration = Duration::from_secs(1);

impl CreditGate {
    /// Replays what an earlier run journaled, then starts the writer task (and the heartbeat that keeps
    /// this instance's holds alive, which also replays the journal while it holds anything).
    pub async fn start(
        store: Store,
        stale_after: Duration,
        journal_dir: &std::path::Path,
        admission_wait: Duration,
    ) -> anyhow::Result<(CreditGate, tokio::task::JoinHandle<()>)> {
        let journal = std::sync::Arc::new(journal::Journal::open(journal_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot use the settlement journal folder {} ({e}); set SWITCHYARD_JOURNAL_DIR to a writable folder",
                journal_dir.display()
            )
        })?);
        // Settlements journaled by an earlier run go in first: their holds are settled, not released
        // as an dead instance's.
        let replayed = replay(&store, &journal).await?;
        if replayed > 0 {
            tracing::info!(entries = replayed, "replayed the settlement journal");
        }
        let instance_id = new_id();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let now = now_ms();
        sqlx::query("INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2)")
            .bind(&instance_id)
            .bind(now)
            .execute(&store.writer)
            .await?;
        release_stale_holds(&store, &instance_id, stale_after).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(writer_loop(
            Writer {
                store: store.clone(),
                instance_id: instance_id.clone(),
                journal: journal.clone(),
                down: down.clone(),
            },
            rx,
        ));
        let hb_store = store.clone();
        let hb_id = instance_id.clone();
        let gate = CreditGate {
            tx,
            instance_id,
            admission_wait,
        };
        let weak = gate.tx.downgrade();
        let replay_store = store.clone();
        let replay_weak = gate.tx.downgrade();
        let probe_down = down.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DOWN_PROBE).await;
                if replay_weak.upgrade().is_none() {
                    break;
                }
                // While the database is taken for unavailable, it is asked every second; once it
                // answers, admissions and settlements go to it again.
                if probe_down.load(std::sync::atomic::Ordering::SeqCst) {
                    let ping = sqlx::query("SELECT 1").execute(&replay_store.writer);
                    if !matches!(tokio::time::timeout(BATCH_WAIT, ping).await, Ok(Ok(_))) {
                        continue;
                    }
                    probe_down.store(false, std::sync::atomic::Ordering::SeqCst);
                    tracing::info!("the database answers again");
                }
                if journal.pending() {
                    match replay(&replay_store, &journal).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            entries = n,
                            "the database is back: journaled settlements applied"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "the settlement journal waits for the database")
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            let period = (stale_after / 4).max(Duration::from_millis(200));
            loop {
                tokio::time::sleep(period).await;
                if weak.upgrade().is_none() {
                    break;
                }
                let r = sqlx::query("UPDATE instances SET heartbeat_at = $1 WHERE id = $2")
                    .bind(now_ms())
                    .bind(&hb_id)
                    .execute(&hb_store.writer)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "instance heartbeat failed");
                }
                if let Err(e) = release_stale_holds(&hb_store, &hb_id, stale_after).await {
                    tracing::warn!(error = %e, "releasing stale holds failed");
                }
            }
        });
        Ok((gate, writer))
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Reserves `amount` for a request, or says why not.
    pub async fn admit(
        &self,
        org_id: &str,
        key_id: &str,
        amount: Nanos,
        period_start: Option<i64>,
    ) -> Result<Hold, Refusal> {
        let hold = Hold {
            id: new_id(),
            org_id: org_id.to_string(),
            key_id: key_id.to_string(),
            amount,
            period_start,
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Admit {
                hold: hold.clone(),
                reply,
            })
            .map_err(|_| Refusal::Unavailable("the platform is shutting down".into()))?;
        match tokio::time::timeout(self.admission_wait, rx).await {
            Ok(Ok(Ok(()))) => Ok(hold),
            Ok(Ok(Err(r))) => Err(r),
            Ok(Err(_)) => Err(Refusal::Unavailable("billing writer stopped".into())),
            Err(_) => {
                // It may still be admitted: release it then, whichever comes first.
                let _ = self.tx.send(Op::Release { hold });
                Err(Refusal::Unavailable(
                    "the database did not answer in time".into(),
                ))
            }
        }
    }

    /// Settles and waits until it is committed.
    pub async fn settle(&self, hold: Hold, generation: Generation) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Settle {
                hold,
                generation: Box::new(generation),
                reply: Some(reply),
            })
            .map_err(|_| "billing writer stopped".to_string())?;
        rx.await.map_err(|_| "billing writer stopped".to_string())?
    }

    /// Settles without waiting (from `Drop`, when a client went away). Never blocks, never drops it.
    pub fn settle_detached(&self, hold: Hold, generation: Generation) {
        if self
            .tx
            .send(Op::Settle {
                hold,
                generation: Box::new(generation),
                reply: None,
            })
            .is_err()
        {
            tracing::error!(
                "settlement after the billing writer stopped; the hold is released at next start"
            );
        }
    }

    /// Waits until every settlement queued so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes, then marks this instance as gone (it holds nothing any more).
    pub async fn close(&self, store: &Store) {
        self.flush().await;
        let _ = sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(&self.instance_id)
            .execute(&store.writer)
            .await;
    }
}

/// The writer task's state.
struct Writer {
    store: Store,
    instance_id: String,
    journal: std::sync::Arc<journal::Journal>,
    /// Set while the database is unavailable (batches go straight to the journal); cleared by the
    /// probe that asks it every second.
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

async fn writer_loop(mut w: Writer, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut batch: Vec<Op> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        run_batch(&mut w, &mut batch).await;
    }
    tracing::info!("billing writer drained");
}

/// Commits ops in one transaction, within `BATCH_WAIT`.
async fn commit(
    store: &Store,
    ops: &[Op],
    instance_id: &str,
) -> Result<Vec<Result<(), Refusal>>, sqlx::Error> {
    let together = async {
        let mut tx = store.writer.begin().await?;
        // A batch of admissions only need not wait for its WAL flush: if the server dies before it is
        // durable, the requests it admitted die too and nothing was charged. Settlements always wait, and
        // their flush covers every earlier admission.
        if store.backend == crate::store::Backend::Postgres
            && !ops.iter().any(|op| matches!(op, Op::Settle { .. }))
        {
            sqlx::query("SET LOCAL synchronous_commit TO OFF")
                .execute(&mut *tx)
                .await?;
        }
        let outcomes = apply_ops(&mut tx, ops, instance_id).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(outcomes)
    };
    tokio::time::timeout(BATCH_WAIT, together)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

/// Commits a batch in one transaction. If the database is unavailable, the batch goes to the journal;
/// if one op is at fault, each is committed alone so that it cannot take the others down with it.
async fn run_batch(w: &mut Writer, batch: &mut Vec<Op>) {
    use std::sync::atomic::Ordering::SeqCst;
    if w.down.load(SeqCst) {
        return divert(w, batch).await;
    }
    match commit(&w.store, batch, &w.instance_id).await {
        Ok(outcomes) => {
            for (op, outcome) in batch.drain(..).zip(outcomes) {
                reply(op, outcome);
            }
        }
        Err(e) if crate::store::unavailable(&e) => {
            tracing::error!(error = %e, ops = batch.len(), "the database is unavailable: settlements go to the journal, admissions are refused");
            w.down.store(true, SeqCst);
            divert(w, batch).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, ops = batch.len(), "batch commit failed; committing one by one");
            let ops: Vec<Op> = std::mem::take(batch);
            let mut rest = ops.into_iter();
            while let Some(op) = rest.next() {
                match commit(&w.store, std::slice::from_ref(&op), &w.instance_id).await {
                    Ok(mut o) => reply(op, o.pop().unwrap_or(Ok(()))),
                    Err(e) if crate::store::unavailable(&e) => {
                        w.down.store(true, SeqCst);
                        let mut left: Vec<Op> = std::iter::once(op).chain(rest).collect();
                        divert(w, &mut left).await;
                        return;
                    }
                    Err(e) => match op {
                        Op::Settle { ref generation, .. } => {
                            // Not the database's availability: this settlement itself. It is kept for
                            // the operator rather than dropped.
                            tracing::error!(generation = %generation.id, error = %e, "a settlement the database refuses was set aside in the journal folder");
                            let line = serde_json::to_string(&journal::Entry::Settle {
                                hold: match &op {
                                    Op::Settle { hold, .. } => hold.clone(),
                                    _ => unreachable!("matched a settlement"),
                                },
                                generation: generation.clone(),
                            })
                            .unwrap_or_default();
                            journal::reject(w.journal.dir(), &[line]);
                            reply(op, Err(Refusal::Unavailable(e.to_string())));
                        }
                        op => reply(op, Err(Refusal::Unavailable(e.to_string()))),
                    },
                }
            }
        }
    }
}

/// The database cannot take the batch: its settlements (and releases) are journaled, then acknowledged;
/// admissions are refused, and their holds released when the database answers (their commit may have
/// gone through before it stopped answering).
async fn divert(w: &mut Writer, batch: &mut Vec<Op>) {
    let entries: Vec<journal::Entry> = batch
        .iter()
        .filter_map(|op| match op {
            Op::Settle {
                hold, generation, ..
            } => Some(journal::Entry::Settle {
                hold: hold.clone(),
                generation: generation.clone(),
            }),
            Op::Release { hold } | Op::Admit { hold, .. } => {
                Some(journal::Entry::Release { hold: hold.clone() })
            }
            Op::Flush(_) => None,
        })
        .collect();
    let written = w.journal.append(entries).await;
    if let Err(e) = &written {
        tracing::error!(error = %e, "the settlement journal cannot be written; settlements of this batch are lost unless the database returns before this process ends");
    }
    for op in batch.drain(..) {
        let outcome = match (&op, &written) {
            (Op::Admit { .. }, _) => {
                Err(Refusal::Unavailable("the database is unavailable".into()))
            }
            (_, Ok(())) => Ok(()),
            (_, Err(e)) => Err(Refusal::Unavailable(e.to_string())),
        };
        reply(op, outcome);
    }
}

/// Applies what the journal holds: settlements (charged at most what can still be paid where their hold
/// was released meanwhile) and releases, a file at a time, deleting each once committed. Returns how
/// many entries were applied.
pub async fn replay(store: &Store, journal: &journal::Journal) -> anyhow::Result<usize> {
    let mut applied = 0;
    for file in journal.take().await? {
        let (entries, bad) = journal::read(&file)?;
        journal::reject(journal.dir(), &bad);
        for chunk in entries.chunks(MAX_BATCH) {
            let settles: Vec<(&Hold, &Generation)> = chunk
                .iter()
                .filter_map(|e| match e {
                    journal::Entry::Settle { hold, generation } => Some((hold, &**generation)),
                    _ => None,
                })
                .collect();
            let releases: Vec<&Hold> = chunk
                .iter()
                .filter_map(|e| match e {
                    journal::Entry::Release { hold } => Some(hold),
                    _ => None,
                })
                .collect();
            let work = async {
                let mut tx = store.writer.begin().await?;
                batch::settle_many(&mut tx, &settles, true).await?;
                batch::release_many(&mut tx, &releases).await?;
                tx.commit().await
            };
            tokio::time::timeout(BATCH_WAIT, work)
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))?;
            applied += chunk.len();
        }
        std::fs::remove_file(&file)?;
    }
    Ok(applied)
}

fn reply(op: Op, outcome: Result<(), Refusal>) {
    match op {
        Op::Admit { reply, .. } => {
            let _ = reply.send(outcome);
        }
        Op::Settle {
            reply: Some(reply), ..
        } => {
            let _ = reply.send(outcome.map_err(|r| format!("{r:?}")));
        }
        Op::Settle {
            reply: None,
            generation,
            ..
        } => {
            if let Err(r) = outcome {
                tracing::error!(generation = %generation.id, reason = ?r, "detached settlement failed");
            }
        }
        Op::Release { .. } => {}
        Op::Flush(done) => {
            let _ = done.send(());
        }
    }
}

/// Applies ops in one transaction: settlements first (what they release is available to admissions in
/// the same batch), then admissions; returns one outcome per op, in order.
async fn apply_ops(
    tx: &mut Transaction<'static, Any>,
    ops: &[Op],
    instance_id: &str,
) -> Result<Vec<Result<(), Refusal>>, sqlx::Error> {
    let settles: Vec<(&Hold, &Generation)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Settle {
                hold, generation, ..
            } => Some((hold, &**generation)),
            _ => None,
        })
        .collect();
    batch::settle_many(tx, &settles, true).await?;
    let releases: Vec<&Hold> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Release { hold } => Some(hold),
            _ => None,
        })
        .collect();
    batch::release_many(tx, &releases).await?;
    let admits: Vec<&Hold> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Admit { hold, .. } => Some(hold),
            _ => None,
        })
        .collect();
    let mut admitted = batch::admit_many(tx, &admits, instance_id)
        .await?
        .into_iter();
    Ok(ops
        .iter()
        .map(|op| match op {
            Op::Admit { .. } => admitted.next().unwrap_or(Ok(())),
            _ => Ok(()),
        })
        .collect())
}

/// Reserves one hold against its key limit, then its org balance (undoing the key part if the org
/// cannot pay). Does not write the hold row.
async fn reserve_one(
    tx: &mut Transaction<'static, Any>,
    h: &Hold,
) -> Result<Result<(), Refusal>, sqlx::Error> {
    if let Err(r) = reserve_key(tx, h).await? {
        return Ok(Err(r));
    }
    let org = sqlx::query(
        "UPDATE orgs SET reserved_nanos = reserved_nanos + $1 \
         WHERE id = $2 AND credits_nanos - usage_nanos - reserved_nanos >= $1",
    )
    .bind(h.amount.0)
    .bind(&h.org_id)
    .execute(&mut **tx)
    .await?;
    if org.rows_affected() == 0 {
        sqlx::query("UPDATE api_keys SET reserved_nanos = reserved_nanos - $1 WHERE id = $2")
            .bind(h.amount.0)
            .bind(&h.key_id)
            .execute(&mut **tx)
            .await?;
        let (available,): (i64,) = sqlx::query_as(
            "SELECT credits_nanos - usage_nanos - reserved_nanos FROM orgs WHERE id = $1",
        )
        .bind(&h.org_id)
        .fetch_one(&mut **tx)
        .await?;
        return Ok(Err(Refusal::Balance {
            available: Nanos(available),
        }));
    }
    Ok(Ok(()))
}

/// Reserves one hold against its key's limit only.
async fn reserve_key(
    tx: &mut Transaction<'static, Any>,
    h: &Hold,
) -> Result<Result<(), Refusal>, sqlx::Error> {
    let key = sqlx::query(
        "UPDATE api_keys SET reserved_nanos = reserved_nanos + $1 \
         WHERE id = $2 AND (limit_nanos IS NULL OR limit_nanos - period_usage_nanos - reserved_nanos >= $1)",
    )
    .bind(h.amount.0)
    .bind(&h.key_id)
    .execute(&mut **tx)
    .await?;
    if key.rows_affected() == 0 {
        let (remaining,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(limit_nanos - period_usage_nanos - reserved_nanos, 0) FROM api_keys WHERE id = $1",
        )
        .bind(&h.key_id)
        .fetch_one(&mut **tx)
        .await?;
        return Ok(Err(Refusal::KeyLimit {
            remaining: Nanos(remaining.max(0)),
        }));
    }
    Ok(Ok(()))
}

/// Operator losses since `since` (Unix ms), per provider and kind: (provider, kind, count, provider cost
/// at stake, uncollected), the largest first.
pub async fn losses_since(
    store: &Store,
    since: i64,
) -> Result<Vec<(String, String, i64, i64, i64)>, sqlx::Error> {
    // Losses are rare and kept apart from the rollups: read straight from their table.
    sqlx::query_as(
        "SELECT provider_slug, kind, COUNT(*), CAST(SUM(cost_nanos) AS BIGINT), CAST(SUM(uncollected_nanos) AS BIGINT) \
         FROM operator_losses WHERE created_at >= $1 GROUP BY provider_slug, kind ORDER BY 5 DESC, 1, 2",
    )
    .bind(since)
    .fetch_all(&store.pool)
    .await
}

/// Records generations that held no credit (synthetic usage for tests and timings) with the very
/// statements settlement uses: the log, the rollups, one ledger entry each and the projections.
pub async fn record(store: &Store, gens: &[Generation]) -> Result<(), sqlx::Error> {
    // Nothing was held for them: what they are charged stands for the hold.
    let gens: Vec<Generation> = gens
        .iter()
        .map(|g| Generation {
            held: g.held.max(g.charge),
            ..g.clone()
        })
        .collect();
    let gens = &gens[..];
    let holds: Vec<Hold> = gens
        .iter()
        .map(|g| Hold {
            id: format!("record-{}", g.id),
            org_id: g.org_id.clone(),
            key_id: g.key_id.clone(),
            amount: Nanos::ZERO,
            period_start: None,
        })
        .collect();
    let items: Vec<(&Hold, &Generation)> = holds.iter().zip(gens).collect();
    let mut tx = store.writer.begin().await?;
    batch::settle_many(&mut tx, &items, false).await?;
    tx.commit().await
}

/// Releases the holds of instances that stopped beating (a crash or hard kill): the tenant is not charged
/// for requests that were in flight when an instance died.
pub async fn release_stale_holds(
    store: &Store,
    me: &str,
    stale_after: Duration,
) -> Result<u64, sqlx::Error> {
    let cutoff = now_ms() - stale_after.as_millis() as i64;
    // Dead: stopped beating, or gone from the table altogether (an instance that gave up on its grace
    // period may leave holds behind after deregistering).
    let dead: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM instances WHERE heartbeat_at < $1 AND id <> $2 \
         UNION SELECT DISTINCT h.instance_id FROM holds h LEFT JOIN instances i ON i.id = h.instance_id \
         WHERE i.id IS NULL AND h.instance_id <> $2",
    )
    .bind(cutoff)
    .bind(me)
    .fetch_all(&store.pool)
    .await?;
    let mut released = 0;
    for (inst,) in dead {
        let mut tx = store.writer.begin().await?;
        let holds: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT id, org_id, key_id, amount_nanos FROM holds WHERE instance_id = $1",
        )
        .bind(&inst)
        .fetch_all(&mut *tx)
        .await?;
        for (id, org, key, amount) in &holds {
            let r = sqlx::query("DELETE FROM holds WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() == 1 {
                // The request may have run at its provider: at most its hold is lost.
                sqlx::query(
                    "INSERT INTO operator_losses (id, generation_id, org_id, provider_slug, endpoint_id, kind, \
                       cost_nanos, uncollected_nanos, note, created_at) \
                     VALUES ($1, $1, $2, '', '', 'instance_died', $3, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(org)
                .bind(amount)
                .bind(format!("instance {inst} stopped with this request in flight; its hold is the bound"))
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE orgs SET reserved_nanos = reserved_nanos - $1 WHERE id = $2")
                    .bind(amount)
                    .bind(org)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE api_keys SET reserved_nanos = reserved_nanos - $1 WHERE id = $2",
                )
                .bind(amount)
                .bind(key)
                .execute(&mut *tx)
                .await?;
                released += 1;
            }
        }
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(&inst)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if !holds.is_empty() {
            tracing::warn!(instance = %inst, holds = holds.len(), "released holds of an instance that stopped without settling");
        }
    }
    Ok(released)
}
