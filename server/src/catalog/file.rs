//! `switchyard catalog apply FILE.toml`: operators keep their catalog in git and apply it idempotently.
//! The whole file is checked first; any error (named by line and field) means nothing is applied.
//!
//! Apply upserts every provider, model and endpoint in the file and the default markup. Endpoints of a model
//! in the file that the file no longer lists are disabled; nothing else is deleted. A provider's keys in the
//! file (`api_key` is the key labelled "default", `[[providers.keys]]` any others) are added or replaced by
//! label; keys the file does not name are left alone, so keys added in the admin pages survive an apply.
//!
//! `switchyard catalog export` writes the catalog back in this format (without keys, which are only
//! stored encrypted): applying an export changes nothing.

use super::ProviderKind;
use crate::crypto::Cipher;
use crate::money::{Markup, MtokPrice};
use crate::store::{new_id, now_ms, Store};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use toml::Spanned;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markup: Option<MarkupSpec>,
    #[serde(default)]
    pub providers: Vec<ProviderSpec>,
    #[serde(default)]
    pub models: Vec<ModelSpec>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub slug: Spanned<String>,
    pub name: String,
    pub kind: ProviderKind,
    /// Absent: the kind's public URL (every kind but `azure` has one).
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_policy: Option<String>,
    /// The provider keeps or trains on prompts: requests with `data_collection: "deny"` avoid it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub collects_data: bool,
    /// The provider's own markup (absent: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markup_percent: Option<Markup>,
    /// Bedrock: S3 buckets tenants may name in `s3://` image and file locations (`bucket` or
    /// `bucket@account`); any other `s3://` location is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub s3_buckets: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// One more key of a provider's pool.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub label: String,
    pub api_key: Spanned<String>,
    #[serde(default = "one")]
    pub weight: u64,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub slug: Spanned<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub context_length: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// The most choices (`n`) a request may ask for (absent: the platform's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_n: Option<u64>,
    /// Upstream time limits for this model, in milliseconds (absent: the server's): until the first
    /// token, and the longest silence after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    #[serde(default = "text")]
    pub input_modalities: Vec<String>,
    #[serde(default = "text")]
    pub output_modalities: Vec<String>,
    #[serde(default = "common_parameters")]
    pub supported_parameters: Vec<String>,
    #[serde(default = "other")]
    pub tokenizer: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// The model's own markup (absent: the provider's or the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markup_percent: Option<Markup>,
    /// An explicit sale price per million tokens; both or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_input_per_mtok: Option<MtokPrice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_output_per_mtok: Option<MtokPrice>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub provider: Spanned<String>,
    pub upstream_model: String,
    pub input_per_mtok: MtokPrice,
    pub output_per_mtok: MtokPrice,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_mtok: Option<MtokPrice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<MtokPrice>,
    /// USD per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_request: Option<Usd>,
    /// USD per request that uses web search (`web_search_options`); absent: such requests are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<Usd>,
    /// USD per million audio input tokens; absent: audio parts are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_input_per_mtok: Option<MtokPrice>,
    /// Service tiers beyond the default, each at a percentage of the list price (`flex = "50"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_tiers: BTreeMap<String, Markup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
    /// Share among endpoints of equal priority (default 100; 0: fallback only).
    #[serde(default = "hundred", skip_serializing_if = "is_hundred")]
    pub weight: u64,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MarkupSpec {
    pub default_percent: Markup,
}

/// An amount of USD written as a decimal string ("0.001").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usd(pub crate::money::Nanos);

impl Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_usd_string())
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::money::Nanos::parse_usd(&s)
            .map(Usd)
            .map_err(serde::de::Error::custom)
    }
}

fn yes() -> bool {
    true
}

fn one() -> u64 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn hundred() -> u64 {
    100
}

fn is_hundred(n: &u64) -> bool {
    *n == 100
}

/// A provider's base URL: the file's (resolved from the environment where asked) or its kind's default.
fn base_url_of(p: &ProviderSpec, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    match &p.base_url {
        Some(u) => resolve(u.get_ref(), env),
        None => p
            .kind
            .default_base_url()
            .map(str::to_string)
            .ok_or_else(|| {
                format!(
                    "is required for kind {:?} (e.g. https://RESOURCE.openai.azure.com/openai)",
                    p.kind.as_str()
                )
            }),
    }
}

fn text() -> Vec<String> {
    vec!["text".into()]
}

fn other() -> String {
    "Other".into()
}

/// What an OpenAI-compatible chat model honours unless the catalog says otherwise.
pub fn common_parameters() -> Vec<String> {
    [
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
    ]
    .map(String::from)
    .to_vec()
}

/// What `apply` did, for the operator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub providers: usize,
    pub models: usize,
    pub endpoints: usize,
    pub endpoints_disabled: u64,
    pub markup_percent: Option<String>,
}

/// A file that failed validation: every problem found, each naming its line and field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: nothing was applied; fix these and apply again:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct FileErrors {
    pub path: String,
    pub problems: Vec<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// A model id: "author/name" in lower-case letters, digits, '-', '_' or '.'.
pub fn model_slug_ok(s: &str) -> bool {
    s.len() <= 128 && slug_ok(s, true)
}

fn slug_ok(s: &str, allow_slash: bool) -> bool {
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');
    if allow_slash {
        match s.split_once('/') {
            Some((a, b)) => {
                !a.is_empty() && !b.is_empty() && a.chars().all(ok_char) && b.chars().all(ok_char)
            }
            None => false,
        }
    } else {
        !s.is_empty() && s.chars().all(ok_char)
    }
}

/// A provider ready to be written: credentials resolved from the environment where asked.
struct ResolvedProvider<'a> {
    spec: &'a ProviderSpec,
    base_url: String,
    /// (label, key, weight, enabled)
    keys: Vec<(String, String, u64, bool)>,
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Inserts or updates one endpoint of a model.
pub async fn put_endpoint(
    tx: &mut Tx,
    model_id: &str,
    provider_id: &str,
    e: &EndpointSpec,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO endpoints (id, model_id, provider_id, upstream_model, input_per_mtok_nanos, output_per_mtok_nanos, \
           max_output_tokens, enabled, created_at, updated_at, cache_read_per_mtok_nanos, cache_write_per_mtok_nanos, \
           request_nanos, priority, weight, web_search_nanos, audio_input_per_mtok_nanos, service_tiers) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (model_id, provider_id, upstream_model) DO UPDATE SET \
           input_per_mtok_nanos = excluded.input_per_mtok_nanos, output_per_mtok_nanos = excluded.output_per_mtok_nanos, \
           max_output_tokens = excluded.max_output_tokens, enabled = excluded.enabled, updated_at = excluded.updated_at, \
           cache_read_per_mtok_nanos = excluded.cache_read_per_mtok_nanos, \
           cache_write_per_mtok_nanos = excluded.cache_write_per_mtok_nanos, request_nanos = excluded.request_nanos, \
           priority = excluded.priority, weight = excluded.weight, web_search_nanos = excluded.web_search_nanos, \
           audio_input_per_mtok_nanos = excluded.audio_input_per_mtok_nanos, service_tiers = excluded.service_tiers",
    )
    .bind(new_id())
    .bind(model_id)
    .bind(provider_id)
    .bind(&e.upstream_model)
    .bind(e.input_per_mtok.0)
    .bind(e.output_per_mtok.0)
    .bind(e.max_output_tokens.map(|v| v as i64))
    .bind(e.enabled as i64)
    .bind(now)
    .bind(e.cache_read_per_mtok.map(|p| p.0))
    .bind(e.cache_write_per_mtok.map(|p| p.0))
    .bind(e.per_request.map_or(0, |u| u.0 .0))
    .bind(e.priority)
    .bind(e.weight.min(1_000_000) as i64)
    .bind(e.web_search.map(|u| u.0 .0))
    .bind(e.audio_input_per_mtok.map(|p| p.0))
    .bind(service_tiers_json(&e.service_tiers))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Service tiers as stored: `{"flex": 500000}` (parts per million of the list price); none: NULL.
pub fn service_tiers_json(tiers: &BTreeMap<String, Markup>) -> Option<String> {
    (!tiers.is_empty()).then(|| {
        serde_json::Value::Object(
            tiers
                .iter()
                .map(|(t, m)| (t.clone(), serde_json::Value::from(m.0)))
                .collect(),
        )
        .to_string()
    })
}

/// A service tier's name and price, as the catalog takes them: a lowercase name that is not a default
/// tier, at a positive percentage of the list price.
pub fn check_service_tier(name: &str, percent: Markup) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(format!(
            "service tier {name:?} must be a lowercase name like \"flex\""
        ));
    }
    if super::is_default_tier(name) {
        return Err(format!(
            "service tier {name:?} is a default tier: it always costs the list price"
        ));
    }
    if percent.0 <= 0 {
        return Err(format!(
            "service tier {name:?} must cost a positive percentage of the list price"
        ));
    }
    Ok(())
}

/// What models may take in and put out.
pub const MODALITIES: &[&str] = &["text", "image", "audio", "video", "file", "embeddings"];

/// Parses and checks a catalog file. `env` resolves `env:NAME` values. `known_providers` are slugs that
/// already exist in the database (an endpoint may refer to those too).
pub fn check(
    path: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    known_providers: &HashSet<String>,
) -> Result<CatalogFile, FileErrors> {
    let fail = |problems: Vec<String>| FileErrors {
        path: path.to_string(),
        problems,
    };
    let file: CatalogFile = toml::from_str(text).map_err(|e| {
        // Name the line and quote it, so the field is obvious whatever the message says.
        let at = e.span().map(|s| {
            let n = line_of(text, s.start);
            let quoted = text
                .lines()
                .nth(n - 1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .unwrap_or("");
            format!("line {n} ({quoted}): ")
        });
        fail(vec![format!("{}{}", at.unwrap_or_default(), e.message())])
    })?;
    let mut problems = Vec::new();
    let at = |s: std::ops::Range<usize>| line_of(text, s.start);

    let mut seen = HashSet::new();
    for p in &file.providers {
        let slug = p.slug.get_ref();
        if !slug_ok(slug, false) {
            problems.push(format!("line {}: providers.slug {slug:?} must be lowercase letters, digits, '-', '_' or '.'", at(p.slug.span())));
        }
        if !seen.insert(slug.clone()) {
            problems.push(format!(
                "line {}: providers.slug {slug:?} is defined twice",
                at(p.slug.span())
            ));
        }
        let url_line = p
            .base_url
            .as_ref()
            .map_or(at(p.slug.span()), |u| at(u.span()));
        match base_url_of(p, env) {
            Err(msg) => problems.push(format!("line {url_line}: providers.base_url {msg}")),
            Ok(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                problems.push(format!(
                    "line {url_line}: providers.base_url {url:?} must start with http:// or https://"
                ))
            }
            Ok(_) => {}
        }
        if !p.s3_buckets.is_empty() {
            let line = at(p.slug.span());
            if p.kind != ProviderKind::Bedrock {
                problems.push(format!("line {line}: providers.s3_buckets is for bedrock providers (Bedrock reads s3:// locations); {slug:?} is {}", p.kind.as_str()));
            }
            if let Err(msg) = crate::providers::bedrock::S3Bucket::parse_all(&p.s3_buckets) {
                problems.push(format!("line {line}: providers.s3_buckets {msg}"));
            }
        }
        if let Some(k) = &p.api_key {
            if let Err(msg) = resolve(k.get_ref(), env) {
                problems.push(format!("line {}: providers.api_key {msg}", at(k.span())));
            }
        }
        let mut labels = HashSet::new();
        if p.api_key.is_some() {
            labels.insert("default".to_string());
        }
        for k in &p.keys {
            let line = at(k.api_key.span());
            if let Err(msg) = resolve(k.api_key.get_ref(), env) {
                problems.push(format!("line {line}: providers.keys.api_key {msg}"));
            }
            if k.label.trim().is_empty() || !labels.insert(k.label.clone()) {
                problems.push(format!(
                    "line {line}: providers.keys.label {:?} must be non-empty and unique per provider (api_key is the key labelled \"default\")",
                    k.label
                ));
            }
            if k.weight > 1000 {
                problems.push(format!(
                    "line {line}: providers.keys.weight must be at most 1000"
                ));
            }
        }
    }
    let mut seen_models = HashSet::new();
    for m in &file.models {
        let slug = m.slug.get_ref();
        let line = at(m.slug.span());
        if !slug_ok(slug, true) {
            problems.push(format!("line {line}: models.slug {slug:?} must look like \"author/name\" (lowercase letters, digits, '-', '_', '.')"));
        }
        if !seen_models.insert(slug.clone()) {
            problems.push(format!(
                "line {line}: models.slug {slug:?} is defined twice"
            ));
        }
        if m.context_length == 0 {
            problems.push(format!(
                "line {line}: models.context_length of {slug:?} must be positive"
            ));
        }
        if m.max_n == Some(0) {
            problems.push(format!(
                "line {line}: models.max_n of {slug:?} must be at least 1"
            ));
        }
        for (field, v) in [
            ("first_byte_timeout_ms", m.first_byte_timeout_ms),
            ("idle_timeout_ms", m.idle_timeout_ms),
        ] {
            if v.is_some_and(|v| !(100..=3_600_000).contains(&v)) {
                problems.push(format!(
                    "line {line}: models.{field} of {slug:?} must be from 100 to 3600000 (an hour)"
                ));
            }
        }
        if m.sale_input_per_mtok.is_some() != m.sale_output_per_mtok.is_some() {
            problems.push(format!("line {line}: models.sale_input_per_mtok and sale_output_per_mtok of {slug:?} go together: set both or neither"));
        }
        for (field, list) in [
            ("input_modalities", &m.input_modalities),
            ("output_modalities", &m.output_modalities),
        ] {
            if list.is_empty() || list.iter().any(|x| !MODALITIES.contains(&x.as_str())) {
                problems.push(format!(
                    "line {line}: models.{field} of {slug:?} must list some of {}",
                    MODALITIES.join(", ")
                ));
            }
        }
        if m.tokenizer.trim().is_empty() {
            problems.push(format!(
                "line {line}: models.tokenizer of {slug:?} must not be empty"
            ));
        }
        let mut seen_eps = HashSet::new();
        for e in &m.endpoints {
            let prov = e.provider.get_ref();
            if !seen.contains(prov) && !known_providers.contains(prov) {
                problems.push(format!("line {}: models.endpoints.provider {prov:?} is not a provider in this file or the catalog", at(e.provider.span())));
            }
            if !seen_eps.insert((prov.clone(), e.upstream_model.clone())) {
                problems.push(format!(
                    "line {}: models.endpoints: {prov:?} serves {:?} twice for {slug:?}",
                    at(e.provider.span()),
                    e.upstream_model
                ));
            }
            if e.upstream_model.trim().is_empty() {
                problems.push(format!(
                    "line {}: models.endpoints.upstream_model must not be empty",
                    at(e.provider.span())
                ));
            }
            for (tier, percent) in &e.service_tiers {
                if let Err(msg) = check_service_tier(tier, *percent) {
                    problems.push(format!(
                        "line {}: models.endpoints.service_tiers: {msg}",
                        at(e.provider.span())
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(fail(problems))
    }
}

/// `env:NAME` reads the variable NAME; anything else is the literal value.
fn resolve(v: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    match v.strip_prefix("env:") {
        Some(name) => env(name)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("refers to environment variable {name}, which is not set")),
        None => Ok(v.to_string()),
    }
}

/// Checks the file, then writes all of it in one transaction and bumps the catalog version.
pub async fn apply(
    store: &Store,
    cipher: &Cipher,
    path: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<ApplyReport> {
    let existing: Vec<(String, String)> = sqlx::query_as("SELECT slug, id FROM providers")
        .fetch_all(&store.pool)
        .await?;
    let known: HashSet<String> = existing.iter().map(|(s, _)| s.clone()).collect();
    let file = check(path, text, env, &known)?;
    let resolved: Vec<ResolvedProvider> = file
        .providers
        .iter()
        .map(|p| ResolvedProvider {
            spec: p,
            base_url: base_url_of(p, env)
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            keys: p
                .api_key
                .as_ref()
                .and_then(|k| resolve(k.get_ref(), env).ok())
                .map(|k| ("default".to_string(), k, 1, true))
                .into_iter()
                .chain(p.keys.iter().filter_map(|k| {
                    resolve(k.api_key.get_ref(), env)
                        .ok()
                        .map(|key| (k.label.clone(), key, k.weight, k.enabled))
                }))
                .collect(),
        })
        .collect();

    let now = now_ms();
    let mut report = ApplyReport::default();
    let mut tx = store.writer.begin().await?;
    let mut provider_ids: HashMap<String, String> = existing.into_iter().collect();
    for p in &resolved {
        let slug = p.spec.slug.get_ref();
        let id = provider_ids.get(slug).cloned().unwrap_or_else(new_id);
        sqlx::query(
            "INSERT INTO providers (id, slug, name, kind, base_url, enabled, created_at, updated_at, website, data_policy, \
               collects_data, s3_buckets) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11) \
             ON CONFLICT (slug) DO UPDATE SET name = excluded.name, kind = excluded.kind, base_url = excluded.base_url, \
               enabled = excluded.enabled, updated_at = excluded.updated_at, website = excluded.website, \
               data_policy = excluded.data_policy, collects_data = excluded.collects_data, s3_buckets = excluded.s3_buckets",
        )
        .bind(&id)
        .bind(slug)
        .bind(&p.spec.name)
        .bind(p.spec.kind.as_str())
        .bind(&p.base_url)
        .bind(p.spec.enabled as i64)
        .bind(now)
        .bind(&p.spec.website)
        .bind(&p.spec.data_policy)
        .bind(p.spec.collects_data as i64)
        .bind(super::s3_buckets_json(&p.spec.s3_buckets))
        .execute(&mut *tx)
        .await?;
        let (id,): (String,) = sqlx::query_as("SELECT id FROM providers WHERE slug = $1")
            .bind(slug)
            .fetch_one(&mut *tx)
            .await?;
        for (label, key, weight, enabled) in &p.keys {
            super::admin::put_credential(
                &mut tx,
                cipher,
                &id,
                label,
                key,
                *weight as i64,
                *enabled,
            )
            .await?;
        }
        super::admin::set_markup(&mut tx, &format!("provider:{id}"), p.spec.markup_percent).await?;
        provider_ids.insert(slug.clone(), id);
        report.providers += 1;
    }
    for m in &file.models {
        let slug = m.slug.get_ref();
        sqlx::query(
            "INSERT INTO models (id, slug, name, description, context_length, max_output_tokens, enabled, created_at, updated_at, \
               input_modalities, output_modalities, supported_parameters, tokenizer, hidden, sale_input_per_mtok_nanos, \
               sale_output_per_mtok_nanos, max_n, first_byte_timeout_ms, idle_timeout_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
             ON CONFLICT (slug) DO UPDATE SET name = excluded.name, description = excluded.description, \
               context_length = excluded.context_length, max_output_tokens = excluded.max_output_tokens, \
               enabled = excluded.enabled, updated_at = excluded.updated_at, input_modalities = excluded.input_modalities, \
               output_modalities = excluded.output_modalities, supported_parameters = excluded.supported_parameters, \
               tokenizer = excluded.tokenizer, hidden = excluded.hidden, \
               sale_input_per_mtok_nanos = excluded.sale_input_per_mtok_nanos, \
               sale_output_per_mtok_nanos = excluded.sale_output_per_mtok_nanos, max_n = excluded.max_n, \
               first_byte_timeout_ms = excluded.first_byte_timeout_ms, idle_timeout_ms = excluded.idle_timeout_ms",
        )
        .bind(new_id())
        .bind(slug)
        .bind(&m.name)
        .bind(&m.description)
        .bind(m.context_length as i64)
        .bind(m.max_output_tokens.map(|v| v as i64))
        .bind(m.enabled as i64)
        .bind(now)
        .bind(m.input_modalities.join(","))
        .bind(m.output_modalities.join(","))
        .bind(m.supported_parameters.join(","))
        .bind(&m.tokenizer)
        .bind(m.hidden as i64)
        .bind(m.sale_input_per_mtok.map(|p| p.0))
        .bind(m.sale_output_per_mtok.map(|p| p.0))
        .bind(m.max_n.map(|v| v as i64))
        .bind(m.first_byte_timeout_ms.map(|v| v as i64))
        .bind(m.idle_timeout_ms.map(|v| v as i64))
        .execute(&mut *tx)
        .await?;
        let (model_id,): (String,) = sqlx::query_as("SELECT id FROM models WHERE slug = $1")
            .bind(slug)
            .fetch_one(&mut *tx)
            .await?;
        super::admin::set_markup(&mut tx, &format!("model:{model_id}"), m.markup_percent).await?;
        report.models += 1;
        // Endpoints the file no longer lists for this model stop receiving traffic.
        let r = sqlx::query(
            "UPDATE endpoints SET enabled = 0, updated_at = $2 WHERE model_id = $1 AND enabled = 1",
        )
        .bind(&model_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut disabled = r.rows_affected();
        for e in &m.endpoints {
            let provider_id = provider_ids
                .get(e.provider.get_ref())
                .cloned()
                .unwrap_or_default();
            put_endpoint(&mut tx, &model_id, &provider_id, e, now).await?;
            if e.enabled {
                disabled = disabled.saturating_sub(1);
            }
            report.endpoints += 1;
        }
        report.endpoints_disabled += disabled;
    }
    if let Some(mk) = &file.markup {
        super::admin::set_markup(&mut tx, "default", Some(mk.default_percent)).await?;
        report.markup_percent = Some(mk.default_percent.to_percent_string());
    }
    super::admin::record(
        &mut tx,
        None,
        "catalog apply",
        path,
        None,
        Some(serde_json::json!({
            "providers": report.providers, "models": report.models, "endpoints": report.endpoints,
            "endpoints_disabled": report.endpoints_disabled, "markup": report.markup_percent,
        })),
    )
    .await?;
    super::admin::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(report)
}

/// The catalog as a file `apply` takes back: every provider (without keys), model and endpoint, enabled
/// or not, and every markup. Applying it changes nothing.
pub async fn export(store: &Store) -> anyhow::Result<String> {
    let pool = &store.pool;
    let rules: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT scope, ppm FROM markup_rules")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let rule = |scope: String| rules.get(&scope).map(|&p| Markup(p));
    let span = |s: String| Spanned::new(0..0, s);
    type P = (
        String,
        String,
        String,
        String,
        String,
        i64,
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
    );
    let providers: Vec<P> = sqlx::query_as(
        "SELECT id, slug, name, kind, base_url, enabled, website, data_policy, collects_data, s3_buckets FROM providers ORDER BY slug",
    )
    .fetch_all(pool)
    .await?;
    let mut slugs = HashMap::new();
    let mut file = CatalogFile {
        markup: rule("default".into()).map(|m| MarkupSpec { default_percent: m }),
        providers: Vec::new(),
        models: Vec::new(),
    };
    for (id, slug, name, kind, base_url, enabled, website, data_policy, collects_data, s3) in
        providers
    {
        let Some(kind) = ProviderKind::parse(&kind) else {
            anyhow::bail!("provider {slug} has kind {kind:?}, which this version cannot write");
        };
        file.providers.push(ProviderSpec {
            slug: span(slug.clone()),
            name,
            kind,
            base_url: Some(span(base_url)),
            api_key: None,
            keys: Vec::new(),
            website,
            data_policy,
            collects_data: collects_data != 0,
            markup_percent: rule(format!("provider:{id}")),
            s3_buckets: s3
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default(),
            enabled: enabled != 0,
        });
        slugs.insert(id, slug);
    }
    #[derive(sqlx::FromRow)]
    struct M {
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
        hidden: i64,
        sale_input_per_mtok_nanos: Option<i64>,
        sale_output_per_mtok_nanos: Option<i64>,
        enabled: i64,
        max_n: Option<i64>,
        first_byte_timeout_ms: Option<i64>,
        idle_timeout_ms: Option<i64>,
    }
    let models: Vec<M> = sqlx::query_as(
        "SELECT id, slug, name, description, context_length, max_output_tokens, input_modalities, output_modalities, \
                supported_parameters, tokenizer, hidden, sale_input_per_mtok_nanos, sale_output_per_mtok_nanos, enabled, \
                max_n, first_byte_timeout_ms, idle_timeout_ms \
         FROM models ORDER BY slug",
    )
    .fetch_all(pool)
    .await?;
    #[derive(sqlx::FromRow)]
    struct E {
        model_id: String,
        provider_id: String,
        upstream_model: String,
        input_per_mtok_nanos: i64,
        output_per_mtok_nanos: i64,
        cache_read_per_mtok_nanos: Option<i64>,
        cache_write_per_mtok_nanos: Option<i64>,
        request_nanos: i64,
        max_output_tokens: Option<i64>,
        priority: i64,
        enabled: i64,
        weight: i64,
        web_search_nanos: Option<i64>,
        audio_input_per_mtok_nanos: Option<i64>,
        service_tiers: Option<String>,
    }
    let endpoints: Vec<E> = sqlx::query_as(
        "SELECT model_id, provider_id, upstream_model, input_per_mtok_nanos, output_per_mtok_nanos, \
                cache_read_per_mtok_nanos, cache_write_per_mtok_nanos, request_nanos, max_output_tokens, priority, enabled, \
                weight, web_search_nanos, audio_input_per_mtok_nanos, service_tiers \
         FROM endpoints ORDER BY priority, provider_id, upstream_model",
    )
    .fetch_all(pool)
    .await?;
    let mut by_model: HashMap<String, Vec<EndpointSpec>> = HashMap::new();
    for e in endpoints {
        let provider = slugs.get(&e.provider_id).cloned().unwrap_or(e.provider_id);
        by_model.entry(e.model_id).or_default().push(EndpointSpec {
            provider: span(provider),
            upstream_model: e.upstream_model,
            input_per_mtok: MtokPrice(e.input_per_mtok_nanos),
            output_per_mtok: MtokPrice(e.output_per_mtok_nanos),
            cache_read_per_mtok: e.cache_read_per_mtok_nanos.map(MtokPrice),
            cache_write_per_mtok: e.cache_write_per_mtok_nanos.map(MtokPrice),
            per_request: (e.request_nanos > 0).then_some(Usd(crate::money::Nanos(e.request_nanos))),
            web_search: e.web_search_nanos.map(|n| Usd(crate::money::Nanos(n))),
            audio_input_per_mtok: e.audio_input_per_mtok_nanos.map(MtokPrice),
            service_tiers: super::parse_service_tiers(e.service_tiers.as_deref())
                .into_iter()
                .map(|(t, ppm)| (t, Markup(ppm)))
                .collect(),
            max_output_tokens: e.max_output_tokens.map(|v| v as u64),
            priority: e.priority,
            weight: e.weight.max(0) as u64,
            enabled: e.enabled != 0,
        });
    }
    for m in models {
        file.models.push(ModelSpec {
            endpoints: by_model.remove(&m.id).unwrap_or_default(),
            markup_percent: rule(format!("model:{}", m.id)),
            slug: span(m.slug),
            name: m.name,
            description: m.description,
            context_length: m.context_length.max(0) as u64,
            max_output_tokens: m.max_output_tokens.map(|v| v as u64),
            max_n: m.max_n.map(|v| v as u64),
            first_byte_timeout_ms: m.first_byte_timeout_ms.map(|v| v as u64),
            idle_timeout_ms: m.idle_timeout_ms.map(|v| v as u64),
            input_modalities: super::split_list(&m.input_modalities),
            output_modalities: super::split_list(&m.output_modalities),
            supported_parameters: super::split_list(&m.supported_parameters),
            tokenizer: m.tokenizer,
            hidden: m.hidden != 0,
            sale_input_per_mtok: m.sale_input_per_mtok_nanos.map(MtokPrice),
            sale_output_per_mtok: m.sale_output_per_mtok_nanos.map(MtokPrice),
            enabled: m.enabled != 0,
        });
    }
    let body = toml::to_string(&file)?;
    Ok(format!(
        "# The Switchyard catalog, exported by `switchyard catalog export`.\n\
         # Provider keys are not exported (they are stored encrypted); applying this file keeps the stored keys.\n\
         # Add `api_key = \"env:NAME\"` to a provider to set its key from the environment.\n\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[providers]]
slug = "acme"
name = "Acme AI"
kind = "openai"
base_url = "http://127.0.0.1:9999/v1"
api_key = "env:ACME_API_KEY"

[[models]]
slug = "acme/fast-1"
name = "Acme Fast 1"
context_length = 128000
[[models.endpoints]]
provider = "acme"
upstream_model = "fast-1"
input_per_mtok = "0.50"
output_per_mtok = "1.50"

[markup]
default_percent = "10"
"#;

    fn env(n: &str) -> Option<String> {
        (n == "ACME_API_KEY").then(|| "sk-acme".to_string())
    }

    #[test]
    fn good_file_parses() {
        let f = check("c.toml", GOOD, &env, &HashSet::new()).expect("valid");
        assert_eq!(
            f.models[0].endpoints[0].input_per_mtok,
            MtokPrice(500_000_000)
        );
        assert_eq!(f.markup.expect("markup").default_percent, Markup(100_000));
    }

    fn problems(text: &str) -> String {
        check("c.toml", text, &env, &HashSet::new())
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = problems(&GOOD.replace(
            "context_length = 128000",
            "context_length = 128000\ncolour = 1",
        ));
        assert!(e.contains("line 13") && e.contains("colour"), "{e}");
        let e = problems(&GOOD.replace("\"0.50\"", "\"0.5x\""));
        assert!(
            e.contains("line 16") && e.contains("input_per_mtok") && e.contains("0.5x"),
            "{e}"
        );
        let e = problems(&GOOD.replace("provider = \"acme\"", "provider = \"nope\""));
        assert!(e.contains("line 14") && e.contains("nope"), "{e}");
        let dup = format!(
            "{GOOD}\n[[models]]\nslug = \"acme/fast-1\"\nname = \"x\"\ncontext_length = 1\n"
        );
        let e = problems(&dup);
        assert!(e.contains("defined twice") && e.contains("line 23"), "{e}");
        let e = problems(&GOOD.replace("env:ACME_API_KEY", "env:MISSING_KEY"));
        assert!(e.contains("line 7") && e.contains("MISSING_KEY"), "{e}");
        let e = problems(&GOOD.replace("kind = \"openai\"", "kind = \"smoke-signals\""));
        assert!(e.contains("line 5") && e.contains("smoke-signals"), "{e}");
    }
}
