//! Importing a catalog in OpenRouter's `GET /api/v1/models` format: its per-token prices become the cost of
//! an endpoint per model. The admin (or `switchyard catalog import-openrouter`) sees what would change —
//! new models, changed models, models no longer listed — before anything is applied, and applying
//! recomputes the same plan inside its transaction.
//!
//! Where each model is served: by default the provider whose slug is the model's author ("openai/gpt-4o"
//! → provider `openai`, upstream model `gpt-4o`); or one chosen provider for all, under the full id (for
//! an aggregator such as OpenRouter itself). A model whose provider is not in the catalog is skipped and
//! says so. Models "removed" are those a covered provider serves that the file does not list: their
//! endpoints are turned off, nothing is deleted.

use super::file::{common_parameters, MODALITIES};
use crate::money::{MtokPrice, Nanos};
use crate::store::{new_id, now_ms, Store};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use switchyard_app::catalog_admin::{DiffLine, ImportDiff};

/// The starter catalog: well-known models at their providers' public list prices.
pub const STARTER: &str = include_str!("../../../assets/catalog/openrouter-starter.json");

#[derive(Deserialize)]
struct List {
    data: Vec<OrModel>,
}

#[derive(Deserialize)]
struct OrModel {
    id: String,
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    context_length: Option<u64>,
    #[serde(default)]
    architecture: Option<Architecture>,
    pricing: OrPricing,
    #[serde(default)]
    top_provider: Option<TopProvider>,
    #[serde(default)]
    supported_parameters: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct Architecture {
    input_modalities: Option<Vec<String>>,
    output_modalities: Option<Vec<String>>,
    tokenizer: Option<String>,
}

#[derive(Deserialize)]
struct OrPricing {
    prompt: String,
    completion: String,
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    input_cache_read: Option<String>,
    #[serde(default)]
    input_cache_write: Option<String>,
}

#[derive(Deserialize, Default)]
struct TopProvider {
    context_length: Option<u64>,
    max_completion_tokens: Option<u64>,
}

/// A model as the import would leave it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wanted {
    slug: String,
    name: String,
    description: String,
    context_length: i64,
    max_output_tokens: Option<i64>,
    input_modalities: String,
    output_modalities: String,
    supported_parameters: String,
    tokenizer: String,
    provider_id: String,
    provider_slug: String,
    upstream: String,
    input: i64,
    output: i64,
    cache_read: Option<i64>,
    cache_write: Option<i64>,
    request: i64,
}

/// A model as it is now.
#[derive(sqlx::FromRow)]
struct Have {
    id: String,
    slug: String,
    name: String,
    description: String,
    context_length: i64,
    max_output_tokens: Option<i64>,
    input_modalities: String,
    output_modalities: String,
    supported_parameters: String,
    tokenizer: String,
}

/// An endpoint as it is now.
#[derive(sqlx::FromRow)]
struct HaveEndpoint {
    id: String,
    model_id: String,
    provider_id: String,
    upstream_model: String,
    input_per_mtok_nanos: i64,
    output_per_mtok_nanos: i64,
    cache_read_per_mtok_nanos: Option<i64>,
    cache_write_per_mtok_nanos: Option<i64>,
    request_nanos: i64,
    enabled: i64,
}

struct Plan {
    diff: ImportDiff,
    /// Models to write (new or changed), with the id of the existing one.
    writes: Vec<(Option<String>, Wanted)>,
    /// Endpoints to turn off.
    off: Vec<String>,
}

fn usd_mtok(n: i64) -> String {
    Nanos(n).dollars()
}

fn per_token(field: &str, id: &str, v: &str) -> Result<MtokPrice, String> {
    MtokPrice::from_per_token_usd(v.trim())
        .map_err(|e| format!("{id}: pricing.{field} {v:?} is not a price per token ({e})"))
}

/// Reads the file into what each model should become; models that cannot be imported are skipped.
fn wanted(
    text: &str,
    target: Option<(&str, &str)>,
    providers: &HashMap<String, String>,
    skipped: &mut Vec<DiffLine>,
) -> Result<Vec<Wanted>, String> {
    let list: List = serde_json::from_str(text).map_err(|e| {
        format!("not a model list in OpenRouter's format ({{\"data\": [{{\"id\": …, \"pricing\": …}}]}}): {e}")
    })?;
    let mut out: Vec<Wanted> = Vec::new();
    let mut seen = BTreeSet::new();
    for m in list.data {
        let slug = m.id.trim().to_ascii_lowercase();
        let skip = |why: String, skipped: &mut Vec<DiffLine>| {
            skipped.push(DiffLine {
                slug: m.id.clone(),
                detail: why,
            })
        };
        let Some((author, rest)) = slug.split_once('/') else {
            skip("not an author/model id".into(), skipped);
            continue;
        };
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                })
        };
        if !ok(author) || !ok(rest) || slug.len() > 128 {
            skip("not an author/model id".into(), skipped);
            continue;
        }
        if !seen.insert(slug.clone()) {
            skip("listed twice; the first is used".into(), skipped);
            continue;
        }
        // A negative price means "varies" (routers): there is no cost to record.
        if m.pricing.prompt.trim().starts_with('-') || m.pricing.completion.trim().starts_with('-')
        {
            skip("its price varies per request".into(), skipped);
            continue;
        }
        let (provider_id, provider_slug, upstream) = match target {
            Some((id, pslug)) => (id.to_string(), pslug.to_string(), m.id.trim().to_string()),
            None => match providers.get(author) {
                Some(id) => (id.clone(), author.to_string(), rest.to_string()),
                None => {
                    skip(
                        format!("no provider `{author}` in the catalog: add it, or import through one provider"),
                        skipped,
                    );
                    continue;
                }
            },
        };
        let input = per_token("prompt", &m.id, &m.pricing.prompt)?;
        let output = per_token("completion", &m.id, &m.pricing.completion)?;
        let optional = |field: &str, v: &Option<String>| -> Result<Option<i64>, String> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) => per_token(field, &m.id, v).map(|p| Some(p.0)),
            }
        };
        let cache_read = optional("input_cache_read", &m.pricing.input_cache_read)?;
        let cache_write = optional("input_cache_write", &m.pricing.input_cache_write)?;
        let request = match m.pricing.request.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(v) => {
                Nanos::parse_usd(v)
                    .map_err(|e| format!("{}: pricing.request {v:?}: {e}", m.id))?
                    .0
            }
        };
        let arch = m.architecture.unwrap_or_default();
        let top = m.top_provider.unwrap_or_default();
        let modalities = |v: Option<Vec<String>>| {
            let kept: Vec<String> = v
                .unwrap_or_default()
                .into_iter()
                .filter(|x| MODALITIES.contains(&x.as_str()))
                .collect();
            if kept.is_empty() {
                "text".to_string()
            } else {
                kept.join(",")
            }
        };
        let context = m
            .context_length
            .or(top.context_length)
            .filter(|c| *c > 0)
            .unwrap_or(8192);
        let params = m
            .supported_parameters
            .unwrap_or_else(common_parameters)
            .into_iter()
            .filter(|p| {
                !p.is_empty()
                    && p.len() <= 64
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
            .collect::<Vec<_>>()
            .join(",");
        out.push(Wanted {
            name: m
                .name
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| slug.clone()),
            description: m.description.unwrap_or_default().trim().to_string(),
            context_length: context.min(i64::MAX as u64) as i64,
            max_output_tokens: top
                .max_completion_tokens
                .filter(|n| *n > 0)
                .map(|n| n.min(i64::MAX as u64) as i64),
            input_modalities: modalities(arch.input_modalities),
            output_modalities: modalities(arch.output_modalities),
            supported_parameters: params,
            tokenizer: arch
                .tokenizer
                .map(|t| t.trim().chars().take(40).collect::<String>())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "Other".into()),
            slug,
            provider_id,
            provider_slug,
            upstream,
            input: input.0,
            output: output.0,
            cache_read,
            cache_write,
            request,
        });
    }
    Ok(out)
}

/// The field-by-field difference between a model as it is and as the import would leave it.
fn changes(h: &Have, e: Option<&HaveEndpoint>, w: &Wanted) -> Vec<String> {
    let mut out = Vec::new();
    let mut text = |field: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{field}: {a:?} → {b:?}"));
        }
    };
    text("name", &h.name, &w.name);
    text("input", &h.input_modalities, &w.input_modalities);
    text("output", &h.output_modalities, &w.output_modalities);
    text("tokenizer", &h.tokenizer, &w.tokenizer);
    text(
        "parameters",
        &h.supported_parameters,
        &w.supported_parameters,
    );
    if h.description != w.description {
        out.push("description".into());
    }
    if h.context_length != w.context_length {
        out.push(format!(
            "context: {} → {}",
            h.context_length, w.context_length
        ));
    }
    if h.max_output_tokens != w.max_output_tokens {
        let show = |v: Option<i64>| v.map_or("—".to_string(), |v| v.to_string());
        out.push(format!(
            "max output: {} → {}",
            show(h.max_output_tokens),
            show(w.max_output_tokens)
        ));
    }
    match e {
        None => out.push(format!(
            "served by {} at {} / {} per 1M",
            w.provider_slug,
            usd_mtok(w.input),
            usd_mtok(w.output)
        )),
        Some(e) => {
            if (e.input_per_mtok_nanos, e.output_per_mtok_nanos) != (w.input, w.output) {
                out.push(format!(
                    "cost: {} / {} → {} / {} per 1M",
                    usd_mtok(e.input_per_mtok_nanos),
                    usd_mtok(e.output_per_mtok_nanos),
                    usd_mtok(w.input),
                    usd_mtok(w.output)
                ));
            }
            if (e.cache_read_per_mtok_nanos, e.cache_write_per_mtok_nanos)
                != (w.cache_read, w.cache_write)
            {
                out.push("cache prices".into());
            }
            if e.request_nanos != w.request {
                out.push("price per request".into());
            }
            if e.enabled == 0 {
                out.push(format!("the {} endpoint is turned on", w.provider_slug));
            }
        }
    }
    out
}

async fn plan(
    conn: &mut sqlx::AnyConnection,
    json: &str,
    provider_id: &str,
) -> Result<Plan, String> {
    let internal = crate::web::dashboard::internal;
    let providers: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT slug, id FROM providers")
            .fetch_all(&mut *conn)
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
    let target = if provider_id.trim().is_empty() {
        None
    } else {
        let slug = providers
            .iter()
            .find(|(_, id)| id.as_str() == provider_id)
            .map(|(s, _)| s.clone())
            .ok_or("no such provider")?;
        Some((provider_id.to_string(), slug))
    };
    let text = if json.trim().is_empty() {
        STARTER
    } else {
        json
    };
    let mut skipped = Vec::new();
    let wanted = wanted(
        text,
        target.as_ref().map(|(i, s)| (i.as_str(), s.as_str())),
        &providers,
        &mut skipped,
    )?;
    if wanted.is_empty() && skipped.is_empty() {
        return Err("the list has no models".into());
    }
    let have: Vec<Have> = sqlx::query_as(
        "SELECT id, slug, name, description, context_length, max_output_tokens, input_modalities, \
                output_modalities, supported_parameters, tokenizer FROM models",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(internal)?;
    let endpoints: Vec<HaveEndpoint> = sqlx::query_as(
        "SELECT id, model_id, provider_id, upstream_model, input_per_mtok_nanos, output_per_mtok_nanos, \
                cache_read_per_mtok_nanos, cache_write_per_mtok_nanos, request_nanos, enabled FROM endpoints",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(internal)?;
    let by_slug: HashMap<&str, &Have> = have.iter().map(|h| (h.slug.as_str(), h)).collect();
    let slug_of: HashMap<&str, &str> = have
        .iter()
        .map(|h| (h.id.as_str(), h.slug.as_str()))
        .collect();
    let mut diff = ImportDiff {
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
        unchanged: 0,
        skipped,
        json: json.to_string(),
        provider_id: provider_id.to_string(),
    };
    let mut writes = Vec::new();
    let covered: BTreeSet<String> = wanted.iter().map(|w| w.provider_id.clone()).collect();
    let listed: BTreeSet<(String, String)> = wanted
        .iter()
        .map(|w| (w.slug.clone(), w.provider_id.clone()))
        .collect();
    for w in wanted {
        match by_slug.get(w.slug.as_str()) {
            None => {
                diff.added.push(DiffLine {
                    slug: w.slug.clone(),
                    detail: format!(
                        "{} · {} tokens · {} / {} per 1M via {}",
                        w.name,
                        w.context_length,
                        usd_mtok(w.input),
                        usd_mtok(w.output),
                        w.provider_slug
                    ),
                });
                writes.push((None, w));
            }
            Some(h) => {
                let ep = endpoints.iter().find(|e| {
                    e.model_id == h.id
                        && e.provider_id == w.provider_id
                        && e.upstream_model == w.upstream
                });
                let c = changes(h, ep, &w);
                if c.is_empty() {
                    diff.unchanged += 1;
                } else {
                    diff.changed.push(DiffLine {
                        slug: w.slug.clone(),
                        detail: c.join("; "),
                    });
                    writes.push((Some(h.id.clone()), w));
                }
            }
        }
    }
    let mut off = Vec::new();
    let mut removed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let provider_slug: HashMap<&str, &str> = providers
        .iter()
        .map(|(s, i)| (i.as_str(), s.as_str()))
        .collect();
    for e in &endpoints {
        let Some(slug) = slug_of.get(e.model_id.as_str()) else {
            continue;
        };
        if e.enabled != 0
            && covered.contains(&e.provider_id)
            && !listed.contains(&(slug.to_string(), e.provider_id.clone()))
        {
            off.push(e.id.clone());
            removed.entry(slug.to_string()).or_default().push(
                provider_slug
                    .get(e.provider_id.as_str())
                    .unwrap_or(&"?")
                    .to_string(),
            );
        }
    }
    diff.removed = removed
        .into_iter()
        .map(|(slug, ps)| DiffLine {
            slug,
            detail: format!(
                "no longer listed: served by {} until applied",
                ps.join(", ")
            ),
        })
        .collect();
    Ok(Plan { diff, writes, off })
}

/// What importing `json` (blank: the starter catalog) would change; changes nothing.
pub async fn preview(store: &Store, json: &str, provider_id: &str) -> Result<ImportDiff, String> {
    let mut conn = store
        .pool
        .acquire()
        .await
        .map_err(crate::web::dashboard::internal)?;
    Ok(plan(&mut conn, json, provider_id).await?.diff)
}

/// Applies the import inside the caller's transaction (which bumps the catalog version).
pub async fn apply(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    actor: Option<&str>,
    json: &str,
    provider_id: &str,
) -> Result<String, String> {
    let internal = crate::web::dashboard::internal;
    let p = plan(tx, json, provider_id).await?;
    if p.writes.is_empty() && p.off.is_empty() {
        return Ok("nothing to change: the catalog already matches".into());
    }
    let now = now_ms();
    for (existing, w) in &p.writes {
        let model_id = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE models SET name = $1, description = $2, context_length = $3, max_output_tokens = $4, \
                     input_modalities = $5, output_modalities = $6, supported_parameters = $7, tokenizer = $8, \
                     updated_at = $9 WHERE id = $10",
                )
                .bind(&w.name)
                .bind(&w.description)
                .bind(w.context_length)
                .bind(w.max_output_tokens)
                .bind(&w.input_modalities)
                .bind(&w.output_modalities)
                .bind(&w.supported_parameters)
                .bind(&w.tokenizer)
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(internal)?;
                id.clone()
            }
            None => {
                let id = new_id();
                sqlx::query(
                    "INSERT INTO models (id, slug, name, description, context_length, max_output_tokens, enabled, \
                     created_at, updated_at, input_modalities, output_modalities, supported_parameters, tokenizer) \
                     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7, $8, $9, $10, $11)",
                )
                .bind(&id)
                .bind(&w.slug)
                .bind(&w.name)
                .bind(&w.description)
                .bind(w.context_length)
                .bind(w.max_output_tokens)
                .bind(now)
                .bind(&w.input_modalities)
                .bind(&w.output_modalities)
                .bind(&w.supported_parameters)
                .bind(&w.tokenizer)
                .execute(&mut **tx)
                .await
                .map_err(internal)?;
                id
            }
        };
        // The endpoint's priority and limits stay as an admin set them.
        sqlx::query(
            "INSERT INTO endpoints (id, model_id, provider_id, upstream_model, input_per_mtok_nanos, output_per_mtok_nanos, \
               cache_read_per_mtok_nanos, cache_write_per_mtok_nanos, request_nanos, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10) \
             ON CONFLICT (model_id, provider_id, upstream_model) DO UPDATE SET \
               input_per_mtok_nanos = excluded.input_per_mtok_nanos, output_per_mtok_nanos = excluded.output_per_mtok_nanos, \
               cache_read_per_mtok_nanos = excluded.cache_read_per_mtok_nanos, \
               cache_write_per_mtok_nanos = excluded.cache_write_per_mtok_nanos, request_nanos = excluded.request_nanos, \
               enabled = 1, updated_at = excluded.updated_at",
        )
        .bind(new_id())
        .bind(&model_id)
        .bind(&w.provider_id)
        .bind(&w.upstream)
        .bind(w.input)
        .bind(w.output)
        .bind(w.cache_read)
        .bind(w.cache_write)
        .bind(w.request)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    }
    for id in &p.off {
        sqlx::query("UPDATE endpoints SET enabled = 0, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
    }
    let names = |v: &[DiffLine]| v.iter().map(|l| l.slug.clone()).collect::<Vec<_>>();
    let d = &p.diff;
    super::admin::record(
        tx,
        actor,
        "import catalog",
        if json.trim().is_empty() {
            "starter catalog"
        } else {
            "OpenRouter model list"
        },
        None,
        Some(json!({"new": names(&d.added), "changed": names(&d.changed), "removed": names(&d.removed)})),
    )
    .await
    .map_err(internal)?;
    Ok(format!(
        "imported: {} new, {} changed, {} turned off{}",
        d.added.len(),
        d.changed.len(),
        d.removed.len(),
        if d.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped", d.skipped.len())
        }
    ))
}

/// Applies an import in its own transaction (the command line).
pub async fn apply_now(store: &Store, json: &str, provider_id: &str) -> Result<String, String> {
    let internal = crate::web::dashboard::internal;
    let mut tx = store.writer.begin().await.map_err(internal)?;
    let said = apply(&mut tx, None, json, provider_id).await?;
    super::admin::bump(&mut tx).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok(said)
}

/// The diff as text, for the command line.
pub fn describe(d: &ImportDiff) -> String {
    let mut out = format!(
        "{} new · {} changed · {} removed · {} unchanged · {} skipped\n",
        d.added.len(),
        d.changed.len(),
        d.removed.len(),
        d.unchanged,
        d.skipped.len()
    );
    for (mark, lines) in [
        ("+", &d.added),
        ("~", &d.changed),
        ("-", &d.removed),
        ("!", &d.skipped),
    ] {
        for l in lines {
            out.push_str(&format!("  {mark} {}  {}\n", l.slug, l.detail));
        }
    }
    out
}
