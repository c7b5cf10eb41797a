//! Switchyard's web UI: pages and components rendered on the server (feature `ssr`) and hydrated in the
//! browser (feature `hydrate`). Domain data reaches the UI through traits the server implements and
//! provides as context; this crate never depends on the server.

// The pages' view types nest deeply; hydration code needs more than the default 128.
#![recursion_limit = "256"]

pub mod account;
pub mod admin;
pub mod billing;
pub mod catalog_admin;
pub mod keys;
pub mod models;
pub mod orgs;
pub mod usage;
pub mod usage_ui;

use account::{
    current_user, Me, ResetPage, SignInPage, SignUpPage, UserMenu, VerifyBanner, VerifyPage,
};
use admin::AdminPage;
use billing::{BillingPage, PurchaseDonePage};
use keys::KeysPage;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};
use orgs::{InvitePage, OrgPage};
use serde::{Deserialize, Serialize};

/// A model as the public catalog shows it: tenant prices after markup, as exact decimal USD strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCard {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub context_length: u64,
    pub input_usd_per_mtok: String,
    pub output_usd_per_mtok: String,
    /// The input price again, as an integer to compare (nano-USD per million tokens).
    pub input_nanos_per_mtok: i64,
    pub input_modalities: Vec<String>,
    pub output_modalities: Vec<String>,
    pub providers: Vec<String>,
    /// When it joined the catalog (Unix ms).
    pub created: i64,
}

/// The password rules, shown to people before they submit and enforced by the server with the same code.
pub const PASSWORD_RULES: &[&str] = &[
    "at least 10 characters",
    "at most 128 characters",
    "not your email address",
    "not one character repeated",
];

/// The rules a password breaks (empty when it is acceptable).
pub fn password_problems(password: &str, email: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let n = password.chars().count();
    if n < 10 {
        out.push(PASSWORD_RULES[0]);
    }
    if n > 128 {
        out.push(PASSWORD_RULES[1]);
    }
    if !email.is_empty() && password.trim().eq_ignore_ascii_case(email.trim()) {
        out.push(PASSWORD_RULES[2]);
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next() {
        if chars.all(|c| c == first) {
            out.push(PASSWORD_RULES[3]);
        }
    }
    out
}

/// The catalog as the UI may read it; implemented by the server.
pub trait PublicCatalog: Send + Sync + 'static {
    fn model_cards(&self) -> Vec<ModelCard>;
    /// One listed model with its providers (None when there is no such public model).
    fn model_detail<'a>(
        &'a self,
        slug: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<models::ModelDetail>> + Send + 'a>>;
}

/// Context handle for the catalog (provided by the server for every request).
#[derive(Clone)]
pub struct CatalogSource(pub std::sync::Arc<dyn PublicCatalog>);

#[server(prefix = "/_app", endpoint = "models")]
pub async fn list_models() -> Result<Vec<ModelCard>, ServerFnError> {
    let source = use_context::<CatalogSource>()
        .ok_or_else(|| ServerFnError::new("the catalog is not available"))?;
    Ok(source.0.model_cards())
}

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/assets/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser: this flips once the page is hydrated and interactive.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <Stylesheet id="switchyard" href="/assets/switchyard.css"/>
        <Title text="Switchyard"/>
        <Router>
            <Shell hydrated/>
        </Router>
    }
}

/// Header, banner and pages; inside the router so that the signed-in user is re-read on navigation.
#[component]
fn Shell(hydrated: RwSignal<bool>) -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    let me = Resource::new(move || location.pathname.get(), |_| current_user());
    provide_context(Me(me));
    view! {
            <header class="topbar" data-hydrated=move || hydrated.get().to_string()>
                <a class="brand" href="/">
                    <span class="brand-mark" aria-hidden="true">"⇄"</span>
                    "Switchyard"
                </a>
                <nav class="topnav">
                    <a href="/models">"Models"</a>
                    <a href="/api/v1/models">"API"</a>
                    <UserMenu/>
                </nav>
            </header>
            <VerifyBanner/>
            <Routes fallback=|| view! { <NotFound/> }>
                <Route path=path!("") view=Home/>
                <Route path=path!("signin") view=SignInPage/>
                <Route path=path!("signup") view=SignUpPage/>
                <Route path=path!("verify") view=VerifyPage/>
                <Route path=path!("reset") view=ResetPage/>
                <Route path=path!("dashboard") view=usage_ui::OverviewPage/>
                <Route path=path!("activity") view=usage_ui::ActivityLogPage/>
                <Route path=path!("keys") view=KeysPage/>
                <Route path=path!("org") view=OrgPage/>
                <Route path=path!("billing") view=BillingPage/>
                <Route path=path!("billing/success") view=PurchaseDonePage/>
                <Route path=path!("invite") view=InvitePage/>
                <Route path=path!("admin") view=AdminPage/>
                <Route path=path!("admin/catalog") view=catalog_admin::CatalogAdminPage/>
                <Route path=path!("admin/analytics") view=usage_ui::AnalyticsPage/>
                <Route path=path!("models") view=models::ModelsPage/>
                <Route path=path!("models/:author/:slug") view=models::ModelPage/>
            </Routes>
    }
}

#[component]
fn Home() -> impl IntoView {
    let models = Resource::new(|| (), |_| list_models());
    let (query, set_query) = signal(String::new());
    view! {
        <main class="page">
            <section class="hero">
                <h1>"Every model, one endpoint."</h1>
                <p class="lede">
                    "Switchyard gives you one OpenAI-compatible API and one key for every model in this catalog. "
                    "Prepaid credits, charged per request at the price shown below."
                </p>
                <p class="cta">
                    <a class="button" href="/signup">"Create an account"</a>
                    <a href="/models">"See the models"</a>
                </p>
                <pre class="snippet">
                    <code>
                        "curl $SWITCHYARD/api/v1/chat/completions \\\n"
                        "  -H \"Authorization: Bearer $SWITCHYARD_API_KEY\" \\\n"
                        "  -H 'Content-Type: application/json' \\\n"
                        "  -d '{\"model\": \"<model id>\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"
                    </code>
                </pre>
            </section>
            <section class="models" id="models">
                <div class="models-head">
                    <h2>"Models"</h2>
                    <input
                        type="search"
                        class="filter"
                        placeholder="Filter by name, id or provider"
                        aria-label="Filter models"
                        prop:value=query
                        on:input=move |ev| set_query.set(event_target_value(&ev))
                    />
                </div>
                <Suspense fallback=|| view! { <p class="muted">"Loading models…"</p> }>
                    {move || {
                        models
                            .get()
                            .map(|r| match r {
                                Ok(list) => view! { <ModelTable list=list query=query/> }.into_any(),
                                Err(e) => {
                                    view! { <p class="error">"Could not load the models: " {e.to_string()}</p> }
                                        .into_any()
                                }
                            })
                    }}
                </Suspense>
            </section>
        </main>
    }
}

fn matches(m: &ModelCard, q: &str) -> bool {
    q.is_empty()
        || m.name.to_lowercase().contains(q)
        || m.slug.to_lowercase().contains(q)
        || m.providers.iter().any(|p| p.to_lowercase().contains(q))
}

/// The platform fee on a purchase of `credits_cents`: `bp` basis points rounded up to the cent, at least
/// `min_cents`; no fee at all when `bp` is 0. The billing page previews it and the server charges it.
pub fn purchase_fee_cents(credits_cents: i64, bp: u32, min_cents: i64) -> i64 {
    if bp == 0 || credits_cents <= 0 {
        return 0;
    }
    ((credits_cents * bp as i64 + 9_999) / 10_000).max(min_cents)
}

/// Asks the person to confirm (the browser's dialog); false before hydration.
#[cfg(feature = "hydrate")]
pub(crate) fn confirm(message: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.confirm_with_message(message).ok())
        .unwrap_or(false)
}

#[cfg(not(feature = "hydrate"))]
pub(crate) fn confirm(_message: &str) -> bool {
    false
}

/// "$3.3" reads as a typo: money shows at least cents ("3.30"), and every digit beyond that it has.
pub(crate) fn dollars(exact: &str) -> String {
    match exact.split_once('.') {
        Some((i, f)) if f.len() < 2 => format!("${i}.{f:0<2}"),
        Some(_) => format!("${exact}"),
        None => format!("${exact}.00"),
    }
}

/// A balance to the cent, cut (not rounded) so it never shows more than there is: "$9.99" for 9.99995.
pub(crate) fn cents(exact: &str) -> String {
    let (int, frac) = exact.split_once('.').unwrap_or((exact, ""));
    format!("${int}.{:0<2}", &frac[..frac.len().min(2)])
}

fn format_context(tokens: u64) -> String {
    if tokens >= 1_000_000 {
        // 1047576 → "1.05M": two decimals at most, trailing zeros dropped.
        let hundredths = (tokens + 5_000) / 10_000;
        let s = format!("{}.{:02}", hundredths / 100, hundredths % 100);
        format!("{}M", s.trim_end_matches('0').trim_end_matches('.'))
    } else if tokens >= 1000 {
        format!("{}K", tokens / 1000)
    } else {
        tokens.to_string()
    }
}

/// 128000 → "128,000".
pub(crate) fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod number_tests {
    #[test]
    fn numbers_read_well() {
        assert_eq!(super::format_context(1_047_576), "1.05M");
        assert_eq!(super::format_context(1_000_000), "1M");
        assert_eq!(super::format_context(2_000_000), "2M");
        assert_eq!(super::format_context(131_072), "131K");
        assert_eq!(super::grouped(128_000), "128,000");
        assert_eq!(super::grouped(999), "999");
        assert_eq!(super::grouped(1_047_576), "1,047,576");
    }
}

#[component]
fn ModelTable(list: Vec<ModelCard>, query: ReadSignal<String>) -> impl IntoView {
    let total = list.len();
    let list = StoredValue::new(list);
    let visible = move || {
        let q = query.get().trim().to_lowercase();
        list.with_value(|l| {
            l.iter()
                .filter(|m| matches(m, &q))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    if total == 0 {
        return view! {
            <div class="empty">
                <p>"No models yet."</p>
                <p class="muted">"An operator adds them with " <code>"switchyard catalog apply catalog.toml"</code> "."</p>
            </div>
        }
        .into_any();
    }
    view! {
        <table class="model-table" class:no-rows=move || visible().is_empty()>
            <thead>
                <tr>
                    <th>"Model"</th>
                    <th>"Context"</th>
                    <th class="num">"Input / 1M tokens"</th>
                    <th class="num">"Output / 1M tokens"</th>
                    <th>"Served by"</th>
                </tr>
            </thead>
            <tbody>
                <For
                    each=visible
                    key=|m| m.slug.clone()
                    children=move |m: ModelCard| {
                        view! {
                            <tr class="model-row">
                                <td>
                                    <a class="model-name" href=format!("/models/{}", m.slug)>{m.name.clone()}</a>
                                    <code class="slug">{m.slug.clone()}</code>
                                    <p class="desc">{m.description.clone()}</p>
                                </td>
                                <td>{format_context(m.context_length)}</td>
                                <td class="num">{dollars(&m.input_usd_per_mtok)}</td>
                                <td class="num">{dollars(&m.output_usd_per_mtok)}</td>
                                <td>{m.providers.join(", ")}</td>
                            </tr>
                        }
                    }
                />
            </tbody>
        </table>
        <p class="muted count">
            {move || {
                let n = visible().len();
                if n == 0 {
                    format!("No model matches “{}”.", query.get().trim())
                } else {
                    format!("{n} of {total} models")
                }
            }}
        </p>
    }
    .into_any()
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <main class="page narrow">
            <h1>"Page not found"</h1>
            <p><a href="/">"← Back to the models"</a></p>
        </main>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn password_rules_name_what_is_wrong() {
        assert_eq!(
            super::password_problems("short", ""),
            vec!["at least 10 characters"]
        );
        assert_eq!(
            super::password_problems("aaaaaaaaaaaa", ""),
            vec!["not one character repeated"]
        );
        assert_eq!(
            super::password_problems("me@example.com", "Me@Example.com"),
            vec!["not your email address"]
        );
        assert!(super::password_problems("correct horse battery", "me@example.com").is_empty());
        assert_eq!(
            super::password_problems(&"x1".repeat(70), ""),
            vec!["at most 128 characters"]
        );
    }

    #[test]
    fn sign_in_returns_only_to_this_site() {
        use crate::account::safe_next;
        assert_eq!(safe_next("/invite?token=ab12"), "/invite?token=ab12");
        assert_eq!(safe_next(""), "/dashboard");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "evil",
        ] {
            assert_eq!(safe_next(bad), "/dashboard", "{bad:?}");
        }
    }

    #[test]
    fn the_fee_rounds_up_to_the_cent_with_a_minimum() {
        assert_eq!(super::purchase_fee_cents(2500, 550, 80), 138);
        assert_eq!(super::purchase_fee_cents(500, 550, 80), 80);
        assert_eq!(super::purchase_fee_cents(10_000, 550, 80), 550);
        assert_eq!(super::purchase_fee_cents(10_000, 0, 80), 0);
    }

    #[test]
    fn money_shows_at_least_cents() {
        assert_eq!(super::dollars("3.3"), "$3.30");
        assert_eq!(super::dollars("0.55"), "$0.55");
        assert_eq!(super::dollars("0.000001"), "$0.000001");
        assert_eq!(super::dollars("15"), "$15.00");
        assert_eq!(super::cents("9.99995545"), "$9.99");
        assert_eq!(super::cents("0"), "$0.00");
        assert_eq!(super::cents("12.5"), "$12.50");
        assert_eq!(super::format_context(128_000), "128K");
        assert_eq!(super::format_context(1_000_000), "1M");
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
