//! The usage pages: the overview (the dashboard), the activity log with its detail view, and the platform
//! admin's analytics; and the stacked bar chart they share (SVG drawn in the page, values on hover, the
//! same numbers as a table).

use crate::account::{form_message, outcome_line, Outcome};
use crate::usage::{
    compact, usd, ActivityFilter, ActivityPage, ActivityRow, Analytics, Chart, GenerationDetail,
    MoneyRow, Overview, TopRow, RANGES,
};
use leptos::prelude::*;
use leptos_router::components::Redirect;

#[server(prefix = "/_app", endpoint = "usage_overview")]
pub async fn load_overview(range: String, group: String) -> Result<Overview, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.usage_overview(&who, &range, &group)
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "activity")]
pub async fn load_activity(filter: ActivityFilter) -> Result<ActivityPage, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.activity(&who, filter).await.map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "generation")]
pub async fn load_generation(id: String) -> Result<GenerationDetail, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.generation_detail(&who, &id)
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "analytics")]
pub async fn load_analytics(range: String, group: String) -> Result<Analytics, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.analytics(&who, &range, &group)
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "prompt_logging")]
pub async fn save_prompt_logging(
    #[server(default)] on: String,
    retention_days: String,
) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0
        .set_prompt_logging(&who, !on.is_empty(), &retention_days)
        .await
        .into())
}

/// A value as a measure shows it: money or a count.
fn measure_text(chart: &Chart, m: usize, v: i64) -> String {
    if chart.measures.get(m).is_some_and(|x| x.2) {
        usd(v)
    } else {
        compact(v)
    }
}

/// The smallest "nice" number (1, 2 or 5 × 10ⁿ) at least `x`.
fn nice_ceiling(x: i64) -> i64 {
    if x <= 0 {
        return 1;
    }
    let mut p = 1i64;
    while p.saturating_mul(10) <= x {
        p *= 10;
    }
    for m in [1, 2, 5, 10] {
        if p.saturating_mul(m) >= x {
            return p.saturating_mul(m);
        }
    }
    x
}

const VIEW_W: f64 = 800.0;
const VIEW_H: f64 = 240.0;
const PAD_LEFT: f64 = 70.0;
const PAD_BOTTOM: f64 = 26.0;
const PAD_TOP: f64 = 8.0;

/// Segmented buttons choosing one value.
#[component]
fn Segmented(
    label: &'static str,
    options: Vec<(String, String)>,
    value: RwSignal<String>,
) -> impl IntoView {
    view! {
        <div class="segmented" role="group" aria-label=label>
            {options.into_iter().map(|(v, text)| {
                let v2 = v.clone();
                view! {
                    <button type="button" class="seg" data-value=v.clone()
                        aria-pressed=move || (value.get() == v).to_string()
                        on:click=move |_| value.set(v2.clone())>{text}</button>
                }
            }).collect_view()}
        </div>
    }
}

/// The stacked bar chart: one bar per bucket, a colour per series, the hovered bar's values above it.
#[component]
pub fn StackedChart(chart: Chart, measure: RwSignal<usize>) -> impl IntoView {
    let chart = StoredValue::new(chart);
    let hover = RwSignal::new(None::<usize>);
    let readout = move || {
        let m = measure.get();
        chart.with_value(|c| {
            let totals = c.totals(m);
            match hover.get() {
                Some(i) if i < totals.len() => {
                    let parts: Vec<AnyView> = c
                        .series
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.values.get(m).and_then(|v| v.get(i)).copied().unwrap_or(0) != 0)
                        .map(|(k, s)| {
                            let v = s.values[m][i];
                            view! { <span class="readout-item"><i class=format!("swatch s{k}")></i>{format!("{}: {}", s.name, measure_text(c, m, v))}</span> }.into_any()
                        })
                        .collect();
                    view! {
                        <strong>{c.labels[i].clone()}</strong>
                        <span class="readout-item total">{format!("Total {}", measure_text(c, m, totals[i]))}</span>
                        {parts}
                    }
                    .into_any()
                }
                _ => {
                    let sum: i64 = totals.iter().sum();
                    view! {
                        <strong>{format!("Total {}", measure_text(c, m, sum))}</strong>
                        <span class="muted">" · point at a bar for its numbers"</span>
                    }
                    .into_any()
                }
            }
        })
    };
    let bars = move || {
        let m = measure.get();
        chart.with_value(|c| {
            let n = c.labels.len().max(1);
            let totals = c.totals(m);
            let top = nice_ceiling(totals.iter().copied().max().unwrap_or(0));
            let plot_w = VIEW_W - PAD_LEFT - 4.0;
            let plot_h = VIEW_H - PAD_BOTTOM - PAD_TOP;
            let slot = plot_w / n as f64;
            let bar_w = (slot * 0.78).max(1.0);
            let y = |v: i64| PAD_TOP + plot_h - (v as f64 / top as f64) * plot_h;
            let grid: Vec<AnyView> = (0..=4)
                .map(|t| {
                    let v = top / 4 * t;
                    let yy = y(v);
                    view! {
                        <line class="grid" x1=PAD_LEFT x2=VIEW_W - 4.0 y1=yy y2=yy/>
                        <text class="axis" x=PAD_LEFT - 6.0 y=yy + 4.0 text-anchor="end">{measure_text(c, m, v)}</text>
                    }
                    .into_any()
                })
                .collect();
            let every = n.div_ceil(8).max(1);
            let labels: Vec<AnyView> = c
                .labels
                .iter()
                .enumerate()
                .filter(|(i, _)| i % every == 0)
                .map(|(i, l)| {
                    let x = PAD_LEFT + slot * i as f64 + slot / 2.0;
                    view! { <text class="axis" x=x y=VIEW_H - 8.0 text-anchor="middle">{l.clone()}</text> }.into_any()
                })
                .collect();
            let columns: Vec<AnyView> = (0..n.min(totals.len()))
                .map(|i| {
                    let x = PAD_LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                    let mut base = 0i64;
                    let segs: Vec<AnyView> = c
                        .series
                        .iter()
                        .enumerate()
                        .filter_map(|(k, s)| {
                            let v = s.values.get(m).and_then(|v| v.get(i)).copied().unwrap_or(0);
                            if v <= 0 {
                                return None;
                            }
                            let (y0, y1) = (y(base), y(base + v));
                            base += v;
                            Some(view! {
                                <rect class=format!("bar s{k}") x=x y=y1 width=bar_w height=(y0 - y1).max(0.5)>
                                    <title>{format!("{} · {}: {}", c.labels[i], s.name, measure_text(c, m, v))}</title>
                                </rect>
                            }.into_any())
                        })
                        .collect();
                    let hx = PAD_LEFT + slot * i as f64;
                    view! {
                        <g class="column" class:hovered=move || hover.get() == Some(i)>
                            {segs}
                            <rect class="hit" x=hx y=PAD_TOP width=slot height=plot_h
                                on:mouseenter=move |_| hover.set(Some(i))/>
                        </g>
                    }
                    .into_any()
                })
                .collect();
            view! { {grid} {labels} {columns} }
        })
    };
    let legend = chart.with_value(|c| {
        c.series
            .iter()
            .enumerate()
            .map(|(k, s)| view! { <li><i class=format!("swatch s{k}")></i>{s.name.clone()}</li> })
            .collect_view()
    });
    let empty = chart.with_value(|c| c.series.is_empty());
    let table = move || {
        let m = measure.get();
        chart.with_value(|c| {
            let totals = c.totals(m);
            let rows: Vec<AnyView> = (0..c.labels.len())
                .rev()
                .filter(|&i| totals[i] != 0)
                .map(|i| {
                    view! {
                        <tr>
                            <td>{c.labels[i].clone()}</td>
                            {c.series.iter().map(|s| view! { <td class="num">{measure_text(c, m, s.values[m][i])}</td> }).collect_view()}
                            <td class="num"><strong>{measure_text(c, m, totals[i])}</strong></td>
                        </tr>
                    }
                    .into_any()
                })
                .collect();
            view! {
                <table class="data-table chart-data">
                    <thead><tr><th>"Period"</th>{c.series.iter().map(|s| view! { <th class="num">{s.name.clone()}</th> }).collect_view()}<th class="num">"Total"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            }
        })
    };
    view! {
        <div class="chart">
            {if empty {
                view! { <p class="chart-empty muted">"Nothing in this period yet."</p> }.into_any()
            } else {
                view! {
                    <div class="chart-readout" aria-live="polite">{readout}</div>
                    <svg class="chart-svg" viewBox=format!("0 0 {VIEW_W} {VIEW_H}") role="img"
                        aria-label="Stacked bar chart; the same numbers are in the table below"
                        on:mouseleave=move |_| hover.set(None)>
                        {bars}
                    </svg>
                    <ul class="legend">{legend}</ul>
                    <details class="chart-table">
                        <summary>"Show the numbers as a table"</summary>
                        <div class="table-wrap">{table}</div>
                    </details>
                }.into_any()
            }}
        </div>
    }
}

fn ranges() -> Vec<(String, String)> {
    RANGES
        .iter()
        .map(|(k, l)| (k.to_string(), l.trim_start_matches("Last ").to_string()))
        .collect()
}

fn measure_options(c: &Chart) -> Vec<(String, String)> {
    c.measures
        .iter()
        .enumerate()
        .map(|(i, m)| (i.to_string(), m.1.clone()))
        .collect()
}

#[component]
fn TopTable(title: &'static str, rows: Vec<TopRow>) -> impl IntoView {
    view! {
        <section class="panel top-table">
            <h2>{title}</h2>
            {if rows.is_empty() {
                view! { <p class="muted">"No requests in this period."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                    <table class="data-table">
                        <thead><tr><th>"Name"</th><th class="num">"Spend"</th><th class="num">"Requests"</th><th class="num">"Tokens"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|r| view! {
                                <tr><td>{r.name}</td><td class="num" title=format!("{} nano-USD", r.spend_nanos)>{usd(r.spend_nanos)}</td>
                                <td class="num">{compact(r.requests)}</td><td class="num">{compact(r.tokens)}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

/// `/dashboard`: who is signed in, where, the balance, and the organisation's usage at a glance.
#[component]
pub fn OverviewPage() -> impl IntoView {
    // Its own read: the shell's may still hold the signed-out answer of the page before sign-in.
    let me = Resource::new(|| (), |_| crate::account::current_user());
    view! {
        <main class="page usage-page">
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || me.get().map(|r| match r.ok().flatten() {
                    None => view! { <Redirect path="/signin"/> }.into_any(),
                    Some(u) => view! {
                        <div class="page-head">
                            <div>
                                <h1>"Dashboard"</h1>
                                <p class="lede">"Signed in as " <strong>{u.email.clone()}</strong> {u.is_admin.then_some(" · platform admin")}</p>
                            </div>
                            <p class="actions-row">
                                <a class="button" href="/keys">"Manage API keys"</a>
                                <a class="button ghost" href="/billing">"Buy credits"</a>
                                <a class="button ghost" href="/org">"Organisation and members"</a>
                            </p>
                        </div>
                        <section class="cards usage-cards">
                            <div class="card">
                                <div class="card-label">"Organisation"</div>
                                <div class="card-value org">{u.org_name.clone()}</div>
                                <div class="muted small">{format!("you are {}", u.role)}</div>
                            </div>
                            <div class="card">
                                <div class="card-label">"Balance"</div>
                                <div class="card-value balance" title=format!("${} exactly", u.balance_usd)>{crate::cents(&u.balance_usd)}</div>
                            </div>
                            <UsagePanel/>
                        </section>
                    }.into_any(),
                })}
            </Suspense>
        </main>
    }
}

/// The spend cards, the chart and the top tables (inside the overview's card grid, which it closes).
#[component]
fn UsagePanel() -> impl IntoView {
    let range = RwSignal::new("7d".to_string());
    let group = RwSignal::new("model".to_string());
    let measure = RwSignal::new(0usize);
    let measure_s = RwSignal::new("0".to_string());
    Effect::new(move |_| measure.set(measure_s.get().parse().unwrap_or(0)));
    let data = Resource::new(
        move || (range.get(), group.get()),
        |(r, g)| load_overview(r, g),
    );
    view! {
        <Transition fallback=|| view! { <div class="card"><p class="muted">"Loading usage…"</p></div> }>
            {move || data.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any(),
                Ok(o) => {
                    let chart = o.chart.clone();
                    let measures = measure_options(&chart);
                    let mut groups = vec![("model".to_string(), "Model".to_string()), ("key".to_string(), "API key".to_string())];
                    if o.whole_org {
                        groups.push(("member".to_string(), "Member".to_string()));
                    }
                    view! {
                        {o.periods.iter().map(|p| view! {
                            <div class="card period" data-period=p.label.clone()>
                                <div class="card-label">{format!("Spend · {}", p.label)}</div>
                                <div class="card-value" title=format!("{} nano-USD", p.spend_nanos)>{usd(p.spend_nanos)}</div>
                                <div class="muted small">{format!("{} requests · {} tokens", compact(p.requests), compact(p.tokens))}</div>
                            </div>
                        }).collect_view()}
                        <section class="panel usage-chart">
                            <div class="panel-head">
                                <h2>{if o.whole_org { "Usage of the organisation" } else { "Usage of your API keys" }}</h2>
                                <p class="actions-row">
                                    <a href="/activity">"Activity log →"</a>
                                    <a href="/usage/daily.csv" download>"Daily totals (CSV)"</a>
                                </p>
                            </div>
                            <div class="chart-controls">
                                <Segmented label="Period" options=ranges() value=range/>
                                <label class="inline-label">"Stacked by "
                                    <select name="group" on:change=move |ev| group.set(event_target_value(&ev))>
                                        {groups.into_iter().map(|(v, l)| {
                                            let sel = v == o.group;
                                            view! { <option value=v selected=sel>{l}</option> }
                                        }).collect_view()}
                                    </select>
                                </label>
                                <Segmented label="Measure" options=measures value=measure_s/>
                            </div>
                            <StackedChart chart=chart measure=measure/>
                        </section>
                        <div class="two-col">
                            <TopTable title="Top models" rows=o.top_models.clone()/>
                            <TopTable title="Top API keys" rows=o.top_keys.clone()/>
                        </div>
                    }.into_any()
                }
            })}
        </Transition>
    }
}

fn status_text(r: &ActivityRow) -> (&'static str, String) {
    match r.status {
        200 => ("ok", "OK".to_string()),
        499 => ("cancelled", "Cancelled".to_string()),
        s => ("error", format!("Error {s}")),
    }
}

fn ms(v: i64) -> String {
    if v >= 10_000 {
        format!("{:.1} s", v as f64 / 1000.0)
    } else {
        format!("{v} ms")
    }
}

/// `/activity`: every request, newest first, filtered and paged, with the detail of one.
#[component]
pub fn ActivityLogPage() -> impl IntoView {
    let filter = RwSignal::new(ActivityFilter {
        range: "7d".into(),
        ..Default::default()
    });
    // Cursors of the pages before this one, to go back.
    let back = RwSignal::new(Vec::<String>::new());
    let selected = RwSignal::new(None::<String>);
    let data = Resource::new(move || filter.get(), load_activity);
    let detail = Resource::new(
        move || selected.get(),
        |id| async move {
            match id {
                Some(id) => Some(load_generation(id).await),
                None => None,
            }
        },
    );
    let set = move |edit: fn(&mut ActivityFilter, String)| {
        move |ev| {
            let v = event_target_value(&ev);
            back.set(Vec::new());
            selected.set(None);
            filter.update(|f| {
                edit(f, v);
                f.before.clear();
            });
        }
    };
    let csv_href = move || {
        let mut f = filter.get();
        f.before.clear();
        format!("/activity.csv?{}", f.query())
    };
    view! {
        <main class="page activity-page">
            <div class="page-head">
                <div>
                    <h1>"Activity"</h1>
                    <p class="lede">"Every request, newest first. Choose one to see how it was routed."</p>
                </div>
                <p class="actions-row">
                    <a class="button ghost" href="/dashboard">"Usage overview"</a>
                    <a class="button ghost" href=csv_href download>"Download CSV"</a>
                </p>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading the log…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) if crate::account::error_text(&e).contains("sign in") => view! { <Redirect path="/signin?next=/activity"/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any(),
                    Ok(p) => {
                        let f = filter.get_untracked();
                        let next = p.next.clone();
                        view! {
                            <form class="activity-filters" on:submit=|ev| ev.prevent_default()>
                                <label>"Period"
                                    <select name="range" on:change=set(|f, v| f.range = v)>
                                        {[("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("all", "Everything")]
                                            .into_iter().map(|(v, l)| view! { <option value=v selected=f.range == v>{l}</option> }).collect_view()}
                                    </select>
                                </label>
                                <label>"Model"
                                    <select name="model" on:change=set(|f, v| f.model = v)>
                                        <option value="">"Any"</option>
                                        {p.models.iter().map(|m| view! { <option value=m.clone() selected=f.model == *m>{m.clone()}</option> }).collect_view()}
                                    </select>
                                </label>
                                <label>"API key"
                                    <select name="key" on:change=set(|f, v| f.key = v)>
                                        <option value="">"Any"</option>
                                        {p.keys.iter().map(|k| view! { <option value=k.id.clone() selected=f.key == k.id>{k.label.clone()}</option> }).collect_view()}
                                    </select>
                                </label>
                                {p.whole_org.then(|| view! {
                                    <label>"Member"
                                        <select name="member" on:change=set(|f, v| f.member = v)>
                                            <option value="">"Anyone"</option>
                                            {p.members.iter().map(|m| view! { <option value=m.id.clone() selected=f.member == m.id>{m.label.clone()}</option> }).collect_view()}
                                        </select>
                                    </label>
                                })}
                                <label>"Status"
                                    <select name="status" on:change=set(|f, v| f.status = v)>
                                        {[("", "Any"), ("ok", "Answered"), ("error", "Errors"), ("cancelled", "Cancelled")]
                                            .into_iter().map(|(v, l)| view! { <option value=v selected=f.status == v>{l}</option> }).collect_view()}
                                    </select>
                                </label>
                            </form>
                            <p class="muted count" aria-live="polite">{format!("{} matching requests", crate::grouped(p.matching.max(0) as u64))}</p>
                            {if p.rows.is_empty() {
                                view! { <div class="empty"><p>"No requests match these filters."</p><p class="muted">"Calls made with your API keys appear here within a second."</p></div> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap">
                                    <table class="data-table activity-table">
                                        <thead><tr>
                                            <th>"Time (UTC)"</th><th>"Model"</th><th>"Key"</th>
                                            <th class="num">"Tokens in → out"</th><th class="num">"Cost"</th>
                                            <th class="num">"Latency"</th><th class="num">"First token"</th><th class="num">"Tokens/s"</th><th>"Status"</th>
                                        </tr></thead>
                                        <tbody>
                                            {p.rows.iter().map(|r| {
                                                let id = r.id.clone();
                                                let id2 = r.id.clone();
                                                let (cls, st) = status_text(r);
                                                let extra = [
                                                    (r.cached_tokens > 0).then(|| format!("{} cached", compact(r.cached_tokens))),
                                                    (r.reasoning_tokens > 0).then(|| format!("{} reasoning", compact(r.reasoning_tokens))),
                                                ].into_iter().flatten().collect::<Vec<_>>().join(" · ");
                                                view! {
                                                    <tr class="activity-row" data-id=r.id.clone() class:selected=move || selected.get().as_deref() == Some(id2.as_str())>
                                                        <td><button type="button" class="link-button" on:click=move |_| selected.set(Some(id.clone()))>{r.time.clone()}</button></td>
                                                        <td><span class="model">{r.model.clone()}</span><span class="muted small block">{r.provider.clone()}{r.streamed.then_some(" · streamed")}</span></td>
                                                        <td><span>{r.key.clone()}</span>{p.whole_org.then(|| view! { <span class="muted small block">{r.member.clone()}</span> })}</td>
                                                        <td class="num">{format!("{} → {}", crate::grouped(r.prompt_tokens as u64), crate::grouped(r.completion_tokens as u64))}<span class="muted small block">{extra}</span></td>
                                                        <td class="num" title=format!("{} nano-USD", r.charge_nanos)>{usd(r.charge_nanos)}</td>
                                                        <td class="num">{ms(r.latency_ms)}</td>
                                                        <td class="num">{r.ttft_ms.map(ms).unwrap_or_else(|| "—".into())}</td>
                                                        <td class="num">{if r.tokens_per_sec.is_empty() { "—".to_string() } else { r.tokens_per_sec.clone() }}</td>
                                                        <td><span class=format!("status {cls}")>{st}</span><span class="muted small block">{r.finish_reason.clone()}</span></td>
                                                    </tr>
                                                }
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    </div>
                                    <nav class="pager">
                                        <button type="button" class="button ghost" disabled=move || back.get().is_empty()
                                            on:click=move |_| {
                                                let mut b = back.get_untracked();
                                                let prev = b.pop().unwrap_or_default();
                                                back.set(b);
                                                selected.set(None);
                                                filter.update(|f| f.before = prev);
                                            }>"← Newer"</button>
                                        {next.map(|c| view! {
                                            <button type="button" class="button ghost" on:click=move |_| {
                                                let cur = filter.get_untracked().before;
                                                back.update(|b| b.push(cur));
                                                selected.set(None);
                                                filter.update(|f| f.before = c.clone());
                                            }>"Older →"</button>
                                        })}
                                    </nav>
                                }.into_any()
                            }}
                        }.into_any()
                    }
                })}
            </Transition>
            <Transition fallback=|| ()>
                {move || detail.get().flatten().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any(),
                    Ok(d) => view! { <GenerationPanel d=d on_close=move || selected.set(None)/> }.into_any(),
                })}
            </Transition>
        </main>
    }
}

#[component]
fn GenerationPanel(d: GenerationDetail, on_close: impl Fn() + 'static) -> impl IntoView {
    let r = d.row.clone();
    let (cls, st) = status_text(&r);
    // The detail opens below the log: bring it into view.
    let panel = NodeRef::<leptos::html::Section>::new();
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(el) = panel.get() {
            el.scroll_into_view();
        }
    });
    view! {
        <section class="panel generation-detail" aria-label="Request details" node_ref=panel>
            <div class="detail-head">
                <h2>"Request " <code>{r.id.clone()}</code></h2>
                <button type="button" class="button ghost small" on:click=move |_| on_close()>"Close"</button>
            </div>
            <dl class="facts-grid">
                <dt>"Time"</dt><dd>{r.time.clone()} " UTC"</dd>
                <dt>"Model"</dt><dd>{r.model.clone()}</dd>
                <dt>"Served by"</dt><dd>{if r.provider.is_empty() { "no provider answered".to_string() } else { format!("{} as {}", r.provider, d.upstream_model) }}</dd>
                <dt>"Key"</dt><dd>{format!("{} · ", r.key)}<span class="muted">{r.member.clone()}</span></dd>
                <dt>"Status"</dt><dd><span class=format!("status {cls}")>{st}</span> {(!r.finish_reason.is_empty()).then(|| format!(" · finish {} (provider said {})", r.finish_reason, d.native_finish_reason))}</dd>
                <dt>"Tokens"</dt><dd>{format!("{} in ({} cached read, {} cached written) → {} out ({} reasoning){}", r.prompt_tokens, r.cached_tokens, d.cache_write_tokens, r.completion_tokens, r.reasoning_tokens, if d.usage_estimated { " · estimated, the provider sent no usage" } else { "" })}</dd>
                <dt>"Cost"</dt><dd title=format!("{} nano-USD", r.charge_nanos)>{usd(r.charge_nanos)}</dd>
                <dt>"Timing"</dt><dd>{format!("{} total{}{}", ms(r.latency_ms), r.ttft_ms.map(|t| format!(" · first token after {}", ms(t))).unwrap_or_default(), if r.tokens_per_sec.is_empty() { String::new() } else { format!(" · {} tokens/s", r.tokens_per_sec) })}{r.streamed.then_some(" · streamed")}{r.cancelled.then_some(" · cancelled by the client")}</dd>
                {(!d.error.is_empty()).then(|| view! { <dt>"Error"</dt><dd class="error-text">{d.error.clone()}</dd> })}
            </dl>
            <h3>"Routing"</h3>
            {if d.attempts.is_empty() {
                view! { <p class="muted">"No provider was tried."</p> }.into_any()
            } else {
                view! {
                    <ol class="attempts">
                        {d.attempts.iter().map(|a| {
                            let ok = a.status == 200 && a.error_type.is_empty();
                            view! {
                                <li class:failed=!ok>
                                    <strong>{a.provider.clone()}</strong>
                                    {format!(" · {} · {}", if a.status == 0 { "no answer".to_string() } else { format!("HTTP {}", a.status) }, ms(a.latency_ms))}
                                    {(!ok).then(|| view! { <span class="muted block">{format!("{}{}", if a.error_type.is_empty() { String::new() } else { format!("{}: ", a.error_type) }, a.message)}</span> })}
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
            <h3>"Prompt and answer"</h3>
            {match (d.prompt.clone(), d.answer.clone()) {
                (Some(p), Some(a)) => view! {
                    <div class="logged">
                        <div><div class="card-label">"Messages sent"</div><pre class="log-text">{p}</pre></div>
                        <div><div class="card-label">"Answer"</div><pre class="log-text">{a}</pre></div>
                    </div>
                }.into_any(),
                _ if d.logging => view! { <p class="muted">"Not kept for this request: it was made before prompt logging was turned on, or its retention has passed."</p> }.into_any(),
                _ => view! { <p class="muted">"Prompt logging is off for this organisation, so prompts and answers are not kept. Owners and admins can turn it on in " <a href="/org">"Organisation"</a> "."</p> }.into_any(),
            }}
        </section>
    }
}

fn pct(part: i64, whole: i64) -> String {
    if whole == 0 {
        return "—".into();
    }
    let tenths = part * 1000 / whole;
    format!("{}.{}%", tenths / 10, (tenths % 10).abs())
}

#[component]
fn MoneyTable(title: &'static str, rows: Vec<MoneyRow>, health: bool) -> impl IntoView {
    view! {
        <section class="panel money-table">
            <h2>{title}</h2>
            {if rows.is_empty() {
                view! { <p class="muted">"No requests in this period."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                    <table class="data-table">
                        <thead><tr>
                            <th>"Name"</th><th class="num">"Requests"</th>
                            {health.then(|| view! { <th class="num">"Errors"</th><th class="num">"Mean latency"</th><th class="num">"Mean first token"</th> })}
                            <th class="num">"Revenue"</th><th class="num">"Cost"</th><th class="num">"Margin"</th>
                        </tr></thead>
                        <tbody>
                            {rows.into_iter().map(|r| {
                                let warn = r.errors * 10 > r.requests;
                                view! {
                                <tr data-name=r.name.clone()>
                                    <td>{r.name.clone()}</td>
                                    <td class="num">{compact(r.requests)}</td>
                                    {health.then(|| view! {
                                        <td class="num" class:warn=warn>{pct(r.errors, r.requests)}</td>
                                        <td class="num">{if r.requests > 0 { ms(r.mean_latency_ms) } else { "—".into() }}</td>
                                        <td class="num">{if r.mean_ttft_ms > 0 { ms(r.mean_ttft_ms) } else { "—".into() }}</td>
                                    })}
                                    <td class="num">{usd(r.revenue_nanos)}</td>
                                    <td class="num">{usd(r.cost_nanos)}</td>
                                    <td class="num">{usd(r.revenue_nanos - r.cost_nanos)}</td>
                                </tr>
                            }}).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

/// `/admin/analytics`: revenue, cost and margin; provider health; purchases, refunds and what is owed.
#[component]
pub fn AnalyticsPage() -> impl IntoView {
    let range = RwSignal::new("30d".to_string());
    let group = RwSignal::new("model".to_string());
    let measure = RwSignal::new(0usize);
    let measure_s = RwSignal::new("0".to_string());
    Effect::new(move |_| measure.set(measure_s.get().parse().unwrap_or(0)));
    let data = Resource::new(
        move || (range.get(), group.get()),
        |(r, g)| load_analytics(r, g),
    );
    view! {
        <main class="page admin analytics-page">
            <h1>"Admin"</h1>
            <nav class="admin-tabs"><a href="/admin">"People and money"</a><a href="/admin/catalog">"Catalog"</a><a href="/admin/analytics" aria-current="page">"Analytics"</a></nav>
            <Transition fallback=|| view! { <p class="muted">"Loading analytics…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) if crate::account::error_text(&e).contains("sign in") => view! { <Redirect path="/signin?next=/admin/analytics"/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any(),
                    Ok(a) => {
                        let margin = a.revenue_nanos - a.cost_nanos;
                        let measures = measure_options(&a.chart);
                        let groups = [("model", "Model"), ("provider", "Provider"), ("org", "Organisation")];
                        view! {
                            <div class="chart-controls">
                                <Segmented label="Period" options=ranges() value=range/>
                            </div>
                            <section class="cards analytics-cards">
                                <div class="card" data-card="revenue"><div class="card-label">"Revenue"</div><div class="card-value" title=format!("{} nano-USD", a.revenue_nanos)>{usd(a.revenue_nanos)}</div><div class="muted small">"charged to tenants"</div></div>
                                <div class="card" data-card="cost"><div class="card-label">"Provider cost"</div><div class="card-value">{usd(a.cost_nanos)}</div></div>
                                <div class="card" data-card="margin"><div class="card-label">"Margin"</div><div class="card-value">{usd(margin)}</div><div class="muted small">{format!("{} of revenue", pct(margin, a.revenue_nanos))}</div></div>
                                <div class="card" data-card="requests"><div class="card-label">"Requests"</div><div class="card-value">{compact(a.requests)}</div><div class="muted small">{format!("{} errors", pct(a.errors, a.requests))}</div></div>
                                <div class="card" data-card="purchases"><div class="card-label">"Credit purchases"</div><div class="card-value">{usd(a.purchases_nanos)}</div><div class="muted small">{format!("{} payments · {} refunded ({})", a.purchases, usd(a.refunds_nanos), a.refunds)}</div></div>
                                <div class="card" data-card="liability"><div class="card-label">"Owed to tenants"</div><div class="card-value" title=format!("{} nano-USD", a.liability_nanos)>{usd(a.liability_nanos)}</div><div class="muted small">{format!("unspent credit of {} organisation{}", a.orgs_in_credit, if a.orgs_in_credit == 1 { "" } else { "s" })}</div></div>
                                <div class="card" data-card="uncollected" title="What providers may have billed the platform that no tenant was charged for"><div class="card-label">"Uncollected"</div><div class="card-value" title=format!("{} nano-USD", a.uncollected_nanos)>{usd(a.uncollected_nanos)}</div><div class="muted small">{format!("provider cost at stake {}", usd(a.loss_cost_nanos))}</div></div>
                            </section>
                            <section class="panel">
                                <div class="chart-controls">
                                    <label class="inline-label">"Stacked by "
                                        <select name="group" on:change=move |ev| group.set(event_target_value(&ev))>
                                            {groups.into_iter().map(|(v, l)| view! { <option value=v selected=a.group == v>{l}</option> }).collect_view()}
                                        </select>
                                    </label>
                                    <Segmented label="Measure" options=measures value=measure_s/>
                                </div>
                                <StackedChart chart=a.chart.clone() measure=measure/>
                            </section>
                            <MoneyTable title="Providers" rows=a.by_provider.clone() health=true/>
                            <div class="two-col">
                                <MoneyTable title="Models" rows=a.by_model.clone() health=false/>
                                <MoneyTable title="Top organisations" rows=a.by_org.clone() health=false/>
                            </div>
                            <LossTable rows=a.losses.clone()/>
                        }.into_any()
                    }
                })}
            </Transition>
        </main>
    }
}

/// What providers billed that no tenant paid, by provider and why.
#[component]
fn LossTable(rows: Vec<crate::usage::LossRow>) -> impl IntoView {
    let why = |kind: &str| match kind {
        "over_hold" => "usage reported above the hold (the tenant paid the hold)",
        "abandoned" => "attempt given up after the provider may have started (worst case)",
        "hold_released" => "settled after its hold was released; the balance could not pay all",
        "instance_died" => "in flight when its instance died (the hold is the bound)",
        _ => "",
    };
    view! {
        <section class="panel money-table losses">
            <h2>"Operator losses"</h2>
            {if rows.is_empty() {
                view! { <p class="muted">"None in this period: every token providers billed was charged to a tenant."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                    <table class="data-table">
                        <thead><tr><th>"Provider"</th><th>"Why"</th><th class="num">"Count"</th><th class="num">"Provider cost"</th><th class="num">"Uncollected"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|r| view! {
                                <tr data-loss=r.kind.clone()>
                                    <td>{r.provider.clone()}</td>
                                    <td>{why(&r.kind)}</td>
                                    <td class="num">{r.count}</td>
                                    <td class="num" title=format!("{} nano-USD", r.cost_nanos)>{usd(r.cost_nanos)}</td>
                                    <td class="num" title=format!("{} nano-USD", r.uncollected_nanos)>{usd(r.uncollected_nanos)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

/// The organisation page's prompt logging setting (owners and admins change it).
#[component]
pub fn PromptLogging(
    on: bool,
    days: i64,
    manages: bool,
    action: ServerAction<SavePromptLogging>,
) -> impl IntoView {
    view! {
        <section class="panel prompt-logging">
            <h2>"Prompt logging"</h2>
            <p class="muted">{if on {
                format!("On: the messages and answers of new requests are kept for {days} days and shown in the activity log.")
            } else {
                "Off: prompts and answers are not stored. The activity log still shows every request's model, tokens, cost and timing.".to_string()
            }}</p>
            {manages.then(|| view! {
                <ActionForm action=action attr:class="form inline-form">
                    <label class="check"><input type="checkbox" name="on" value="on" checked=on/>" Keep prompts and answers"</label>
                    <label>"for " <input name="retention_days" type="number" min="1" max="365" value=days.to_string() class="short"/> " days"</label>
                    <button type="submit" class="button">"Save"</button>
                </ActionForm>
                {move || outcome_line(action.value().get())}
            })}
        </section>
    }
}
