//! The catalog: providers, models, the endpoints that serve each model at a cost, and markup. The gateway
//! reads an immutable in-memory snapshot that is swapped atomically when the database changes.

pub mod admin;
pub mod file;
pub mod health;
pub mod import;

use crate::config::Secret;
use crate::crypto::Cipher;
use crate::money::{Markup, MtokPrice, Nanos, Pricing, PPM};
use crate::store::Store;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

/// The kind of provider: which wire protocol it speaks and, for OpenAI-compatible services, which preset
/// (default base URL and quirks) applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible server.
    Openai,
    /// Azure OpenAI: deployments, `api-version`, the `api-key` header.
    Azure,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Generative Language API (Gemini).
    Gemini,
    /// AWS Bedrock's Converse API (SigV4-signed).
    Bedrock,
    Deepseek,
    Groq,
    Together,
    Mistral,
    Xai,
    Fireworks,
    Openrouter,
    Vllm,
    Ollama,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 14] = [
        ProviderKind::Openai,
        ProviderKind::Azure,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Bedrock,
        ProviderKind::Deepseek,
        ProviderKind::Groq,
        ProviderKind::Together,
        ProviderKind::Mistral,
        ProviderKind::Xai,
        ProviderKind::Fireworks,
        ProviderKind::Openrouter,
        ProviderKind::Vllm,
        ProviderKind::Ollama,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Deepseek => "deepseek",
            ProviderKind::Groq => "groq",
            ProviderKind::Together => "together",
            ProviderKind::Mistral => "mistral",
            ProviderKind::Xai => "xai",
            ProviderKind::Fireworks => "fireworks",
            ProviderKind::Openrouter => "openrouter",
            ProviderKind::Vllm => "vllm",
            ProviderKind::Ollama => "ollama",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How the admin pages name it.
    pub fn label(self) -> &'static str {
        match self {
            ProviderKind::Openai => "OpenAI-compatible",
            ProviderKind::Azure => "Azure OpenAI",
            ProviderKind::Anthropic => "Anthropic (Messages API)",
            ProviderKind::Gemini => "Google Gemini",
            ProviderKind::Bedrock => "AWS Bedrock (Converse)",
            ProviderKind::Deepseek => "DeepSeek",
            ProviderKind::Groq => "Groq",
            ProviderKind::Together => "Together AI",
            ProviderKind::Mistral => "Mistral",
            ProviderKind::Xai => "xAI",
            ProviderKind::Fireworks => "Fireworks",
            ProviderKind::Openrouter => "OpenRouter",
            ProviderKind::Vllm => "vLLM",
            ProviderKind::Ollama => "Ollama",
        }
    }

    /// The service's public base URL, used when a provider names none (Azure has none: each resource
    /// has its own).
    pub fn default_base_url(self) -> Option<&'static str> {
        Some(match self {
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Azure => return None,
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            ProviderKind::Bedrock => "https://bedrock-runtime.us-east-1.amazonaws.com",
            ProviderKind::Deepseek => "https://api.deepseek.com/v1",
            ProviderKind::Groq => "https://api.groq.com/openai/v1",
            ProviderKind::Together => "https://api.together.xyz/v1",
            ProviderKind::Mistral => "https://api.mistral.ai/v1",
            ProviderKind::Xai => "https://api.x.ai/v1",
            ProviderKind::Fireworks => "https://api.fireworks.ai/inference/v1",
            ProviderKind::Openrouter => "https://openrouter.ai/api/v1",
            ProviderKind::Vllm => "http://127.0.0.1:8000/v1",
            ProviderKind::Ollama => "http://127.0.0.1:11434/v1",
        })
    }
}

#[derive(Debug)]
pub struct Provider {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// The provider keeps or trains on prompts (requests with `data_collection: "deny"` avoid it).
    pub collects_data: bool,
    /// Enabled credentials with a weight above zero (the pool); none for keyless servers.
    pub credentials: Vec<Credential>,
    /// S3 buckets tenants may name in `s3://` locations (Bedrock; `bucket` or `bucket@account`).
    pub s3_buckets: Vec<String>,
}

/// One of a provider's keys.
#[derive(Debug)]
pub struct Credential {
    pub id: String,
    pub label: String,
    pub weight: u64,
    pub secret: Secret,
}

impl Provider {
    /// A credential drawn at random in proportion to the weights among those `usable` accepts (not
    /// failed in this request, not resting after a rate limit). `Ok(None)` for a keyless server; `Err`
    /// when the provider has keys and none is usable now.
    pub fn pick_credential(
        &self,
        usable: impl Fn(&Credential) -> bool,
    ) -> Result<Option<&Credential>, NoCredential> {
        if self.credentials.is_empty() {
            return Ok(None);
        }
        Self::draw(self.credentials.iter(), usable)
            .map(Some)
            .ok_or(NoCredential)
    }

    /// A weighted draw over the credentials `keep` accepts, without allocating (this runs per request).
    fn draw<'a>(
        all: impl Iterator<Item = &'a Credential> + Clone,
        keep: impl Fn(&Credential) -> bool,
    ) -> Option<&'a Credential> {
        let total: u64 = all.clone().filter(|c| keep(c)).map(|c| c.weight).sum();
        if total == 0 {
            return None;
        }
        let mut ticket = rand::random_range(0..total);
        for c in all.filter(|c| keep(c)) {
            if ticket < c.weight {
                return Some(c);
            }
            ticket -= c.weight;
        }
        None
    }
}

/// Every key of a provider failed in this request or is resting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoCredential;

/// A model served by one provider at one cost.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub provider: Arc<Provider>,
    pub upstream_model: String,
    pub input: MtokPrice,
    pub output: MtokPrice,
    pub cache_read: Option<MtokPrice>,
    pub cache_write: Option<MtokPrice>,
    pub request: Nanos,
    pub max_output_tokens: Option<u64>,
    /// The price of a request that uses web search (`web_search_options`), when this endpoint offers it.
    pub web_search: Option<Nanos>,
    /// The price of audio input tokens, when this endpoint takes audio.
    pub audio_input: Option<MtokPrice>,
    /// Service tiers this endpoint serves beyond the default, each with its price as parts per million
    /// of the list price (`flex` at 500,000 is half price).
    pub service_tiers: Vec<(String, i64)>,
    /// Endpoints are tried lowest priority first; among equals, drawn by weight over price squared.
    pub priority: i64,
    /// The endpoint's share among endpoints of equal priority; 0: a fallback only.
    pub weight: u64,
    /// The markup that applies here: the model's, else the provider's, else the default.
    pub markup: Markup,
}

#[derive(Debug)]
pub struct Model {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub context_length: u64,
    pub max_output_tokens: Option<u64>,
    /// The most choices (`n`) a request may ask for; `None`: [`DEFAULT_MAX_N`].
    pub max_n: Option<u64>,
    /// Upstream time limits for this model (`None`: the server's): until the first token, and the
    /// longest silence after it.
    pub first_byte_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub created_at: i64,
    /// Callable, but left out of public model lists.
    pub hidden: bool,
    /// An explicit sale price per million tokens (input, output), replacing cost x markup.
    pub sale: Option<(MtokPrice, MtokPrice)>,
    pub input_modalities: Vec<String>,
    pub output_modalities: Vec<String>,
    pub supported_parameters: Vec<String>,
    pub tokenizer: String,
    /// Enabled endpoints in the order they are tried: lowest priority, then cheapest first.
    pub endpoints: Vec<Endpoint>,
}

pub use switchyard_app::catalog_admin::{DEFAULT_MAX_N, DEFAULT_OUTPUT_CAP};

impl Model {
    pub fn max_choices(&self) -> u64 {
        self.max_n.unwrap_or(DEFAULT_MAX_N)
    }
}

impl Endpoint {
    /// The price multiplier of a service tier, in parts per million of the list price; `Some(PPM)` for
    /// the default tiers every endpoint serves, `None` for a tier this endpoint does not price.
    pub fn tier_ppm(&self, tier: &str) -> Option<i64> {
        if is_default_tier(tier) {
            return Some(PPM as i64);
        }
        self.service_tiers
            .iter()
            .find(|(t, _)| t == tier)
            .map(|(_, ppm)| *ppm)
    }
}

/// Tiers that cost the list price: OpenAI's `auto` and `default`, Anthropic's `standard_only`.
pub fn is_default_tier(tier: &str) -> bool {
    matches!(tier, "auto" | "default" | "standard" | "standard_only")
}

/// `{"flex": 500000, "priority": 2000000}` (as stored) into pairs; anything malformed is no tier.
pub fn parse_service_tiers(s: Option<&str>) -> Vec<(String, i64)> {
    let Some(s) = s.filter(|s| !s.trim().is_empty()) else {
        return Vec::new();
    };
    match serde_json::from_str::<BTreeMap<String, i64>>(s) {
        Ok(m) => m.into_iter().filter(|(_, v)| *v > 0).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring unreadable service tiers");
            Vec::new()
        }
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub version: i64,
    pub markup: Markup,
    /// Enabled models with at least one enabled endpoint, by slug.
    pub models: BTreeMap<String, Arc<Model>>,
    /// Organisations with their own prices: the multiplier (ppm) on everything they are charged.
    pub org_multipliers: HashMap<String, i64>,
}

impl Catalog {
    /// What a request to `model` served by `ep` costs, at list price.
    pub fn list_pricing(&self, model: &Model, ep: &Endpoint) -> Pricing {
        Pricing {
            input: ep.input,
            output: ep.output,
            cache_read: ep.cache_read,
            cache_write: ep.cache_write,
            request: ep.request,
            audio_input: ep.audio_input,
            tier_ppm: PPM as i64,
            markup: ep.markup,
            sale: model.sale,
            org_ppm: PPM as i64,
        }
    }

    /// What a request from organisation `org` to `model` served by `ep` costs and is charged.
    pub fn pricing(&self, org: &str, model: &Model, ep: &Endpoint) -> Pricing {
        Pricing {
            org_ppm: self.org_multipliers.get(org).copied().unwrap_or(PPM as i64),
            ..self.list_pricing(model, ep)
        }
    }
}

/// The current snapshot; readers never block, writers swap a whole new catalog in.
pub struct CatalogHandle {
    current: ArcSwap<Catalog>,
}

impl CatalogHandle {
    pub fn new(c: Catalog) -> Self {
        CatalogHandle {
            current: ArcSwap::from_pointee(c),
        }
    }

    pub fn get(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// Reloads when the stored catalog version moved; returns whether it did.
    pub async fn refresh(&self, store: &Store, cipher: &Cipher) -> anyhow::Result<bool> {
        let v = version(store).await?;
        if v == self.current.load().version {
            return Ok(false);
        }
        self.current.store(Arc::new(load(store, cipher).await?));
        Ok(true)
    }
}

pub async fn version(store: &Store) -> Result<i64, sqlx::Error> {
    let (v,): (i64,) = sqlx::query_as("SELECT version FROM catalog_state WHERE id = 1")
        .fetch_one(&store.pool)
        .await?;
    Ok(v)
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    model_id: String,
    upstream_model: String,
    input_per_mtok_nanos: i64,
    output_per_mtok_nanos: i64,
    cache_read_per_mtok_nanos: Option<i64>,
    cache_write_per_mtok_nanos: Option<i64>,
    request_nanos: i64,
    max_output_tokens: Option<i64>,
    web_search_nanos: Option<i64>,
    audio_input_per_mtok_nanos: Option<i64>,
    service_tiers: Option<String>,
    priority: i64,
    weight: i64,
    collects_data: i64,
    provider_id: String,
    provider_slug: String,
    provider_name: String,
    kind: String,
    base_url: String,
    s3_buckets: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    id: String,
    slug: String,
    name: String,
    description: String,
    context_length: i64,
    max_output_tokens: Option<i64>,
    max_n: Option<i64>,
    first_byte_timeout_ms: Option<i64>,
    idle_timeout_ms: Option<i64>,
    created_at: i64,
    hidden: i64,
    sale_input_per_mtok_nanos: Option<i64>,
    sale_output_per_mtok_nanos: Option<i64>,
    input_modalities: String,
    output_modalities: String,
    supported_parameters: String,
    tokenizer: String,
}

/// "text, image" → ["text", "image"].
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A provider's S3 bucket list as stored (NULL when empty); entries normalised (`bucket[@account]`).
pub fn s3_buckets_json(list: &[String]) -> Option<String> {
    let clean: Vec<String> = list
        .iter()
        .filter_map(|b| crate::providers::bedrock::S3Bucket::parse(b).ok())
        .map(|b| b.to_string())
        .collect();
    (!clean.is_empty()).then(|| serde_json::to_string(&clean).expect("strings serialise"))
}

/// What a provider key's ciphertext is bound to: its provider (a key copied into another provider's
/// row does not decrypt, so it cannot be sent to that provider's address).
pub fn credential_context(provider_id: &str) -> String {
    format!("provider_credentials:{provider_id}")
}

/// Binds provider keys written before ciphertexts were bound to their row (runs at start; idempotent,
/// and safe with several instances starting at once). Returns how many were bound.
pub async fn bind_credentials(store: &Store, cipher: &Cipher) -> anyhow::Result<u64> {
    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT id, provider_id, label, secret_enc FROM provider_credentials")
            .fetch_all(&store.pool)
            .await?;
    let mut bound = 0;
    for (id, provider_id, label, enc) in rows {
        if !Cipher::is_unbound(&enc) {
            continue;
        }
        let Ok(plain) = cipher.decrypt_unbound(&enc) else {
            tracing::error!(provider = %provider_id, key = %label, "a stored provider key cannot be decrypted with this secret key; add it again");
            continue;
        };
        bound += sqlx::query(
            "UPDATE provider_credentials SET secret_enc = $1 WHERE id = $2 AND secret_enc = $3",
        )
        .bind(cipher.encrypt(&plain, &credential_context(&provider_id)))
        .bind(&id)
        .bind(&enc)
        .execute(&store.writer)
        .await?
        .rows_affected();
    }
    if bound > 0 {
        tracing::info!(keys = bound, "bound stored provider keys to their rows");
    }
    Ok(bound)
}

/// Reads the enabled catalog into a snapshot, decrypting provider credentials.
pub async fn load(store: &Store, cipher: &Cipher) -> anyhow::Result<Catalog> {
    let version = version(store).await?;
    let rules: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT scope, ppm FROM markup_rules")
            .fetch_all(&store.pool)
            .await?
            .into_iter()
            .collect();
    let default = Markup(rules.get("default").copied().unwrap_or(0));
    let models: Vec<ModelRow> = sqlx::query_as(
        "SELECT id, slug, name, description, context_length, max_output_tokens, max_n, first_byte_timeout_ms, \
                idle_timeout_ms, created_at, hidden, \
                sale_input_per_mtok_nanos, sale_output_per_mtok_nanos, input_modalities, output_modalities, \
                supported_parameters, tokenizer FROM models WHERE enabled = 1",
    )
    .fetch_all(&store.pool)
    .await?;
    let eps: Vec<EndpointRow> = sqlx::query_as(
        "SELECT e.id, e.model_id, e.upstream_model, e.input_per_mtok_nanos, e.output_per_mtok_nanos, \
                e.cache_read_per_mtok_nanos, e.cache_write_per_mtok_nanos, e.request_nanos, e.max_output_tokens, \
                e.web_search_nanos, e.audio_input_per_mtok_nanos, e.service_tiers, e.priority, e.weight, p.collects_data, p.id AS provider_id, p.slug AS provider_slug, p.name AS provider_name, p.kind, p.base_url, p.s3_buckets \
         FROM endpoints e JOIN providers p ON p.id = e.provider_id \
         WHERE e.enabled = 1 AND p.enabled = 1",
    )
    .fetch_all(&store.pool)
    .await?;
    let creds: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, provider_id, label, secret_enc, weight FROM provider_credentials \
         WHERE enabled = 1 AND weight > 0 ORDER BY label",
    )
    .fetch_all(&store.pool)
    .await?;
    let mut pools: HashMap<String, Vec<Credential>> = HashMap::new();
    for (id, provider_id, label, enc, weight) in creds {
        // A key that does not decrypt for its row (moved from another provider's row, or a changed
        // secret key) leaves the pool; the rest of the catalog loads, and the admin page says which.
        let secret = match cipher.decrypt(&enc, &credential_context(&provider_id)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(provider = %provider_id, key = %label, error = %e, "a provider key cannot be decrypted for its row; it is left out of the pool (add it again)");
                continue;
            }
        };
        pools.entry(provider_id).or_default().push(Credential {
            id,
            label,
            weight: weight as u64,
            secret: Secret::new(secret),
        });
    }
    let org_multipliers: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT org_id, multiplier_ppm FROM org_pricing")
            .fetch_all(&store.pool)
            .await?
            .into_iter()
            .collect();

    let mut providers: BTreeMap<String, Arc<Provider>> = BTreeMap::new();
    let mut by_model: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
    for e in eps {
        let provider = match providers.get(&e.provider_id) {
            Some(p) => p.clone(),
            None => {
                let Some(kind) = ProviderKind::parse(&e.kind) else {
                    tracing::warn!(provider = %e.provider_slug, kind = %e.kind, "skipping provider of unknown kind");
                    continue;
                };
                let p = Arc::new(Provider {
                    id: e.provider_id.clone(),
                    slug: e.provider_slug,
                    name: e.provider_name,
                    kind,
                    base_url: e.base_url,
                    collects_data: e.collects_data != 0,
                    credentials: pools.remove(&e.provider_id).unwrap_or_default(),
                    s3_buckets: e
                        .s3_buckets
                        .as_deref()
                        .and_then(|j| serde_json::from_str(j).ok())
                        .unwrap_or_default(),
                });
                providers.insert(e.provider_id, p.clone());
                p
            }
        };
        let markup = rules
            .get(&format!("model:{}", e.model_id))
            .or_else(|| rules.get(&format!("provider:{}", provider.id)))
            .map_or(default, |&ppm| Markup(ppm));
        by_model.entry(e.model_id).or_default().push(Endpoint {
            id: e.id,
            provider,
            upstream_model: e.upstream_model,
            input: MtokPrice(e.input_per_mtok_nanos),
            output: MtokPrice(e.output_per_mtok_nanos),
            cache_read: e.cache_read_per_mtok_nanos.map(MtokPrice),
            cache_write: e.cache_write_per_mtok_nanos.map(MtokPrice),
            request: Nanos(e.request_nanos),
            max_output_tokens: e.max_output_tokens.map(|v| v as u64),
            web_search: e.web_search_nanos.map(Nanos),
            audio_input: e.audio_input_per_mtok_nanos.map(MtokPrice),
            service_tiers: parse_service_tiers(e.service_tiers.as_deref()),
            priority: e.priority,
            weight: e.weight.max(0) as u64,
            markup,
        });
    }
    let mut out = BTreeMap::new();
    for m in models {
        let Some(mut endpoints) = by_model.remove(&m.id) else {
            continue;
        };
        endpoints.sort_by_key(|e| {
            (
                e.priority,
                e.input.0.saturating_add(e.output.0),
                e.provider.slug.clone(),
            )
        });
        out.insert(
            m.slug.clone(),
            Arc::new(Model {
                id: m.id,
                slug: m.slug,
                name: m.name,
                description: m.description,
                context_length: m.context_length.max(0) as u64,
                max_output_tokens: m.max_output_tokens.map(|v| v as u64),
                max_n: m.max_n.map(|v| v.max(1) as u64),
                first_byte_timeout_ms: m.first_byte_timeout_ms.map(|v| v.max(1) as u64),
                idle_timeout_ms: m.idle_timeout_ms.map(|v| v.max(1) as u64),
                created_at: m.created_at,
                hidden: m.hidden != 0,
                sale: m
                    .sale_input_per_mtok_nanos
                    .zip(m.sale_output_per_mtok_nanos)
                    .map(|(i, o)| (MtokPrice(i), MtokPrice(o))),
                input_modalities: split_list(&m.input_modalities),
                output_modalities: split_list(&m.output_modalities),
                supported_parameters: split_list(&m.supported_parameters),
                tokenizer: m.tokenizer,
                endpoints,
            }),
        );
    }
    Ok(Catalog {
        version,
        markup: default,
        models: out,
        org_multipliers,
    })
}

/// The public view of the catalog the UI shows (tenant prices after markup).
pub fn public_cards(c: &Catalog) -> Vec<switchyard_app::ModelCard> {
    c.models
        .values()
        .filter(|m| !m.hidden)
        .map(|m| card(c, m))
        .collect()
}

fn card(c: &Catalog, m: &Model) -> switchyard_app::ModelCard {
    let ep = &m.endpoints[0];
    let pricing = c.list_pricing(m, ep);
    let (input, output) = pricing.sale_per_mtok_usd();
    let mut providers: Vec<String> = m
        .endpoints
        .iter()
        .map(|e| e.provider.name.clone())
        .collect();
    providers.dedup();
    switchyard_app::ModelCard {
        slug: m.slug.clone(),
        name: m.name.clone(),
        description: m.description.clone(),
        context_length: m.context_length,
        input_nanos_per_mtok: pricing.charge(crate::money::Tokens::new(1_000_000, 0)).0,
        input_usd_per_mtok: input,
        output_usd_per_mtok: output,
        input_modalities: m.input_modalities.clone(),
        output_modalities: m.output_modalities.clone(),
        providers,
        created: m.created_at,
    }
}

/// A public model's page: every provider serving it at the tenant's price, with its uptime over the
/// last day.
pub fn public_detail(
    c: &Catalog,
    health: &health::Snapshot,
    api_base: &str,
    slug: &str,
) -> Option<switchyard_app::models::ModelDetail> {
    let m = c.models.get(slug).filter(|m| !m.hidden)?;
    let endpoints = m
        .endpoints
        .iter()
        .map(|e| {
            let p = c.list_pricing(m, e);
            let (input, output) = p.sale_per_mtok_usd();
            let uptime = health
                .get(1440 * health::MINUTE, &e.id)
                .and_then(health::Health::uptime_bp)
                .map(|b| format!("{}.{:02} %", b / 100, b % 100));
            switchyard_app::models::EndpointCard {
                provider: e.provider.name.clone(),
                input_usd_per_mtok: input,
                output_usd_per_mtok: output,
                cache_read_usd_per_mtok: e.cache_read.map(|r| Pricing::per_mtok_usd(r, e.markup)),
                request_usd: (e.request.0 > 0).then(|| p.request_usd()),
                max_output_tokens: e.max_output_tokens.or(m.max_output_tokens),
                uptime,
            }
        })
        .collect();
    Some(switchyard_app::models::ModelDetail {
        card: card(c, m),
        supported_parameters: m.supported_parameters.clone(),
        tokenizer: m.tokenizer.clone(),
        max_output_tokens: m.max_output_tokens,
        endpoints,
        api_base: api_base.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(weights: &[(&str, u64)]) -> Provider {
        Provider {
            id: "p".into(),
            slug: "p".into(),
            name: "P".into(),
            kind: ProviderKind::Openai,
            base_url: "http://127.0.0.1:9/v1".into(),
            collects_data: false,
            s3_buckets: Vec::new(),
            credentials: weights
                .iter()
                .map(|(id, w)| Credential {
                    id: id.to_string(),
                    label: id.to_string(),
                    weight: *w,
                    secret: Secret::new("k"),
                })
                .collect(),
        }
    }

    #[test]
    fn keys_are_drawn_by_weight_and_failed_ones_skipped() {
        let p = provider(&[("a", 1), ("b", 3), ("rested", 0)]);
        let mut n = std::collections::HashMap::new();
        for _ in 0..4000 {
            let c = p.pick_credential(|_| true).expect("usable").expect("a key");
            *n.entry(c.id.clone()).or_insert(0) += 1;
        }
        assert_eq!(n.get("rested"), None, "weight 0 is never drawn");
        let (a, b) = (n["a"], n["b"]);
        assert!((800..1200).contains(&a) && a + b == 4000, "{a} / {b}");
        // A key that failed (or rests) is skipped while another is left; then none is usable.
        for _ in 0..50 {
            let c = p.pick_credential(|c| c.id != "b").expect("usable");
            assert_eq!(c.expect("a key").id, "a");
        }
        assert!(matches!(
            p.pick_credential(|c| c.id == "rested"),
            Err(NoCredential)
        ));
        assert!(matches!(p.pick_credential(|_| false), Err(NoCredential)));
        assert!(
            matches!(provider(&[]).pick_credential(|_| false), Ok(None)),
            "keyless"
        );
    }

    /// The admin page offers exactly the kinds the server knows, under the same names.
    #[test]
    fn the_admin_page_offers_every_kind() {
        let mut offered: Vec<(&str, &str)> = switchyard_app::catalog_admin::PROVIDER_KINDS.to_vec();
        let mut known: Vec<(&str, &str)> = ProviderKind::ALL
            .iter()
            .map(|k| (k.as_str(), k.label()))
            .collect();
        offered.sort();
        known.sort();
        assert_eq!(offered, known);
    }
}
