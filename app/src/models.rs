//! The public model pages (no sign-in): `/models`, searchable and filterable by provider, modality,
//! context and price; `/models/{author}/{slug}`, one model with its providers, prices and a request to
//! copy.

use crate::{dollars, format_context, grouped, ModelCard};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

/// One provider serving a model, as tenants pay for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCard {
    pub provider: String,
    /// Tenant prices per million tokens, exact decimal USD.
    pub input_usd_per_mtok: String,
    pub output_usd_per_mtok: String,
    pub cache_read_usd_per_mtok: Option<String>,
    pub request_usd: Option<String>,
    pub max_output_tokens: Option<u64>,
    /// "99.5 %" over the last day, or None without traffic.
    pub uptime: Option<String>,
}

/// A model's own page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDetail {
    pub card: ModelCard,
    pub supported_parameters: Vec<String>,
    pub tokenizer: String,
    pub max_output_tokens: Option<u64>,
    pub endpoints: Vec<EndpointCard>,
    /// Where the API is (".../api/v1").
    pub api_base: String,
}

#[server(prefix = "/_app", endpoint = "model")]
pub async fn load_model(slug: String) -> Result<Option<ModelDetail>, ServerFnError> {
    let source = use_context::<crate::CatalogSource>()
        .ok_or_else(|| ServerFnError::new("the catalog is not available"))?;
    Ok(source.0.model_detail(&slug).await)
}

/// What the filters ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Filters {
    query: String,
    provider: String,
    modality: String,
    min_context: u64,
    /// Largest input price per million tokens, in nano-USD (0: any).
    max_input_nanos: i64,
    sort: String,
}

fn keep(m: &ModelCard, f: &Filters) -> bool {
    let q = f.query.trim().to_lowercase();
    (q.is_empty()
        || m.name.to_lowercase().contains(&q)
        || m.slug.to_lowercase().contains(&q)
        || m.description.to_lowercase().contains(&q)
        || m.providers.iter().any(|p| p.to_lowercase().contains(&q)))
        && (f.provider.is_empty() || m.providers.contains(&f.provider))
        && (f.modality.is_empty() || m.input_modalities.contains(&f.modality))
        && m.context_length >= f.min_context
        && (f.max_input_nanos == 0 || m.input_nanos_per_mtok <= f.max_input_nanos)
}

fn sorted(mut v: Vec<ModelCard>, how: &str) -> Vec<ModelCard> {
    match how {
        "price" => v.sort_by_key(|m| (m.input_nanos_per_mtok, m.slug.clone())),
        "context" => v.sort_by(|a, b| {
            b.context_length
                .cmp(&a.context_length)
                .then(a.slug.cmp(&b.slug))
        }),
        "newest" => v.sort_by(|a, b| b.created.cmp(&a.created).then(a.slug.cmp(&b.slug))),
        _ => v.sort_by_key(|m| m.name.to_lowercase()),
    }
    v
}

#[component]
pub fn ModelsPage() -> impl IntoView {
    let models = Resource::new(|| (), |_| crate::list_models());
    let filters = RwSignal::new(Filters::default());
    view! {
        <main class="page models-page">
            <h1>"Models"</h1>
            <p class="lede">"Every model this platform serves, at the price you pay per million tokens. One API key calls all of them."</p>
            <Suspense fallback=|| view! { <p class="muted">"Loading models…"</p> }>
                {move || models.get().map(|r| match r {
                    Err(e) => view! { <p class="error">"Could not load the models: " {e.to_string()}</p> }.into_any(),
                    Ok(list) => view! { <Browser list=list filters=filters/> }.into_any(),
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn Browser(list: Vec<ModelCard>, filters: RwSignal<Filters>) -> impl IntoView {
    let total = list.len();
    let mut providers: Vec<String> = list.iter().flat_map(|m| m.providers.clone()).collect();
    providers.sort();
    providers.dedup();
    let mut modalities: Vec<String> = list
        .iter()
        .flat_map(|m| m.input_modalities.clone())
        .collect();
    modalities.sort();
    modalities.dedup();
    let list = StoredValue::new(list);
    let visible = move || {
        let f = filters.get();
        sorted(
            list.with_value(|l| l.iter().filter(|m| keep(m, &f)).cloned().collect()),
            &f.sort,
        )
    };
    let set = move |edit: fn(&mut Filters, String)| {
        move |ev| {
            let v = event_target_value(&ev);
            filters.update(|f| edit(f, v));
        }
    };
    view! {
        <form class="model-filters" on:submit=|ev| ev.prevent_default()>
            <input type="search" class="filter" name="q" placeholder="Search models" aria-label="Search models"
                prop:value=move || filters.get().query
                on:input=set(|f, v| f.query = v)/>
            <label>"Provider"
                <select name="provider" on:change=set(|f, v| f.provider = v)>
                    <option value="">"Any"</option>
                    {providers.into_iter().map(|p| view! { <option value=p.clone()>{p.clone()}</option> }).collect_view()}
                </select>
            </label>
            <label>"Input"
                <select name="modality" on:change=set(|f, v| f.modality = v)>
                    <option value="">"Any"</option>
                    {modalities.into_iter().map(|m| view! { <option value=m.clone()>{m.clone()}</option> }).collect_view()}
                </select>
            </label>
            <label>"Context"
                <select name="context" on:change=set(|f, v| f.min_context = v.parse().unwrap_or(0))>
                    <option value="0">"Any"</option>
                    <option value="32000">"32K+"</option>
                    <option value="128000">"128K+"</option>
                    <option value="200000">"200K+"</option>
                    <option value="1000000">"1M+"</option>
                </select>
            </label>
            <label>"Input price"
                <select name="price" on:change=set(|f, v| f.max_input_nanos = v.parse().unwrap_or(0))>
                    <option value="0">"Any"</option>
                    <option value="500000000">"≤ $0.50 / 1M"</option>
                    <option value="1000000000">"≤ $1 / 1M"</option>
                    <option value="5000000000">"≤ $5 / 1M"</option>
                </select>
            </label>
            <label>"Sort"
                <select name="sort" on:change=set(|f, v| f.sort = v)>
                    <option value="name">"Name"</option>
                    <option value="price">"Input price"</option>
                    <option value="context">"Context"</option>
                    <option value="newest">"Newest"</option>
                </select>
            </label>
        </form>
        <p class="muted count" aria-live="polite">{move || {
            let n = visible().len();
            if n == 0 { "No model matches these filters.".to_string() } else { format!("{n} of {total} models") }
        }}</p>
        <ul class="model-cards">
            <For each=visible key=|m| m.slug.clone() children=move |m: ModelCard| view! {
                <li class="model-card" data-slug=m.slug.clone()>
                    <a class="model-card-link" href=format!("/models/{}", m.slug)>
                        <div class="model-card-head">
                            <span class="model-name">{m.name.clone()}</span>
                            <span class="price">{format!("{} in · {} out", dollars(&m.input_usd_per_mtok), dollars(&m.output_usd_per_mtok))}<span class="muted">" / 1M tokens"</span></span>
                        </div>
                        <code class="slug">{m.slug.clone()}</code>
                        <p class="desc">{m.description.clone()}</p>
                        <div class="facts muted small">
                            <span>{format!("{} context", format_context(m.context_length))}</span>
                            <span>{format!("{} → {}", m.input_modalities.join(", "), m.output_modalities.join(", "))}</span>
                            <span>{m.providers.join(", ")}</span>
                        </div>
                    </a>
                </li>
            }/>
        </ul>
    }
}

#[component]
pub fn ModelPage() -> impl IntoView {
    let params = use_params_map();
    let slug = move || {
        let p = params.get();
        format!(
            "{}/{}",
            p.get("author").unwrap_or_default(),
            p.get("slug").unwrap_or_default()
        )
    };
    let detail = Resource::new(slug, load_model);
    view! {
        <main class="page model-page">
            <p class="crumbs"><a href="/models">"← All models"</a></p>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || detail.get().map(|r| match r {
                    Err(e) => view! { <p class="error">"Could not load the model: " {e.to_string()}</p> }.into_any(),
                    Ok(None) => view! {
                        <h1>"No such model"</h1>
                        <p class="muted">{format!("This platform does not serve “{}”. ", slug())}<a href="/models">"See the models it serves."</a></p>
                    }.into_any(),
                    Ok(Some(d)) => view! { <ModelView d=d/> }.into_any(),
                })}
            </Suspense>
        </main>
    }
}

fn snippets(d: &ModelDetail) -> (String, String) {
    let curl = format!(
        "curl {base}/chat/completions \\\n  -H \"Authorization: Bearer $SWITCHYARD_API_KEY\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'",
        base = d.api_base,
        model = d.card.slug
    );
    let python = format!(
        "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{base}\", api_key=os.environ[\"SWITCHYARD_API_KEY\"])\nreply = client.chat.completions.create(\n    model=\"{model}\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(reply.choices[0].message.content)",
        base = d.api_base,
        model = d.card.slug
    );
    (curl, format!("import os\n{python}"))
}

#[component]
fn ModelView(d: ModelDetail) -> impl IntoView {
    let (curl, python) = snippets(&d);
    let (copied, set_copied) = signal(None::<bool>);
    let (tab, set_tab) = signal("curl");
    let c = d.card.clone();
    let shown = {
        let (curl, python) = (curl.clone(), python.clone());
        move || {
            if tab.get() == "curl" {
                curl.clone()
            } else {
                python.clone()
            }
        }
    };
    let to_copy = shown.clone();
    view! {
        <header class="model-head">
            <h1>{c.name.clone()}</h1>
            <code class="slug big">{c.slug.clone()}</code>
        </header>
        <p class="lede">{if c.description.is_empty() { "No description yet.".to_string() } else { c.description.clone() }}</p>
        <dl class="model-facts">
            <div><dt>"Input"</dt><dd class="price">{dollars(&c.input_usd_per_mtok)}<span class="muted">" / 1M tokens"</span></dd></div>
            <div><dt>"Output"</dt><dd class="price">{dollars(&c.output_usd_per_mtok)}<span class="muted">" / 1M tokens"</span></dd></div>
            <div><dt>"Context"</dt><dd>{format!("{} tokens", grouped(c.context_length))}</dd></div>
            <div><dt>"Max output"</dt><dd>{d.max_output_tokens.map_or("up to the context".to_string(), |m| format!("{} tokens", grouped(m)))}</dd></div>
            <div><dt>"Modalities"</dt><dd>{format!("{} → {}", c.input_modalities.join(", "), c.output_modalities.join(", "))}</dd></div>
            <div><dt>"Tokenizer"</dt><dd>{d.tokenizer.clone()}</dd></div>
        </dl>
        <section class="panel">
            <h2>"Providers"</h2>
            <p class="muted">"Requests go to the first provider that answers, in this order; you pay the price of the one that served you."</p>
            <div class="table-wrap">
            <table class="admin-table model-providers">
                <thead><tr><th>"Provider"</th><th class="num">"Input / 1M"</th><th class="num">"Output / 1M"</th><th class="num">"Cached input / 1M"</th><th class="num">"Max output"</th><th class="num">"Uptime (1 day)"</th></tr></thead>
                <tbody>
                    {d.endpoints.clone().into_iter().map(|e| view! {
                        <tr class="provider-line">
                            <td>{e.provider.clone()}{e.request_usd.clone().map(|r| view! { <div class="muted small">{format!("+ {} per request", dollars(&r))}</div> })}</td>
                            <td class="num">{dollars(&e.input_usd_per_mtok)}</td>
                            <td class="num">{dollars(&e.output_usd_per_mtok)}</td>
                            <td class="num">{e.cache_read_usd_per_mtok.clone().map_or("—".to_string(), |p| dollars(&p))}</td>
                            <td class="num">{e.max_output_tokens.map_or("—".to_string(), grouped)}</td>
                            <td class="num">{e.uptime.clone().unwrap_or_else(|| "no traffic yet".into())}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            </div>
        </section>
        <section class="panel">
            <h2>"Call it"</h2>
            <div class="tabs" role="tablist">
                <button type="button" role="tab" class="tab" aria-selected=move || (tab.get() == "curl").to_string() on:click=move |_| set_tab.set("curl")>"curl"</button>
                <button type="button" role="tab" class="tab" aria-selected=move || (tab.get() == "python").to_string() on:click=move |_| set_tab.set("python")>"Python (openai)"</button>
                <button type="button" class="button ghost small copy" on:click=move |_| crate::keys::copy_to_clipboard(to_copy(), set_copied)>
                    {move || match copied.get() { Some(true) => "Copied", Some(false) => "Copy failed: select the text", None => "Copy" }}
                </button>
            </div>
            <pre class="snippet request-example"><code>{shown}</code></pre>
            <p class="muted small">"Create a key on the " <a href="/keys">"keys page"</a> " and set " <code>"SWITCHYARD_API_KEY"</code> ". Parameters this model honours: " {d.supported_parameters.join(", ")} "."</p>
        </section>
    }
}
