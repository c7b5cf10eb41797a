//! The API keys page: create a key (its secret shown once, with a copy button), see every key the
//! signed-in person may see with its usage and rules, disable, enable and delete.

use crate::account::form_message;
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

/// A key as the page lists it. Money is exact decimal USD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub hash: String,
    pub name: String,
    pub prefix: String,
    pub created_by: Option<String>,
    pub created: String,
    pub last_used: Option<String>,
    pub usage_usd: String,
    pub usage_today_usd: String,
    pub usage_month_usd: String,
    pub limit_usd: Option<String>,
    pub remaining_usd: Option<String>,
    pub limit_reset: Option<String>,
    pub expires: Option<String>,
    pub models: Option<Vec<String>>,
    pub rpm: Option<i64>,
    /// Requests in flight at once.
    pub concurrency: Option<i64>,
    /// "active", "disabled" or "expired".
    pub status: String,
    /// The key's own routing defaults (over its organisation's).
    pub routing: crate::orgs::RoutingDefaults,
}

/// The create form as submitted; the server checks every field and says which is wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKeyForm {
    pub name: String,
    pub limit_usd: String,
    pub limit_reset: String,
    /// A date (YYYY-MM-DD): the key stops working at the start of that day, UTC.
    pub expires: String,
    /// Comma-separated model ids.
    pub models: String,
    pub rpm: String,
    /// Requests at a time (blank: no limit).
    #[serde(default)]
    pub concurrency: String,
    /// The key's routing defaults (the edit form has them; a new key starts with none).
    #[serde(default)]
    pub routing: crate::orgs::RoutingDefaults,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyCreated {
    Secret { name: String, secret: String },
    Refused(String),
}

#[server(prefix = "/_app", endpoint = "keys")]
pub async fn list_keys() -> Result<Vec<KeyView>, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.list_keys(&who).await.map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "create_key")]
pub async fn create_key(
    name: String,
    limit_usd: String,
    limit_reset: String,
    expires: String,
    models: String,
    rpm: String,
    #[server(default)] concurrency: String,
) -> Result<KeyCreated, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    let form = NewKeyForm {
        name: name.clone(),
        limit_usd,
        limit_reset,
        expires,
        models,
        rpm,
        concurrency,
        routing: Default::default(),
    };
    Ok(match b.0.create_key(&who, form).await {
        Ok(secret) => KeyCreated::Secret {
            name: name.trim().to_string(),
            secret,
        },
        Err(message) => KeyCreated::Refused(message),
    })
}

#[server(prefix = "/_app", endpoint = "toggle_key")]
pub async fn toggle_key(hash: String, disabled: bool) -> Result<(), ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.set_key_disabled(&who, &hash, disabled)
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "delete_key")]
pub async fn delete_key(hash: String) -> Result<(), ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.delete_key(&who, &hash)
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "update_key")]
#[allow(clippy::too_many_arguments)]
pub async fn update_key(
    hash: String,
    name: String,
    limit_usd: String,
    limit_reset: String,
    expires: String,
    models: String,
    rpm: String,
    #[server(default)] concurrency: String,
    #[server(default)] order: String,
    #[server(default)] ignore: String,
    #[server(default)] sort: String,
    #[server(default)] deny_data_collection: String,
    #[server(default)] only_ordered: String,
) -> Result<crate::account::Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    let form = NewKeyForm {
        name: name.clone(),
        limit_usd,
        limit_reset,
        expires,
        models,
        rpm,
        concurrency,
        routing: crate::orgs::RoutingDefaults {
            order,
            ignore,
            sort,
            deny_data_collection: !deny_data_collection.is_empty(),
            only_ordered: !only_ordered.is_empty(),
        },
    };
    Ok(b.0
        .update_key(&who, &hash, form)
        .await
        .map(|_| {
            format!(
                "“{}” is updated; the gateway applies it within seconds",
                name.trim()
            )
        })
        .into())
}

#[server(prefix = "/_app", endpoint = "management_keys")]
pub async fn list_management_keys() -> Result<Option<Vec<KeyView>>, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.list_management_keys(&who)
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "create_management_key")]
pub async fn create_management_key(name: String) -> Result<KeyCreated, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(match b.0.create_management_key(&who, &name).await {
        Ok(secret) => KeyCreated::Secret {
            name: name.trim().to_string(),
            secret,
        },
        Err(message) => KeyCreated::Refused(message),
    })
}

#[server(prefix = "/_app", endpoint = "delete_management_key")]
pub async fn delete_management_key(hash: String) -> Result<(), ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.delete_management_key(&who, &hash)
        .await
        .map_err(ServerFnError::new)
}

#[cfg(feature = "hydrate")]
pub(crate) fn copy_to_clipboard(text: String, done: WriteSignal<Option<bool>>) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let promise = window.navigator().clipboard().write_text(&text);
    leptos::task::spawn_local(async move {
        let ok = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok();
        done.set(Some(ok));
    });
}

#[cfg(not(feature = "hydrate"))]
pub(crate) fn copy_to_clipboard(_text: String, _done: WriteSignal<Option<bool>>) {}

#[component]
pub fn KeysPage() -> impl IntoView {
    let create = ServerAction::<CreateKey>::new();
    let toggle = ServerAction::<ToggleKey>::new();
    let delete = ServerAction::<DeleteKey>::new();
    let update = ServerAction::<UpdateKey>::new();
    let editing = RwSignal::new(None::<String>);
    let keys = Resource::new(
        move || {
            (
                create.version().get(),
                toggle.version().get(),
                delete.version().get(),
                update.version().get(),
            )
        },
        |_| list_keys(),
    );
    // With no keys yet, the create form starts open (set once the list is known, in the browser).
    let open_form = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(Ok(k)) = keys.get() {
            if k.is_empty() {
                open_form.set(true);
            }
        }
    });
    // A saved edit closes its form.
    Effect::new(move |_| {
        if let Some(Ok(crate::account::Outcome::Done(_))) = update.value().get() {
            editing.set(None);
        }
    });
    let created = move || match create.value().get() {
        Some(Ok(KeyCreated::Secret { name, secret })) => Some((name, secret)),
        _ => None,
    };
    let refused = move || match create.value().get() {
        Some(Ok(KeyCreated::Refused(m))) => form_message(Some(Ok(Some(m)))),
        Some(Err(e)) => form_message(Some(Err(e))),
        _ => None,
    };
    view! {
        <main class="page keys">
            <h1>"API keys"</h1>
            <p class="lede">"Keys call every model in the catalog with your organisation's credits. Give each app its own key, with a limit."</p>
            {move || created().map(|(name, secret)| view! { <Reveal name secret/> })}
            <details class="create" prop:open=move || open_form.get()>
                <summary class="button">"Create a key"</summary>
                <ActionForm action=create attr:class="form key-form">
                    <label class="wide">"Name" <input name="name" required maxlength="100" placeholder="e.g. production backend"/></label>
                    <label>"Credit limit (USD)" <input name="limit_usd" inputmode="decimal" placeholder="no limit"/></label>
                    <label>
                        "Limit resets"
                        <select name="limit_reset">
                            <option value="">"never"</option>
                            <option value="daily">"daily"</option>
                            <option value="weekly">"weekly"</option>
                            <option value="monthly">"monthly"</option>
                        </select>
                    </label>
                    <label>"Expires on" <input name="expires" type="date"/></label>
                    <label>"Requests per minute" <input name="rpm" inputmode="numeric" placeholder="no limit"/></label>
                    <label>"Requests at a time" <input name="concurrency" inputmode="numeric" placeholder="no limit"/></label>
                    <label class="wide">"Only these models" <input name="models" placeholder="all models (or ids, comma-separated)"/></label>
                    <div class="wide actions">
                        <button type="submit" class="button">"Create key"</button>
                        {move || refused().map(|m| view! { <p class="error" role="alert">{m}</p> })}
                    </div>
                </ActionForm>
            </details>
            <Transition fallback=|| view! { <p class="muted">"Loading keys…"</p> }>
                {move || {
                    keys.get()
                        .map(|r| match r {
                            Err(e) if crate::account::error_text(&e).contains("sign in") => view! { <Redirect path="/signin"/> }.into_any(),
                            Err(e) => view! { <p class="error">{crate::account::error_text(&e)}</p> }.into_any(),
                            Ok(list) if list.is_empty() => view! { <p class="muted empty">"No keys yet."</p> }.into_any(),
                            Ok(list) => view! {
                                {move || crate::account::outcome_line(update.value().get())}
                                <KeyTable list toggle delete update editing/>
                            }.into_any(),
                        })
                }}
            </Transition>
            <ManagementKeys/>
        </main>
    }
}

/// A new key's secret, shown once, with a copy button.
#[component]
fn Reveal(name: String, secret: String) -> impl IntoView {
    let (copied, set_copied) = signal(None::<bool>);
    let to_copy = secret.clone();
    view! {
        <section class="secret" role="status">
            <h2>"Your new key “" {name} "”"</h2>
            <p>"Copy it now and keep it somewhere safe: " <strong>"you won't see it again."</strong></p>
            <div class="secret-row">
                <code class="secret-value">{secret}</code>
                <button type="button" class="button" on:click=move |_| copy_to_clipboard(to_copy.clone(), set_copied)>
                    {move || match copied.get() {
                        Some(true) => "Copied",
                        Some(false) => "Select and copy",
                        None => "Copy",
                    }}
                </button>
            </div>
        </section>
    }
}

/// Management keys, for owners and admins: scripts use them on `/api/v1/keys`; they cannot call models.
#[component]
fn ManagementKeys() -> impl IntoView {
    let create = ServerAction::<CreateManagementKey>::new();
    let delete = ServerAction::<DeleteManagementKey>::new();
    let list = Resource::new(
        move || (create.version().get(), delete.version().get()),
        |_| list_management_keys(),
    );
    view! {
        <Transition fallback=|| ()>
            {move || list.get().and_then(|r| r.ok().flatten()).map(|keys| view! {
                <section class="panel management">
                    <h2>"Management keys"</h2>
                    <p class="muted">"For scripts that create, change and delete this organisation's API keys over " <code>"/api/v1/keys"</code> ". They cannot call models."</p>
                    {move || match create.value().get() {
                        Some(Ok(KeyCreated::Secret { name, secret })) => Some(view! { <Reveal name secret/> }.into_any()),
                        Some(Ok(KeyCreated::Refused(m))) => form_message(Some(Ok(Some(m)))).map(|m| view! { <p class="error" role="alert">{m}</p> }.into_any()),
                        Some(Err(e)) => form_message(Some(Err(e))).map(|m| view! { <p class="error" role="alert">{m}</p> }.into_any()),
                        None => None,
                    }}
                    <ActionForm action=create attr:class="form inline-form">
                        <label class="grow">"Name" <input name="name" required maxlength="100" placeholder="e.g. provisioning script"/></label>
                        <button type="submit" class="button">"Create management key"</button>
                    </ActionForm>
                    {if keys.is_empty() {
                        view! { <p class="muted empty">"No management keys."</p> }.into_any()
                    } else {
                        view! {
                            <div class="table-wrap">
                            <table class="member-table management-keys">
                                <thead><tr><th>"Key"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                                <tbody>
                                    {keys.into_iter().map(|k| {
                                        let (hash, name) = (k.hash.clone(), k.name.clone());
                                        view! {
                                            <tr class="management-row" data-name=k.name.clone()>
                                                <td><div class="model-name">{k.name.clone()}</div><code class="slug">{k.prefix.clone()}</code></td>
                                                <td>{k.created.clone()} <div class="muted small">{k.created_by.clone().map(|e| format!("by {e}"))}</div></td>
                                                <td>{k.last_used.clone().unwrap_or_else(|| "never".into())}</td>
                                                <td class="row-actions">
                                                    <button type="button" class="button danger small" on:click=move |_| {
                                                        if crate::confirm(&format!("Delete the management key “{name}”? Scripts using it stop working at once.")) {
                                                            delete.dispatch(DeleteManagementKey { hash: hash.clone() });
                                                        }
                                                    }>"Delete"</button>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            </div>
                        }.into_any()
                    }}
                </section>
            })}
        </Transition>
    }
}

#[component]
fn KeyTable(
    list: Vec<KeyView>,
    toggle: ServerAction<ToggleKey>,
    delete: ServerAction<DeleteKey>,
    update: ServerAction<UpdateKey>,
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
        <table class="key-table">
            <thead>
                <tr>
                    <th>"Key"</th>
                    <th>"Created"</th>
                    <th>"Last used"</th>
                    <th class="num">"Usage"</th>
                    <th class="num">"Limit left"</th>
                    <th>"Rules"</th>
                    <th>"Status"</th>
                    <th></th>
                </tr>
            </thead>
            <tbody>
                {list
                    .into_iter()
                    .map(|k| {
                        let (hash_t, hash_d, name) = (k.hash.clone(), k.hash.clone(), k.name.clone());
                        let (hash_e, hash_open) = (k.hash.clone(), k.hash.clone());
                        let edit_k = k.clone();
                        let disabled = k.status == "disabled";
                        let mut rules = Vec::new();
                        if let Some(r) = &k.limit_reset {
                            rules.push(format!("resets {r}"));
                        }
                        if let Some(n) = k.rpm {
                            rules.push(format!("{n}/min"));
                        }
                        if let Some(n) = k.concurrency {
                            rules.push(format!("{n} at a time"));
                        }
                        if let Some(m) = &k.models {
                            rules.push(format!("only {}", m.join(", ")));
                        }
                        if let Some(e) = &k.expires {
                            rules.push(format!("expires {e}"));
                        }
                        rules.extend(crate::orgs::routing_summary(&k.routing).into_iter().map(|r| format!("routing: {r}")));
                        view! {
                            <tr class="key-row" data-name=k.name.clone()>
                                <td>
                                    <div class="model-name">{k.name.clone()}</div>
                                    <code class="slug">{k.prefix.clone()}</code>
                                </td>
                                <td>{k.created.clone()} <div class="muted small">{k.created_by.clone().map(|e| format!("by {e}"))}</div></td>
                                <td>{k.last_used.clone().unwrap_or_else(|| "never".into())}</td>
                                <td class="num">
                                    <div class="usage">{crate::dollars(&k.usage_usd)}</div>
                                    <div class="muted small usage-periods">
                                        <div>{format!("today {}", crate::dollars(&k.usage_today_usd))}</div>
                                        <div>{format!("month {}", crate::dollars(&k.usage_month_usd))}</div>
                                    </div>
                                </td>
                                <td class="num">
                                    {match (&k.remaining_usd, &k.limit_usd) {
                                        (Some(r), Some(l)) => format!("{} of {}", crate::dollars(r), crate::dollars(l)),
                                        _ => "no limit".into(),
                                    }}
                                </td>
                                <td class="small rules-cell">
                                    {if rules.is_empty() { vec!["—".to_string()] } else { rules }.into_iter().map(|r| view! { <div>{r}</div> }).collect_view()}
                                </td>
                                <td><span class=format!("status {}", k.status)>{k.status.clone()}</span></td>
                                <td class="row-actions">
                                    <button type="button" class="button ghost small" on:click=move |_| {
                                        let open = editing.get_untracked().as_deref() == Some(hash_open.as_str());
                                        editing.set((!open).then(|| hash_open.clone()));
                                    }>"Edit"</button>
                                    <button type="button" class="button ghost small" on:click=move |_| {
                                        toggle.dispatch(ToggleKey { hash: hash_t.clone(), disabled: !disabled });
                                    }>{if disabled { "Enable" } else { "Disable" }}</button>
                                    <button type="button" class="button danger small" on:click=move |_| {
                                        if crate::confirm(&format!("Delete the key “{name}”? Apps using it stop working at once.")) {
                                            delete.dispatch(DeleteKey { hash: hash_d.clone() });
                                        }
                                    }>"Delete"</button>
                                </td>
                            </tr>
                            {move || (editing.get().as_deref() == Some(hash_e.as_str())).then(|| view! { <EditRow k=edit_k.clone() update editing/> })}
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        </div>
    }
}

/// The edit form of one key, under its row: every rule, prefilled; a blank field removes the rule.
#[component]
fn EditRow(
    k: KeyView,
    update: ServerAction<UpdateKey>,
    editing: RwSignal<Option<String>>,
) -> impl IntoView {
    let reset = k.limit_reset.clone().unwrap_or_default();
    let r = k.routing.clone();
    let sort = r.sort.clone();
    view! {
        <tr class="edit-row">
            <td colspan="8">
                <ActionForm action=update attr:class="form key-form">
                    <input type="hidden" name="hash" value=k.hash.clone()/>
                    <label class="wide">"Name" <input name="name" required maxlength="100" value=k.name.clone()/></label>
                    <label>"Credit limit (USD)" <input name="limit_usd" inputmode="decimal" placeholder="no limit" value=k.limit_usd.clone().unwrap_or_default()/></label>
                    <label>
                        "Limit resets"
                        <select name="limit_reset">
                            {[("", "never"), ("daily", "daily"), ("weekly", "weekly"), ("monthly", "monthly")].into_iter().map(|(v, l)| {
                                view! { <option value=v selected=reset == v>{l}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    <label>"Expires on" <input name="expires" type="date" value=k.expires.clone().unwrap_or_default()/></label>
                    <label>"Requests per minute" <input name="rpm" inputmode="numeric" placeholder="no limit" value=k.rpm.map(|r| r.to_string()).unwrap_or_default()/></label>
                    <label>"Requests at a time" <input name="concurrency" inputmode="numeric" placeholder="no limit" value=k.concurrency.map(|r| r.to_string()).unwrap_or_default()/></label>
                    <label class="wide">"Only these models" <input name="models" placeholder="all models (or ids, comma-separated)" value=k.models.clone().map(|m| m.join(", ")).unwrap_or_default()/></label>
                    <fieldset class="wide key-routing">
                        <legend>"Routing for this key (over the organisation's defaults; a request's own " <code>"provider"</code> " wins)"</legend>
                        <label>"Try these providers first" <input name="order" placeholder="organisation default" value=r.order.clone()/></label>
                        <label>"Never use" <input name="ignore" placeholder="organisation default" value=r.ignore.clone()/></label>
                        <label>"Order the rest by"
                            <select name="sort">
                                {[("", "organisation default"), ("price", "price (cheapest first)"), ("latency", "latency (quickest first)"), ("throughput", "throughput (fastest first)")].into_iter().map(|(v, l)| {
                                    view! { <option value=v selected=sort == v>{l}</option> }
                                }).collect_view()}
                            </select>
                        </label>
                        <div class="wide checks-row">
                            <label class="check"><input type="checkbox" name="only_ordered" value="on" checked=r.only_ordered/>" Only the providers listed first"</label>
                            <label class="check"><input type="checkbox" name="deny_data_collection" value="on" checked=r.deny_data_collection/>" Only providers that keep no prompts"</label>
                        </div>
                    </fieldset>
                    <div class="wide actions">
                        <button type="submit" class="button">"Save changes"</button>
                        <button type="button" class="button ghost" on:click=move |_| editing.set(None)>"Cancel"</button>
                    </div>
                </ActionForm>
            </td>
        </tr>
    }
}
