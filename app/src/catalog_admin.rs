//! The catalog in the admin area (`/admin/catalog`): providers and their keys, importing a provider's
//! models, models and their endpoints with cost, sale price and margin side by side, markup at every
//! level, and the audit log of every change.

use crate::account::{form_message, outcome_line, Outcome};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogAdmin {
    pub default_markup_percent: String,
    pub providers: Vec<ProviderRow>,
    pub models: Vec<AdminModel>,
    pub audit: Vec<AuditRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    /// "••••abcd" when a key is stored (the key itself is never shown again).
    pub key_hint: Option<String>,
    pub enabled: bool,
    pub website: String,
    pub data_policy: String,
    /// The provider's own markup, when it has one.
    pub markup_percent: Option<String>,
    pub endpoints: u32,
    /// One of its endpoints is degraded.
    pub degraded: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminModel {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub context_length: u64,
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
    /// "9.09 %", or "—" when nothing is charged.
    pub margin: String,
    /// Where its price comes from: "default markup 10 %", "provider markup 20 %", "sale price".
    pub price_rule: String,
    /// Over the last 5 minutes, 1 hour and 1 day.
    pub health: Vec<HealthView>,
    /// Its recent error rate passed the platform's threshold.
    pub degraded: bool,
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
    /// Adds (no id) or edits a provider. A blank `api_key` keeps the stored one.
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
    },
    SetProviderEnabled {
        id: String,
        enabled: bool,
    },
    /// Adds the provider's upstream models: a model per id (or a new endpoint of an existing one).
    Import {
        provider_id: String,
        upstream: Vec<String>,
    },
    SaveModel {
        id: String,
        name: String,
        description: String,
        context_length: String,
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
        enabled: bool,
    },
    SetDefaultMarkup {
        percent: String,
    },
}

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

#[allow(clippy::too_many_arguments)]
#[server(prefix = "/_app", endpoint = "admin_model")]
pub async fn save_model(
    id: String,
    name: String,
    description: String,
    context_length: String,
    enabled: Option<String>,
    hidden: Option<String>,
    sale_input: String,
    sale_output: String,
    markup_percent: String,
) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::SaveModel {
        id,
        name,
        description,
        context_length,
        enabled: enabled.is_some(),
        hidden: hidden.is_some(),
        sale_input,
        sale_output,
        markup_percent,
    })
    .await
}

#[server(prefix = "/_app", endpoint = "admin_endpoint")]
pub async fn save_endpoint(
    id: String,
    upstream_model: String,
    cost_input: String,
    cost_output: String,
    enabled: Option<String>,
) -> Result<Outcome, ServerFnError> {
    run(CatalogOp::SaveEndpoint {
        id,
        upstream_model,
        cost_input,
        cost_output,
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
    let data = Resource::new(
        move || {
            provider.version().get()
                + toggle.version().get()
                + import.version().get()
                + model.version().get()
                + endpoint.version().get()
                + markup.version().get()
        },
        |_| load_catalog_admin(),
    );
    view! {
        <main class="page admin catalog-admin">
            <h1>"Admin"</h1>
            <nav class="admin-tabs"><a href="/admin">"People and money"</a><a href="/admin/catalog" aria-current="page">"Catalog"</a></nav>
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
                                <thead><tr><th>"Provider"</th><th>"Key"</th><th>"Markup"</th><th>"Status"</th><th>"Actions"</th></tr></thead>
                                <tbody>
                                    {d.providers.clone().into_iter().map(|p| {
                                        let (id_test, id_list, id_toggle) = (p.id.clone(), p.id.clone(), p.id.clone());
                                        let enabled = p.enabled;
                                        view! {
                                            <tr class="provider-row" data-slug=p.slug.clone()>
                                                <td>
                                                    <strong>{p.name.clone()}</strong>" "<span class="slug">{format!("{} · {}", p.slug, p.kind)}</span>
                                                    <div class="mono wrap muted">{p.base_url.clone()}</div>
                                                    {(!p.data_policy.is_empty()).then(|| view! { <div class="muted small">{p.data_policy.clone()}</div> })}
                                                </td>
                                                <td class="mono">{p.key_hint.clone().unwrap_or_else(|| "none".into())}</td>
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
                                    }).collect_view()}
                                </tbody>
                            </table>
                            </div>
                            {move || outcome_line(test.value().get()).map(|v| view! { <div class="test-result">{v}</div> })}
                            {move || outcome_line(toggle.value().get())}
                            {move || match listing.value().get() {
                                None => None,
                                Some(Err(e)) => Some(view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any()),
                                Some(Ok(list)) => Some(view! { <ImportList list=list action=import/> }.into_any()),
                            }}
                            {move || outcome_line(import.value().get())}
                            <details class="add-provider">
                                <summary class="button ghost">"Add a provider"</summary>
                                <ProviderForm action=provider existing=None/>
                            </details>
                            {d.providers.clone().into_iter().map(|p| view! {
                                <details class="edit-provider">
                                    <summary>{format!("Edit {}", p.name)}</summary>
                                    <ProviderForm action=provider existing=Some(p.clone())/>
                                </details>
                            }).collect_view()}
                            {move || outcome_line(provider.value().get())}
                        </section>
                        <section class="panel" id="models">
                            <h2>"Models"</h2>
                            {move || outcome_line(model.value().get())}
                            {move || outcome_line(endpoint.value().get())}
                            {if d.models.is_empty() {
                                view! { <p class="muted empty">"No models yet: import them from a provider above."</p> }.into_any()
                            } else {
                                d.models.clone().into_iter().map(|m| view! { <ModelCard m=m model=model endpoint=endpoint/> }).collect_view().into_any()
                            }}
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

#[component]
fn ProviderForm(
    action: ServerAction<SaveProvider>,
    existing: Option<ProviderRow>,
) -> impl IntoView {
    let p = existing.clone();
    let v = move |f: fn(&ProviderRow) -> String| p.as_ref().map(f).unwrap_or_default();
    let editing = existing.is_some();
    view! {
        <ActionForm action=action attr:class="form provider-form">
            <input type="hidden" name="id" value=v(|p| p.id.clone())/>
            <div class="form-grid">
                <label>"Slug" <input name="slug" required pattern="[a-z0-9][a-z0-9\\-]*" placeholder="e.g. openai" value=v(|p| p.slug.clone())/></label>
                <label>"Name" <input name="name" required placeholder="e.g. OpenAI" value=v(|p| p.name.clone())/></label>
                <label>"Kind (wire protocol)"
                    <select name="kind">
                        <option value="openai">"OpenAI-compatible"</option>
                    </select>
                </label>
                <label class="wide">"Base URL" <input name="base_url" required type="url" placeholder="https://api.openai.com/v1" value=v(|p| p.base_url.clone())/></label>
                <label class="wide">{if editing { "API key (blank keeps the saved one)" } else { "API key" }}
                    <input name="api_key" type="password" autocomplete="off" placeholder=if editing { v(|p| p.key_hint.clone().unwrap_or_default()) } else { "sk-…".to_string() }/></label>
                <label>"Website" <input name="website" type="url" placeholder="https://…" value=v(|p| p.website.clone())/></label>
                <label>"Markup (%; blank: default)" <input name="markup_percent" inputmode="decimal" value=v(|p| p.markup_percent.clone().unwrap_or_default())/></label>
                <label class="wide">"Data policy notes" <input name="data_policy" placeholder="e.g. no training on API data; 30-day retention" value=v(|p| p.data_policy.clone())/></label>
            </div>
            <button type="submit" class="button">{if editing { "Save provider" } else { "Add provider" }}</button>
        </ActionForm>
    }
}

#[component]
fn ImportList(list: UpstreamList, action: ServerAction<ImportModels>) -> impl IntoView {
    let UpstreamList {
        provider_id,
        provider,
        models,
    } = list;
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
    view! {
        <article class="model-admin" data-slug=m.slug.clone()>
            <header class="model-admin-head">
                <div>
                    <strong>{m.name.clone()}</strong>" "<span class="slug">{m.slug.clone()}</span>
                    <div class="muted small">{format!("{} tokens of context", m.context_length)}</div>
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
                            <td class="num sale">{format!("${} / ${}", e.sale_input, e.sale_output)}<div class="muted small">{e.price_rule.clone()}</div></td>
                            <td class="num margin">{e.margin.clone()}</td>
                            <td>{if e.enabled { "yes" } else { "no" }}</td>
                            <td class="health" class:degraded=e.degraded>
                                {e.degraded.then(|| view! { <span class="status expired">"degraded"</span> })}
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
                    <summary>{format!("Edit the {} endpoint (cost, upstream name, on/off)", e.provider)}</summary>
                    <ActionForm action=endpoint attr:class="form endpoint-form">
                        <input type="hidden" name="id" value=e.id.clone()/>
                        <div class="form-grid">
                            <label>"Upstream model" <input name="upstream_model" required value=e.upstream_model.clone()/></label>
                            <label>"Cost per 1M input (USD)" <input name="cost_input" inputmode="decimal" required value=e.cost_input.clone()/></label>
                            <label>"Cost per 1M output (USD)" <input name="cost_output" inputmode="decimal" required value=e.cost_output.clone()/></label>
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
                        <label>"Name" <input name="name" required value=m.name.clone()/></label>
                        <label>"Context length (tokens)" <input name="context_length" inputmode="numeric" required value=m.context_length.to_string()/></label>
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
