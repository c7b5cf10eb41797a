//! The catalog in the admin area (`/admin/catalog`): providers and their keys, importing a provider's
//! models, models and their endpoints with cost, sale price and margin side by side, markup at every
//! level, and the audit log of every change.

use crate::account::{clear_on_success, form_message, outcome_line, Outcome};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogAdmin {
    pub default_markup_percent: String,
    pub providers: Vec<ProviderRow>,
    pub models: Vec<AdminModel>,
    pub org_prices: Vec<OrgPrice>,
    pub audit: Vec<AuditRow>,
}

/// An organisation with its own prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPrice {
    pub org: String,
    /// What it pays, as a percentage of list price ("90" = 10 % off).
    pub percent: String,
    pub note: String,
}

/// One key of a provider's pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRow {
    pub id: String,
    pub label: String,
    /// "••••abcd": the key itself is never shown again.
    pub hint: String,
    /// Its share of the provider's traffic, relative to the other keys.
    pub weight: u64,
    pub enabled: bool,
}

/// What importing a catalog in OpenRouter's format would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportDiff {
    pub added: Vec<DiffLine>,
    pub changed: Vec<DiffLine>,
    /// Served by a provider the import covers, but not in the file: their endpoints would be turned off.
    pub removed: Vec<DiffLine>,
    pub unchanged: u32,
    /// Models of the file that cannot be imported, and why.
    pub skipped: Vec<DiffLine>,
    /// What was previewed, to apply the same.
    pub json: String,
    pub provider_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    pub slug: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    /// Its keys (a pool: each request draws one in proportion to the weights).
    pub credentials: Vec<CredentialRow>,
    pub enabled: bool,
    pub website: String,
    pub data_policy: String,
    /// It keeps or trains on prompts (requests with `data_collection: "deny"` avoid it).
    pub collects_data: bool,
    /// Bedrock: the S3 buckets tenants may name in `s3://` locations, comma-separated.
    pub s3_buckets: String,
    /// The provider's own markup, when it has one.
    pub markup_percent: Option<String>,
    pub endpoints: u32,
    /// One of its endpoints is degraded.
    pub degraded: bool,
}

/// The most choices (`n`) a request may ask for where the catalog does not say.
pub const DEFAULT_MAX_N: u64 = 8;
/// The output cap of a request that names none, on a model whose catalog entry names no limit.
pub const DEFAULT_OUTPUT_CAP: u64 = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminModel {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub context_length: u64,
    /// Blank: the context length (or the endpoint's own limit).
    pub max_output_tokens: String,
    /// The most choices (`n`) a request may ask for; blank: the platform's default.
    pub max_n: String,
    /// Upstream time limits in milliseconds; blank: the server's.
    pub first_byte_timeout_ms: String,
    pub idle_timeout_ms: String,
    /// Comma-separated: "text, image".
    pub input_modalities: String,
    pub output_modalities: String,
    pub supported_parameters: String,
    pub tokenizer: String,
    pub enabled: bool,
    pub hidden: bool,
    /// Explicit sale prices per million tokens (USD), when set.
    pub sale_input: Option<String>,
    pub sale_output: Option<String>,
    pub markup_percent: Option<String>,
    pub endpoints: Vec<AdminEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEndpoint {
    pub id: String,
    pub provider: String,
    pub upstream_model: String,
    pub enabled: bool,
    /// Per million tokens, exact USD.
    pub cost_input: String,
    pub cost_output: String,
    pub sale_input: String,
    pub sale_output: String,
    /// Blank when the endpoint prices them as input tokens / charges nothing per request.
    pub cache_read: String,
    pub cache_write: String,
    pub request_price: String,
    /// USD per request that searches the web; blank: such requests are refused here.
    pub web_search: String,
    /// USD per million audio input tokens; blank: audio is refused here.
    pub audio_input: String,
    /// Service tiers beyond the default at a percentage of the list price: "flex=50, priority=200".
    pub service_tiers: String,
    /// Cost → sale of the cache and per-request prices, for the table ("cache read $0.30 → $0.33").
    pub extras: Vec<String>,
    pub max_output_tokens: String,
    /// Lower is tried first.
    pub priority: i64,
    /// Share among endpoints of equal priority (before cheaper ones are preferred); 0: fallback only.
    pub weight: u64,
    /// "9.09 %", or "—" when nothing is charged.
    pub margin: String,
    /// Where its price comes from: "default markup 10 %", "provider markup 20 %", "sale price".
    pub price_rule: String,
    /// Over the last 5 minutes, 1 hour and 1 day.
    pub health: Vec<HealthView>,
    /// Its recent error rate passed the platform's threshold.
    pub degraded: bool,
    /// The circuit breaker on the instance serving this page: "" while closed, else what it does
    /// ("out of rotation for 12 s", "one probe request out").
    #[serde(default)]
    pub breaker: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// "5 min", "1 h", "1 day".
    pub window: String,
    pub requests: u64,
    /// "99.50 %" or "—" without traffic.
    pub uptime: String,
    pub error_rate: String,
    /// "p50 120 · p95 300 · p99 410 ms" or "—".
    pub latency: String,
    pub ttft: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub date: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// What changed, field by field ("markup: 10 → 25").
    pub change: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamModel {
    pub id: String,
    pub context_length: Option<u64>,
    /// Already served by this provider in the catalog.
    pub imported: bool,
}

/// What a provider says it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamList {
    pub provider_id: String,
    pub provider: String,
    pub models: Vec<UpstreamModel>,
}

/// One change to the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogOp {
    /// Adds (no id) or edits a provider. On adding, a non-blank `api_key` becomes its first key
    /// ("default"); keys are managed with the credential operations after that.
    SaveProvider {
        id: Option<String>,
        slug: String,
        name: String,
        kind: String,
        base_url: String,
        api_key: String,
        website: String,
        data_policy: String,
        markup_percent: String,
        collects_data: bool,
        /// Bedrock: S3 buckets tenants may name (`bucket` or `bucket@account`, comma-separated).
        s3_buckets: String,
    },
    SetProviderEnabled {
        id: String,
        enabled: bool,
    },
    AddCredential {
        provider_id: String,
        label: String,
        api_key: String,
        weight: String,
    },
    SaveCredential {
        id: String,
        label: String,
        weight: String,
        enabled: bool,
    },
    RemoveCredential {
        id: String,
    },
    /// Adds the provider's upstream models: a model per id (or a new endpoint of an existing one).
    Import {
        provider_id: String,
        upstream: Vec<String>,
    },
    SaveModel {
        id: String,
        /// A new id ("author/name"); blank or the same keeps it.
        slug: String,
        name: String,
        description: String,
        context_length: String,
        max_output_tokens: String,
        max_n: String,
        first_byte_timeout_ms: String,
        idle_timeout_ms: String,
        input_modalities: String,
        output_modalities: String,
        supported_parameters: String,
        tokenizer: String,
        enabled: bool,
        hidden: bool,
        sale_input: String,
        sale_output: String,
        markup_percent: String,
    },
    SaveEndpoint {
        id: String,
        upstream_model: String,
        cost_input: String,
        cost_output: String,
        cache_read: String,
        cache_write: String,
        request_price: String,
        web_search: String,
        audio_input: String,
        service_tiers: String,
        max_output_tokens: String,
        priority: String,
        weight: String,
        enabled: bool,
    },
    SetDefaultMarkup {
        percent: String,
    },
    /// An organisation pays `percent` of list price (blank: list price again).
    SetOrgPrice {
        org: String,
        percent: String,
        note: String,
    },
    /// Applies a catalog in OpenRouter's `/api/v1/models` format (blank `json`: the starter catalog).
    /// `provider_id` blank: each model goes to the provider named by its author ("openai/gpt-4o" →
    /// provider `openai`, upstream `gpt-4o`); otherwise all go to that provider under their full id.
    ImportCatalog {
        json: String,
        provider_id: String,
    },
}

/// The kinds of provider the admin can add: (value, label), as the server's `ProviderKind`.
pub const PROVIDER_KINDS: &[(&str, &str)] = &[
    ("openai", "OpenAI-compatible"),
    ("anthropic", "Anthropic (Messages API)"),
    ("gemini", "Google Gemini"),
    ("azure", "Azure OpenAI"),
    ("bedrock", "AWS Bedrock (Converse)"),
    ("deepseek", "DeepSeek"),
    ("groq", "Groq"),
    ("together", "Together AI"),
    ("mistral", "Mistral"),
    ("xai", "xAI"),
    ("fireworks", "Fireworks"),
    ("openrouter", "OpenRouter"),
    ("vllm", "vLLM"),
    ("ollama", "Ollama"),
];

#[server(prefix = "/_app", endpoint = "admin_catalog")]
pub async fn load_catalog_admin() -> Result<CatalogAdmin, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.catalog_admin(&who).await.map_err(ServerFnError::new)
}

#[cfg(feature = "ssr")]
async fn run(op: CatalogOp) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0.catalog_change(&who, op).await.into())
}

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/_app", endpoint = "admin_provider")]
pub async fn save_provider(
    id: Option<String>,
    slug: String,
    name: String,
    kind: String,
    base_url: String,
    api_key: String,
    website: String,
    data_policy: String,
    markup_percent: String,
    collects_data: Option<String>,
    #[server(default)] s3_buckets: String,
) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::SaveProvider {
        id: id.filter(|i| !i.is_empty()),
        slug,
        name,
        kind,
        base_url,
        api_key,
        website,
        data_policy,
        markup_percent,
        collects_data: collects_data.is_some(),
        s3_buckets,
    })
    .await
}

#[server(prefix = "/_app", endpoint = "admin_provider_enabled")]
pub async fn set_provider_enabled(id: String, enabled: bool) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::SetProviderEnabled { id, enabled }).await
}

#[server(prefix = "/_app", endpoint = "admin_import")]
pub async fn import_models(
    provider_id: String,
    upstream: Option<Vec<String>>,
) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::Import {
        provider_id,
        upstream: upstream.unwrap_or_default(),
    })
    .await
}

#[server(prefix = "/_app", endpoint = "admin_credential_add")]
pub async fn add_credential(
    provider_id: String,
    label: String,
    api_key: String,
    weight: String,
) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::AddCredential {
        provider_id,
        label,
        api_key,
        weight,
    })
    .await
}

#[server(prefix = "/_app", endpoint = "admin_credential")]
pub async fn save_credential(
    id: String,
    label: String,
    weight: String,
    enabled: Option<String>,
    remove: Option<String>,
) -> Result<Outcome, ServerFnError> {
    if remove.is_some() {
        return run(CatalogOp::RemoveCredential { id }).await;
    }
    run(CatalogOp::SaveCredential {
        id,
        label,
        weight,
        enabled: enabled.is_some(),
    })
    .await
}

#[server(prefix = "/_app", endpoint = "admin_org_price")]
pub async fn set_org_price(
    org: String,
    percent: String,
    note: String,
) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::SetOrgPrice { org, percent, note }).await
}

/// What importing this catalog would change, without changing anything.
#[server(prefix = "/_app", endpoint = "admin_import_preview")]
pub async fn preview_import(
    json: String,
    provider_id: String,
) -> Result<ImportDiff, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.catalog_import_preview(&who, &json, &provider_id)
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "admin_import_apply")]
pub async fn apply_import(json: String, provider_id: String) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::ImportCatalog { json, provider_id }).await
}

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/_app", endpoint = "admin_model")]
pub async fn save_model(
    id: String,
    slug: String,
    name: String,
    description: String,
    context_length: String,
    max_output_tokens: String,
    max_n: String,
    first_byte_timeout_ms: String,
    idle_timeout_ms: String,
    input_modalities: String,
    output_modalities: String,
    supported_parameters: String,
    tokenizer: String,
    enabled: Option<String>,
    hidden: Option<String>,
    sale_input: String,
    sale_output: String,
    markup_percent: String,
) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::SaveModel {
        id,
        slug,
        name,
        description,
        context_length,
        max_output_tokens,
        max_n,
        first_byte_timeout_ms,
        idle_timeout_ms,
        input_modalities,
        output_modalities,
        supported_parameters,
        tokenizer,
        enabled: enabled.is_some(),
        hidden: hidden.is_some(),
        sale_input,
        sale_output,
        markup_percent,
    })
    .await
}

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/_app", endpoint = "admin_endpoint")]
pub async fn save_endpoint(
    id: String,
    upstream_model: String,
    cost_input: String,
    cost_output: String,
    cache_read: String,
    cache_write: String,
    request_price: String,
    web_search: String,
    audio_input: String,
    service_tiers: String,
    max_output_tokens: String,
    priority: String,
    weight: String,
    enabled: Option<String>,
) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::SaveEndpoint {
        id,
        upstream_model,
        cost_input,
        cost_output,
        cache_read,
        cache_write,
        request_price,
        web_search,
        audio_input,
        service_tiers,
        max_output_tokens,
        priority,
        weight,
        enabled: enabled.is_some(),
    })
    .await
}

#[server(prefix = "/_app", endpoint = "admin_markup")]
pub async fn set_default_markup(percent: String) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::SetDefaultMarkup { percent }).await
}

/// Calls the provider (its model list) and says how that went.
#[server(prefix = "/_app", endpoint = "admin_test_provider")]
pub async fn test_provider(id: String) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0.test_provider(&who, &id).await.into())
}

#[server(prefix = "/_app", endpoint = "admin_provider_models")]
pub async fn provider_models(id: String) -> Result<UpstreamList, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.provider_models(&who, &id)
        .await
        .map_err(ServerFnError::new)
}

#[component]
pub fn CatalogAdminPage() -> impl IntoView {
    let provider = ServerAction::<SaveProvider>::new();
    let toggle = ServerAction::<SetProviderEnabled>::new();
    let import = ServerAction::<ImportModels>::new();
    let model = ServerAction::<SaveModel>::new();
    let endpoint = ServerAction::<SaveEndpoint>::new();
    let markup = ServerAction::<SetDefaultMarkup>::new();
    let test = ServerAction::<TestProvider>::new();
    let listing = ServerAction::<ProviderModels>::new();
    let add_key = ServerAction::<AddCredential>::new();
    let key = ServerAction::<SaveCredential>::new();
    let org_price = ServerAction::<SetOrgPrice>::new();
    let preview = ServerAction::<PreviewImport>::new();
    let apply = ServerAction::<ApplyImport>::new();
    let org_form = NodeRef::new();
    clear_on_success(move || org_price.value().get(), org_form);
    // Edit panels the admin has open, kept open when the page is read again after a change.
    let opened = RwSignal::new(std::collections::BTreeSet::<String>::new());
    let data = Resource::new(
        move || {
            provider.version().get()
                + toggle.version().get()
                + import.version().get()
                + model.version().get()
                + endpoint.version().get()
                + markup.version().get()
                + add_key.version().get()
                + key.version().get()
                + org_price.version().get()
                + apply.version().get()
        },
        |_| load_catalog_admin(),
    );
    view! {
        <main class="page admin catalog-admin">
            <h1>"Admin"</h1>
            <nav class="admin-tabs"><a href="/admin">"People and money"</a><a href="/admin/catalog" aria-current="page">"Catalog"</a><a href="/admin/analytics">"Analytics"</a></nav>
            <p class="lede">"Providers, the models they serve at what cost, and what tenants pay. Changes reach the gateway within seconds; a request already admitted keeps its price."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) if crate::account::error_text(&e).contains("sign in") => view! { <Redirect path="/signin?next=/admin/catalog"/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any(),
                    Ok(d) => view! {
                        <section class="panel markup-panel">
                            <h2>"Markup"</h2>
                            <p class="muted">"Tenants pay the provider's cost plus this percentage, unless a provider or a model sets its own markup or a model has a sale price."</p>
                            <ActionForm action=markup attr:class="form inline-form">
                                <label>"Default markup (%)" <input name="percent" inputmode="decimal" required value=d.default_markup_percent.clone()/></label>
                                <button type="submit" class="button ghost">"Save"</button>
                            </ActionForm>
                            {move || outcome_line(markup.value().get())}
                        </section>
                        <section class="panel" id="providers">
                            <h2>"Providers"</h2>
                            <div class="table-wrap">
                            <table class="admin-table providers-table">
                                <thead><tr><th>"Provider"</th><th>"Keys"</th><th>"Markup"</th><th>"Status"</th><th>"Actions"</th></tr></thead>
                                <tbody>
                                    <For each={let list = d.providers.clone(); move || list.clone()} key=row_key children=move |p: ProviderRow| {
                                        let (id_test, id_list, id_toggle) = (p.id.clone(), p.id.clone(), p.id.clone());
                                        let enabled = p.enabled;
                                        view! {
                                            <tr class="provider-row" data-slug=p.slug.clone()>
                                                <td>
                                                    <strong>{p.name.clone()}</strong>" "<span class="slug">{format!("{} · {}", p.slug, p.kind)}</span>
                                                    <div class="mono wrap muted">{p.base_url.clone()}</div>
                                                    {(!p.data_policy.is_empty()).then(|| view! { <div class="muted small">{p.data_policy.clone()}</div> })}
                                                </td>
                                                <td class="keys">
                                                    {if p.credentials.is_empty() {
                                                        view! { <span class="muted">"none"</span> }.into_any()
                                                    } else {
                                                        p.credentials.clone().into_iter().map(|c| view! {
                                                            <div class="key-line" class:muted=!c.enabled>
                                                                {c.label.clone()}" "<span class="mono">{c.hint.clone()}</span>
                                                                <span class="muted small">{if c.enabled { format!(" × {}", c.weight) } else { " off".to_string() }}</span>
                                                            </div>
                                                        }).collect_view().into_any()
                                                    }}
                                                </td>
                                                <td>{p.markup_percent.clone().map_or("default".to_string(), |m| format!("{m} %"))}</td>
                                                <td>
                                                    <span class=if enabled { "status active" } else { "status disabled" }>{if enabled { "enabled" } else { "disabled" }}</span>
                                                    {p.degraded.then(|| view! { " " <span class="status expired provider-degraded">"degraded"</span> })}
                                                </td>
                                                <td class="provider-actions">
                                                    <button type="button" class="button ghost small" on:click=move |_| { test.dispatch(TestProvider { id: id_test.clone() }); }>"Test connection"</button>
                                                    <button type="button" class="button ghost small" on:click=move |_| { listing.dispatch(ProviderModels { id: id_list.clone() }); }>"Import models"</button>
                                                    <button type="button" class="button ghost small" on:click=move |_| { toggle.dispatch(SetProviderEnabled { id: id_toggle.clone(), enabled: !enabled }); }>{if enabled { "Disable" } else { "Enable" }}</button>
                                                </td>
                                            </tr>
                                        }
                                    }/>
                                </tbody>
                            </table>
                            </div>
                            {move || outcome_line(test.value().get()).map(|v| view! { <div class="test-result">{v}</div> })}
                            {move || outcome_line(toggle.value().get())}
                            {move || match listing.value().get() {
                                None => None,
                                Some(Err(e)) => Some(view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any()),
                                Some(Ok(list)) => Some(view! { <ImportList list=list action=import listing=listing/> }.into_any()),
                            }}
                            {move || outcome_line(import.value().get())}
                            <details class="add-provider">
                                <summary class="button ghost">"Add a provider"</summary>
                                <ProviderForm action=provider existing=None/>
                            </details>
                            <For each={let list = d.providers.clone(); move || list.clone()} key=row_key children=move |p: ProviderRow| {
                                let (id_open, id_toggle) = (p.id.clone(), p.id.clone());
                                view! {
                                    <details class="edit-provider" data-slug=p.slug.clone()
                                        open=move || opened.with(|o| o.contains(&id_open))
                                        on:toggle=move |ev| {
                                            let now_open = event_target::<leptos::web_sys::HtmlDetailsElement>(&ev).open();
                                            opened.update(|o| {
                                                if now_open {
                                                    o.insert(id_toggle.clone());
                                                } else {
                                                    o.remove(&id_toggle);
                                                }
                                            });
                                        }>
                                        <summary>{format!("Edit {} and its keys", p.name)}</summary>
                                        <ProviderForm action=provider existing=Some(p.clone())/>
                                        <KeyPool p=p.clone() add=add_key save=key/>
                                    </details>
                                }
                            }/>
                            {move || outcome_line(provider.value().get())}
                            {move || outcome_line(add_key.value().get())}
                            {move || outcome_line(key.value().get())}
                        </section>
                        <section class="panel" id="models">
                            <h2>"Models"</h2>
                            {move || outcome_line(model.value().get())}
                            {move || outcome_line(endpoint.value().get())}
                            {if d.models.is_empty() {
                                view! { <p class="muted empty">"No models yet: import them from a provider above."</p> }.into_any()
                            } else {
                                view! { <For each={let list = d.models.clone(); move || list.clone()} key=row_key children=move |m: AdminModel| view! { <ModelCard m=m model=model endpoint=endpoint/> }/> }.into_any()
                            }}
                        </section>
                        <section class="panel" id="org-prices">
                            <h2>"Organisation prices"</h2>
                            <p class="muted">"An organisation can pay a share of list price: 90 is a 10 % discount, 120 a 20 % surcharge. It applies to every model, on top of markup and sale prices, from its next request."</p>
                            {if d.org_prices.is_empty() {
                                view! { <p class="muted empty">"Every organisation pays list price."</p> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap">
                                    <table class="admin-table org-prices-table">
                                        <thead><tr><th>"Organisation"</th><th class="num">"Pays"</th><th>"Note"</th></tr></thead>
                                        <tbody>
                                            {d.org_prices.clone().into_iter().map(|o| view! {
                                                <tr class="org-price-row"><td>{o.org}</td><td class="num">{format!("{} % of list", o.percent)}</td><td>{o.note}</td></tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    </div>
                                }.into_any()
                            }}
                            <ActionForm action=org_price node_ref=org_form attr:class="form org-price-form">
                                <div class="form-grid">
                                    <label>"Organisation (name)" <input name="org" required placeholder="e.g. Acme Labs"/></label>
                                    <label>"Pays (% of list; blank: list price)" <input name="percent" inputmode="decimal" placeholder="e.g. 90"/></label>
                                    <label class="wide">"Note" <input name="note" placeholder="e.g. annual contract, until 2027-06"/></label>
                                </div>
                                <button type="submit" class="button small">"Save organisation price"</button>
                            </ActionForm>
                            {move || outcome_line(org_price.value().get())}
                        </section>
                        <section class="panel" id="import-catalog">
                            <h2>"Import a catalog"</h2>
                            <p class="muted">"Paste a model list in OpenRouter's " <code>"/api/v1/models"</code> " format, or leave it blank for the starter catalog of well-known models at their public list prices. Its prices become the endpoints' cost. Preview shows what would change; nothing changes until you apply."</p>
                            <ActionForm action=preview attr:class="form import-form">
                                <label class="wide">"Models JSON (blank: the starter catalog)" <textarea name="json" rows="4" placeholder="{\"data\": [{\"id\": \"openai/gpt-4o\", …}]}"></textarea></label>
                                <label>"Serve them through"
                                    <select name="provider_id">
                                        <option value="">"the provider named by each model's author (openai/… → openai)"</option>
                                        {d.providers.clone().into_iter().map(|p| view! { <option value=p.id.clone()>{format!("{} (full ids as upstream names)", p.name)}</option> }).collect_view()}
                                    </select>
                                </label>
                                <button type="submit" class="button ghost">"Preview changes"</button>
                            </ActionForm>
                            {move || match preview.value().get() {
                                None => None,
                                Some(Err(e)) => Some(view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any()),
                                Some(Ok(diff)) => Some(view! { <DiffView diff=diff apply=apply/> }.into_any()),
                            }}
                            {move || outcome_line(apply.value().get())}
                        </section>
                        <section class="panel" id="audit">
                            <h2>"Audit log"</h2>
                            {if d.audit.is_empty() {
                                view! { <p class="muted empty">"No changes yet."</p> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap">
                                    <table class="admin-table audit-table">
                                        <thead><tr><th>"When"</th><th>"Who"</th><th>"What"</th><th>"Change"</th></tr></thead>
                                        <tbody>
                                            {d.audit.clone().into_iter().map(|a| view! {
                                                <tr class="audit-row">
                                                    <td class="nowrap">{a.date}</td>
                                                    <td>{a.actor}</td>
                                                    <td>{a.action}" "<span class="slug">{a.target}</span></td>
                                                    <td class="change">{a.change}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    </div>
                                }.into_any()
                            }}
                        </section>
                    }.into_any(),
                })}
            </Transition>
        </main>
    }
}

/// A list row's identity for keyed rendering: its whole content, so a changed row is built afresh
/// and an unchanged one is left as it is (rows are inserted in sorted order, not appended).
fn row_key<T: std::fmt::Debug>(row: &T) -> String {
    format!("{row:?}")
}

#[component]
fn ProviderForm(
    action: ServerAction<SaveProvider>,
    existing: Option<ProviderRow>,
) -> impl IntoView {
    let p = existing.clone();
    let kind_now = p
        .as_ref()
        .map(|p| p.kind.clone())
        .unwrap_or_else(|| "openai".into());
    let collects = p.as_ref().is_some_and(|p| p.collects_data);
    let v = move |f: fn(&ProviderRow) -> String| p.as_ref().map(f).unwrap_or_default();
    let editing = existing.is_some();
    let form = NodeRef::new();
    if !editing {
        clear_on_success(move || action.value().get(), form);
    }
    view! {
        <ActionForm action=action node_ref=form attr:class="form provider-form">
            <input type="hidden" name="id" value=v(|p| p.id.clone())/>
            <div class="form-grid">
                <label>"Slug" <input name="slug" required pattern="[a-z0-9][a-z0-9\\-]*" placeholder="e.g. openai" value=v(|p| p.slug.clone())/></label>
                <label>"Name" <input name="name" required placeholder="e.g. OpenAI" value=v(|p| p.name.clone())/></label>
                <label>"Kind (wire protocol or service)"
                    <select name="kind">
                        {PROVIDER_KINDS.iter().map(|(value, label)| {
                            let selected = kind_now == *value;
                            view! { <option value=*value selected=selected>{*label}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <label class="wide">"Base URL (blank: the service's own; Azure: https://RESOURCE.openai.azure.com/openai; Bedrock: https://bedrock-runtime.REGION.amazonaws.com)" <input name="base_url" type="url" placeholder="https://api.openai.com/v1" value=v(|p| p.base_url.clone())/></label>
                {if editing {
                    view! { <input type="hidden" name="api_key" value=""/> }.into_any()
                } else {
                    view! { <label class="wide">"API key (blank for servers without one; Bedrock: ACCESS_KEY_ID:SECRET_ACCESS_KEY or a Bedrock API key; add more keys later)"
                        <input name="api_key" type="password" autocomplete="off" placeholder="sk-…"/></label> }.into_any()
                }}
                <label>"Website" <input name="website" type="url" placeholder="https://…" value=v(|p| p.website.clone())/></label>
                <label>"Markup (%; blank: default)" <input name="markup_percent" inputmode="decimal" value=v(|p| p.markup_percent.clone().unwrap_or_default())/></label>
                <label class="wide">"Data policy notes" <input name="data_policy" placeholder="e.g. no training on API data; 30-day retention" value=v(|p| p.data_policy.clone())/></label>
                <label class="wide">"S3 buckets tenants may name (Bedrock only; comma-separated bucket or bucket@account-id; blank: every s3:// location is refused, since Bedrock reads it with the platform's AWS identity)" <input name="s3_buckets" placeholder="e.g. tenant-media@123456789012" value=v(|p| p.s3_buckets.clone())/></label>
                <label class="check wide"><input type="checkbox" name="collects_data" value="1" checked=collects/>"Keeps or trains on prompts (requests that deny data collection avoid it)"</label>
            </div>
            <button type="submit" class="button">{if editing { "Save provider" } else { "Add provider" }}</button>
        </ActionForm>
    }
}

#[component]
fn ImportList(
    list: UpstreamList,
    action: ServerAction<ImportModels>,
    listing: ServerAction<ProviderModels>,
) -> impl IntoView {
    let UpstreamList {
        provider_id,
        provider,
        models,
    } = list;
    // Once models are added, list again so that they show as in the catalog.
    let again = provider_id.clone();
    let seen = action.version().get_untracked();
    Effect::new(move |_| {
        if action.version().get() != seen {
            if let Some(Ok(Outcome::Done(_))) = action.value().get_untracked() {
                listing.dispatch(ProviderModels { id: again.clone() });
            }
        }
    });
    view! {
        <div class="import-list">
            <h3>{format!("Models {provider} offers")}</h3>
            {if models.is_empty() {
                view! { <p class="muted">"The provider lists no models."</p> }.into_any()
            } else {
                view! {
                    <ActionForm action=action attr:class="form">
                        <input type="hidden" name="provider_id" value=provider_id/>
                        <ul class="checks">
                            {models.into_iter().enumerate().map(|(i, m)| view! {
                                <li>
                                    <label class="check">
                                        <input type="checkbox" name=format!("upstream[{i}]") value=m.id.clone() disabled=m.imported/>
                                        <span class="mono">{m.id.clone()}</span>
                                        {m.context_length.map(|c| view! { <span class="muted small">{format!("{c} tokens")}</span> })}
                                        {m.imported.then(|| view! { <span class="status active">"in the catalog"</span> })}
                                    </label>
                                </li>
                            }).collect_view()}
                        </ul>
                        <p class="muted small">"Imported models start with their endpoint off and no price: set the cost below, then turn it on."</p>
                        <button type="submit" class="button">"Add selected"</button>
                    </ActionForm>
                }.into_any()
            }}
        </div>
    }
}

#[component]
fn ModelCard(
    m: AdminModel,
    model: ServerAction<SaveModel>,
    endpoint: ServerAction<SaveEndpoint>,
) -> impl IntoView {
    let live = m.enabled && m.endpoints.iter().any(|e| e.enabled);
    let slug_now = m.slug.clone();
    view! {
        <article class="model-admin" data-slug=m.slug.clone()>
            <header class="model-admin-head">
                <div>
                    <strong>{m.name.clone()}</strong>" "<span class="slug">{m.slug.clone()}</span>
                    <div class="muted small">{format!("{} tokens of context · {} → {} · {}", m.context_length, m.input_modalities, m.output_modalities, m.tokenizer)}</div>
                </div>
                <div class="badges">
                    {if live { view! { <span class="status active">"live"</span> }.into_any() } else { view! { <span class="status disabled">"not served"</span> }.into_any() }}
                    {m.hidden.then(|| view! { <span class="status disabled">"hidden"</span> })}
                    {m.sale_input.is_some().then(|| view! { <span class="status role-admin">"sale price"</span> })}
                </div>
            </header>
            <div class="table-wrap">
            <table class="admin-table endpoints-table">
                <thead><tr><th>"Provider"</th><th>"Upstream model"</th><th class="num">"Cost in / out"</th><th class="num">"Sale in / out"</th><th class="num">"Margin"</th><th>"On"</th><th>"Health (uptime · p50 latency)"</th></tr></thead>
                <tbody>
                    {m.endpoints.clone().into_iter().map(|e| view! {
                        <tr class="endpoint-row" data-provider=e.provider.clone()>
                            <td>{e.provider.clone()}</td>
                            <td class="mono">{e.upstream_model.clone()}</td>
                            <td class="num">{format!("${} / ${}", e.cost_input, e.cost_output)}</td>
                            <td class="num sale">{format!("${} / ${}", e.sale_input, e.sale_output)}<div class="muted small">{e.price_rule.clone()}</div>
                                {e.extras.clone().into_iter().map(|x| view! { <div class="muted small extra-price">{x}</div> }).collect_view()}
                            </td>
                            <td class="num margin">{e.margin.clone()}</td>
                            <td>{if e.enabled { "yes" } else { "no" }}{(e.priority != 0).then(|| view! { <div class="muted small">{format!("priority {}", e.priority)}</div> })}{(e.weight != 100).then(|| view! { <div class="muted small">{if e.weight == 0 { "fallback only".to_string() } else { format!("weight {}", e.weight) }}</div> })}</td>
                            <td class="health" class:degraded=e.degraded>
                                {e.degraded.then(|| view! { <span class="status expired">"degraded"</span> })}
                                {(!e.breaker.is_empty()).then(|| view! { <div class="status expired breaker" title="The circuit breaker took this endpoint out of rotation after repeated failures; it is tried only when nothing else answers, and one request probes it when the wait is over.">{format!("circuit open: {}", e.breaker)}</div> })}
                                {e.health.clone().into_iter().map(|h| view! {
                                    <div class="health-line" title=format!("{} requests · errors {} · latency {} · first token {}", h.requests, h.error_rate, h.latency, h.ttft)>
                                        <span class="muted">{h.window.clone()}</span>" "
                                        {if h.requests == 0 { "no traffic".to_string() } else { format!("{} req · {} up · {}", h.requests, h.uptime, h.latency.split(" · ").next().unwrap_or("")) }}
                                    </div>
                                }).collect_view()}
                            </td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            </div>
            {m.endpoints.clone().into_iter().map(|e| view! {
                <details class="edit-endpoint" data-provider=e.provider.clone()>
                    <summary>{format!("Edit the {} endpoint (cost, limits, priority, on/off)", e.provider)}</summary>
                    <ActionForm action=endpoint attr:class="form endpoint-form">
                        <input type="hidden" name="id" value=e.id.clone()/>
                        <div class="form-grid">
                            <label>"Upstream model" <input name="upstream_model" required value=e.upstream_model.clone()/></label>
                            <label>"Cost per 1M input (USD)" <input name="cost_input" inputmode="decimal" required value=e.cost_input.clone()/></label>
                            <label>"Cost per 1M output (USD)" <input name="cost_output" inputmode="decimal" required value=e.cost_output.clone()/></label>
                            <label>"Cost per 1M cached input read (blank: input price)" <input name="cache_read" inputmode="decimal" value=e.cache_read.clone()/></label>
                            <label>"Cost per 1M cached input written (blank: input price)" <input name="cache_write" inputmode="decimal" value=e.cache_write.clone()/></label>
                            <label>"Cost per request (USD)" <input name="request_price" inputmode="decimal" placeholder="0" value=e.request_price.clone()/></label>
                            <label title="Requests with web_search_options are refused where this is blank">"Cost per web search (USD; blank: refused)" <input name="web_search" inputmode="decimal" value=e.web_search.clone()/></label>
                            <label title="Requests with audio parts are refused where this is blank">"Cost per 1M audio input (USD; blank: refused)" <input name="audio_input" inputmode="decimal" value=e.audio_input.clone()/></label>
                            <label title="A request's service_tier must be one of these (or a default tier); it pays this share of the list price">"Service tiers (% of list price)" <input name="service_tiers" placeholder="flex=50, priority=200" value=e.service_tiers.clone()/></label>
                            <label>"Max output tokens (blank: the model's)" <input name="max_output_tokens" inputmode="numeric" value=e.max_output_tokens.clone()/></label>
                            <label>"Priority (lower is tried first)" <input name="priority" inputmode="numeric" value=e.priority.to_string()/></label>
                            <label>"Weight among equal priority (0: fallback only)" <input name="weight" inputmode="numeric" value=e.weight.to_string()/></label>
                        </div>
                        <div class="checks-row">
                            <label class="check"><input type="checkbox" name="enabled" value="1" checked=e.enabled/>"Serve traffic"</label>
                            <button type="submit" class="button small">"Save endpoint"</button>
                        </div>
                    </ActionForm>
                </details>
            }).collect_view()}
            <details class="edit-model">
                <summary>"Edit model, sale price and markup"</summary>
                <ActionForm action=model attr:class="form model-form">
                    <input type="hidden" name="id" value=m.id.clone()/>
                    <div class="form-grid">
                        <label>"Id (what clients call)" <input name="slug" required value=slug_now.clone()/></label>
                        <label>"Name" <input name="name" required value=m.name.clone()/></label>
                        <label>"Context length (tokens)" <input name="context_length" inputmode="numeric" required value=m.context_length.to_string()/></label>
                        <label title="Every request gets this cap (lower if it asks), and its provider is told it; blank: what a request asks, within the context window, else 4,096">"Max output tokens (blank: 4,096 unless asked)" <input name="max_output_tokens" inputmode="numeric" value=m.max_output_tokens.clone()/></label>
                        <label title="A request asking for more choices (n) is refused">{format!("Most choices per request (n; blank: {DEFAULT_MAX_N})")} <input name="max_n" inputmode="numeric" value=m.max_n.clone()/></label>
                        <label title="How long an upstream may take to start answering">"First-token limit (ms; blank: server's)" <input name="first_byte_timeout_ms" inputmode="numeric" value=m.first_byte_timeout_ms.clone()/></label>
                        <label title="The longest silence allowed once an answer has started">"Idle limit (ms; blank: server's)" <input name="idle_timeout_ms" inputmode="numeric" value=m.idle_timeout_ms.clone()/></label>
                        <label>"Input modalities" <input name="input_modalities" required placeholder="text, image" value=m.input_modalities.clone()/></label>
                        <label>"Output modalities" <input name="output_modalities" required placeholder="text" value=m.output_modalities.clone()/></label>
                        <label>"Tokenizer" <input name="tokenizer" required placeholder="e.g. GPT, Claude, Llama3" value=m.tokenizer.clone()/></label>
                        <label class="wide">"Supported parameters" <input name="supported_parameters" placeholder="max_tokens, temperature, tools, …" value=m.supported_parameters.clone()/></label>
                        <label>"Markup (%; blank: provider's or default)" <input name="markup_percent" inputmode="decimal" value=m.markup_percent.clone().unwrap_or_default()/></label>
                        <label>"Sale price per 1M input (USD)" <input name="sale_input" inputmode="decimal" placeholder="cost + markup" value=m.sale_input.clone().unwrap_or_default()/></label>
                        <label>"Sale price per 1M output (USD)" <input name="sale_output" inputmode="decimal" placeholder="cost + markup" value=m.sale_output.clone().unwrap_or_default()/></label>
                        <label class="wide">"Description" <input name="description" value=m.description.clone()/></label>
                    </div>
                    <div class="checks-row">
                        <label class="check"><input type="checkbox" name="enabled" value="1" checked=m.enabled/>"Enabled"</label>
                        <label class="check"><input type="checkbox" name="hidden" value="1" checked=m.hidden/>"Hidden from the public list"</label>
                    </div>
                    <button type="submit" class="button small">"Save model"</button>
                </ActionForm>
            </details>
        </article>
    }
}

#[component]
fn KeyPool(
    p: ProviderRow,
    add: ServerAction<AddCredential>,
    save: ServerAction<SaveCredential>,
) -> impl IntoView {
    let form = NodeRef::new();
    clear_on_success(move || add.value().get(), form);
    view! {
        <div class="key-pool">
            <h3>{format!("Keys of {}", p.name)}</h3>
            <p class="muted small">"Each request draws one enabled key in proportion to the weights; a key that fails is not tried again within the same request. Keys are stored encrypted and never shown again."</p>
            {p.credentials.clone().into_iter().map(|c| view! {
                <ActionForm action=save attr:class="form key-form inline-form">
                    <input type="hidden" name="id" value=c.id.clone()/>
                    <span class="mono key-hint">{c.hint.clone()}</span>
                    <label>"Label" <input name="label" required value=c.label.clone()/></label>
                    <label>"Weight" <input name="weight" inputmode="numeric" required value=c.weight.to_string()/></label>
                    <label class="check"><input type="checkbox" name="enabled" value="1" checked=c.enabled/>"On"</label>
                    <button type="submit" class="button ghost small">"Save key"</button>
                    <button type="submit" name="remove" value="1" class="button ghost small danger">"Remove"</button>
                </ActionForm>
            }).collect_view()}
            <ActionForm action=add node_ref=form attr:class="form add-key-form">
                <input type="hidden" name="provider_id" value=p.id.clone()/>
                <div class="form-grid">
                    <label>"Label" <input name="label" required placeholder="e.g. team-b"/></label>
                    <label>"API key" <input name="api_key" type="password" autocomplete="off" required placeholder="sk-…"/></label>
                    <label>"Weight" <input name="weight" inputmode="numeric" value="1"/></label>
                </div>
                <button type="submit" class="button small">"Add key"</button>
            </ActionForm>
        </div>
    }
}

#[component]
fn DiffView(diff: ImportDiff, apply: ServerAction<ApplyImport>) -> impl IntoView {
    let lines = |title: &'static str, class: &'static str, v: Vec<DiffLine>| {
        (!v.is_empty()).then(|| {
            view! {
                <h4>{format!("{title} ({})", v.len())}</h4>
                <ul class=format!("diff-list {class}")>
                    {v.into_iter().map(|l| view! { <li><span class="mono">{l.slug}</span>" "<span class="muted">{l.detail}</span></li> }).collect_view()}
                </ul>
            }
        })
    };
    let nothing = diff.added.is_empty() && diff.changed.is_empty() && diff.removed.is_empty();
    view! {
        <div class="import-diff">
            <h3>"What the import would change"</h3>
            <p class="muted">{format!("{} new · {} changed · {} removed · {} unchanged", diff.added.len(), diff.changed.len(), diff.removed.len(), diff.unchanged)}</p>
            {lines("New", "added", diff.added)}
            {lines("Changed", "changed", diff.changed)}
            {lines("Removed (their endpoints are turned off)", "removed", diff.removed)}
            {lines("Skipped", "skipped", diff.skipped)}
            {if nothing {
                view! { <p class="muted">"Nothing to apply: the catalog already matches."</p> }.into_any()
            } else {
                view! {
                    <ActionForm action=apply attr:class="form">
                        <input type="hidden" name="json" value=diff.json/>
                        <input type="hidden" name="provider_id" value=diff.provider_id/>
                        <button type="submit" class="button">"Apply these changes"</button>
                    </ActionForm>
                }.into_any()
            }}
        </div>
    }
}
