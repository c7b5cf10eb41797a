//! The catalog: providers, models, the endpoints that serve each model at a cost, and markup. The gateway
//! reads an immutable in-memory snapshot that is swapped atomically when the database changes.

pub mod admin;
pub mod file;
pub mod health;

use crate::config::Secret;
use crate::crypto::Cipher;
use crate::money::{Markup, MtokPrice, Pricing};
use crate::store::Store;
use arc_swap::ArcSwap;
use serde::Deserialize;
use std::{collections::BTreeMap, sync::Arc};

/// The wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible server (OpenAI, vLLM, Ollama, Together, Groq, DeepSeek, …).
    Openai,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderKind> {
        match s {
            "openai" => Some(ProviderKind::Openai),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Provider {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: Option<Secret>,
}

/// A model served by one provider at one cost.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub provider: Arc<Provider>,
    pub upstream_model: String,
    pub input: MtokPrice,
    pub output: MtokPrice,
    pub max_output_tokens: Option<u64>,
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
    pub created_at: i64,
    /// Callable, but left out of public model lists.
    pub hidden: bool,
    /// An explicit sale price per million tokens (input, output), replacing cost x markup.
    pub sale: Option<(MtokPrice, MtokPrice)>,
    /// Enabled endpoints, cheapest first (the default route).
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub version: i64,
    pub markup: Markup,
    /// Enabled models with at least one enabled endpoint, by slug.
    pub models: BTreeMap<String, Arc<Model>>,
}

impl Catalog {
    /// What a request to `model` served by `ep` costs and is charged.
    pub fn pricing(&self, model: &Model, ep: &Endpoint) -> Pricing {
        Pricing {
            input: ep.input,
            output: ep.output,
            markup: ep.markup,
            sale: model.sale,
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

type EndpointRow = (
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);
type ModelRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

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
        "SELECT id, slug, name, description, context_length, max_output_tokens, created_at, hidden, \
                sale_input_per_mtok_nanos, sale_output_per_mtok_nanos FROM models WHERE enabled = 1",
    )
    .fetch_all(&store.pool)
    .await?;
    let eps: Vec<EndpointRow> = sqlx::query_as(
        "SELECT e.id, e.model_id, e.upstream_model, e.input_per_mtok_nanos, e.output_per_mtok_nanos, e.max_output_tokens, \
                p.id, p.slug, p.name, p.kind, p.base_url, p.api_key_enc \
         FROM endpoints e JOIN providers p ON p.id = e.provider_id \
         WHERE e.enabled = 1 AND p.enabled = 1",
    )
    .fetch_all(&store.pool)
    .await?;

    let mut providers: BTreeMap<String, Arc<Provider>> = BTreeMap::new();
    let mut by_model: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
    for (
        id,
        model_id,
        upstream_model,
        input,
        output,
        max_out,
        pid,
        pslug,
        pname,
        kind,
        base_url,
        key_enc,
    ) in eps
    {
        let provider = match providers.get(&pid) {
            Some(p) => p.clone(),
            None => {
                let Some(kind) = ProviderKind::parse(&kind) else {
                    tracing::warn!(provider = %pslug, kind = %kind, "skipping provider of unknown kind");
                    continue;
                };
                let api_key = match key_enc {
                    Some(enc) => Some(Secret::new(cipher.decrypt(&enc)?)),
                    None => None,
                };
                let p = Arc::new(Provider {
                    id: pid.clone(),
                    slug: pslug,
                    name: pname,
                    kind,
                    base_url,
                    api_key,
                });
                providers.insert(pid, p.clone());
                p
            }
        };
        let markup = rules
            .get(&format!("model:{model_id}"))
            .or_else(|| rules.get(&format!("provider:{}", provider.id)))
            .map_or(default, |&ppm| Markup(ppm));
        by_model.entry(model_id).or_default().push(Endpoint {
            id,
            provider,
            upstream_model,
            input: MtokPrice(input),
            output: MtokPrice(output),
            max_output_tokens: max_out.map(|v| v as u64),
            markup,
        });
    }
    let mut out = BTreeMap::new();
    for (
        id,
        slug,
        name,
        description,
        context_length,
        max_out,
        created_at,
        hidden,
        sale_in,
        sale_out,
    ) in models
    {
        let Some(mut endpoints) = by_model.remove(&id) else {
            continue;
        };
        endpoints.sort_by_key(|e| {
            (
                e.input.0.saturating_add(e.output.0),
                e.provider.slug.clone(),
            )
        });
        out.insert(
            slug.clone(),
            Arc::new(Model {
                id,
                slug,
                name,
                description,
                context_length: context_length.max(0) as u64,
                max_output_tokens: max_out.map(|v| v as u64),
                created_at,
                hidden: hidden != 0,
                sale: sale_in
                    .zip(sale_out)
                    .map(|(i, o)| (MtokPrice(i), MtokPrice(o))),
                endpoints,
            }),
        );
    }
    Ok(Catalog {
        version,
        markup: default,
        models: out,
    })
}

/// The public view of the catalog the UI shows (tenant prices after markup).
pub fn public_cards(c: &Catalog) -> Vec<switchyard_app::ModelCard> {
    c.models
        .values()
        .filter(|m| !m.hidden)
        .map(|m| {
            let ep = &m.endpoints[0];
            let (input, output) = c.pricing(m, ep).sale_per_mtok_usd();
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
                input_usd_per_mtok: input,
                output_usd_per_mtok: output,
                providers,
            }
        })
        .collect()
}
