//! Routing: which endpoints a request may use and in what order.
//!
//! The request names a model (with an optional `:floor` or `:nitro` variant) and perhaps fallback
//! `models`; each model's endpoints are filtered by the `provider` preferences (the request's, else the
//! organisation's defaults): `only`, `ignore`, `data_collection: "deny"`, `require_parameters`,
//! `max_price`. Then they are ordered: `order` first; or by `sort` (price, latency, throughput); or by
//! default — lower `priority` first and, among equals, a random draw weighted by the endpoint's `weight`
//! over the square of its price (OpenRouter prefers cheaper providers by the inverse square of price).
//! Endpoints whose circuit breaker is open go last. `allow_fallbacks: false` keeps only the first choice
//! (or the `order` list).

use super::health::{Gate, Health};
use crate::catalog::{Catalog, Endpoint, Model};
use crate::error::ApiError;
use crate::money::{MtokPrice, Nanos, Pricing, Tokens};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    Price,
    Latency,
    Throughput,
}

/// The `provider` object; every field optional so request and organisation defaults can be layered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefs {
    pub order: Option<Vec<String>>,
    pub only: Option<Vec<String>>,
    pub ignore: Option<Vec<String>>,
    pub allow_fallbacks: Option<bool>,
    pub sort: Option<Sort>,
    pub require_parameters: Option<bool>,
    /// `Some(true)`: only providers that do not keep prompts.
    pub deny_data_collection: Option<bool>,
    /// Highest tenant price per million prompt / completion tokens, and per request.
    pub max_prompt: Option<MtokPrice>,
    pub max_completion: Option<MtokPrice>,
    pub max_request: Option<Nanos>,
}

impl Prefs {
    /// The request's preferences, falling back field by field to `defaults`.
    pub fn over(self, defaults: &Prefs) -> Prefs {
        Prefs {
            order: self.order.or_else(|| defaults.order.clone()),
            only: self.only.or_else(|| defaults.only.clone()),
            ignore: self.ignore.or_else(|| defaults.ignore.clone()),
            allow_fallbacks: self.allow_fallbacks.or(defaults.allow_fallbacks),
            sort: self.sort.or(defaults.sort),
            require_parameters: self.require_parameters.or(defaults.require_parameters),
            deny_data_collection: self.deny_data_collection.or(defaults.deny_data_collection),
            max_prompt: self.max_prompt.or(defaults.max_prompt),
            max_completion: self.max_completion.or(defaults.max_completion),
            max_request: self.max_request.or(defaults.max_request),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Prefs::default()
    }
}

fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_field(&format!("provider.{field}"), why)
}

fn names(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    let Value::Array(a) = v else {
        return Err(bad(field, "must be an array of provider names"));
    };
    a.iter()
        .map(|s| {
            s.as_str()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad(field, "must be an array of provider names"))
        })
        .collect()
}

/// A price in USD per million tokens, written as a number or a decimal string.
fn price(v: &Value, field: &str) -> Result<MtokPrice, ApiError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(bad(field, "must be a price in USD per million tokens")),
    };
    MtokPrice::parse_usd(&text).map_err(|e| {
        bad(
            field,
            format!("must be a price in USD per million tokens ({e})"),
        )
    })
}

/// Parses the `provider` object (of a request, or an organisation's defaults).
pub fn parse_prefs(v: &Value) -> Result<Prefs, ApiError> {
    let Value::Object(o) = v else {
        return Err(ApiError::bad_field("provider", "must be an object"));
    };
    let mut p = Prefs::default();
    for (k, v) in o {
        if v.is_null() {
            continue;
        }
        match k.as_str() {
            "order" => p.order = Some(names(v, k)?),
            "only" => p.only = Some(names(v, k)?),
            "ignore" => p.ignore = Some(names(v, k)?),
            "allow_fallbacks" => {
                p.allow_fallbacks = Some(v.as_bool().ok_or_else(|| bad(k, "must be true or false"))?)
            }
            "require_parameters" => {
                p.require_parameters =
                    Some(v.as_bool().ok_or_else(|| bad(k, "must be true or false"))?)
            }
            "data_collection" => {
                p.deny_data_collection = Some(match v.as_str() {
                    Some("deny") => true,
                    Some("allow") => false,
                    _ => return Err(bad(k, "must be \"allow\" or \"deny\"")),
                })
            }
            "sort" => {
                let s = v.as_str().or_else(|| v.get("by").and_then(Value::as_str));
                p.sort = Some(match s {
                    Some("price") => Sort::Price,
                    Some("latency") => Sort::Latency,
                    Some("throughput") => Sort::Throughput,
                    _ => return Err(bad(k, "must be \"price\", \"latency\" or \"throughput\"")),
                })
            }
            "max_price" => {
                let Value::Object(m) = v else {
                    return Err(bad(k, "must be an object like {\"prompt\": 1, \"completion\": 2} (USD per million tokens)"));
                };
                for (mk, mv) in m {
                    let f = format!("max_price.{mk}");
                    match mk.as_str() {
                        "prompt" => p.max_prompt = Some(price(mv, &f)?),
                        "completion" => p.max_completion = Some(price(mv, &f)?),
                        "request" => {
                            let text = match mv {
                                Value::Number(n) => n.to_string(),
                                Value::String(s) => s.clone(),
                                _ => return Err(bad(&f, "must be a price in USD")),
                            };
                            p.max_request = Some(
                                Nanos::parse_usd(&text)
                                    .map_err(|e| bad(&f, format!("must be a price in USD ({e})")))?,
                            )
                        }
                        // Prices of media this gateway does not sell cannot be exceeded.
                        "image" | "audio" | "web_search" | "internal_reasoning" => {}
                        _ => return Err(bad(&f, "is not a price this platform sets (prompt, completion, request)")),
                    }
                }
            }
            // Accepted for compatibility; every endpoint here is what the catalog says it is.
            "zdr" | "quantizations" | "experimental" | "preferred_min_throughput"
            | "preferred_max_latency" | "enforce_distillable_text" => {}
            other => {
                return Err(ApiError::bad_field(
                    &format!("provider.{other}"),
                    "is not a routing preference (order, only, ignore, allow_fallbacks, sort, max_price, require_parameters, data_collection)",
                ))
            }
        }
    }
    Ok(p)
}

/// A model a request names, with the order its variant asks for.
pub type Named = (Arc<Model>, Option<Sort>);

/// A model named with an optional variant: the catalog's own slug wins (an operator may list
/// `x:free` as a model); otherwise `:floor` sorts by price and `:nitro` by throughput.
pub fn resolve_model(catalog: &Catalog, name: &str) -> Result<Named, ApiError> {
    if let Some(m) = catalog.models.get(name) {
        return Ok((m.clone(), None));
    }
    let unknown = || {
        ApiError::not_found(format!(
            "model `{name}` is not in this platform's catalog; GET /api/v1/models lists the models"
        ))
        .with_meta("model", name.to_string())
    };
    let (base, variant) = name.rsplit_once(':').ok_or_else(unknown)?;
    let m = catalog.models.get(base).ok_or_else(unknown)?;
    let sort = match variant {
        "floor" => Sort::Price,
        "nitro" => Sort::Throughput,
        other => {
            return Err(ApiError::not_found(format!(
                "model `{base}` has no `:{other}` variant here; the variants are :floor (cheapest first) and :nitro (fastest first)"
            ))
            .with_meta("model", name.to_string()))
        }
    };
    Ok((m.clone(), Some(sort)))
}

/// One endpoint a request may try, with the prices captured at admission.
#[derive(Clone)]
pub struct Candidate {
    pub model: Arc<Model>,
    pub endpoint: Endpoint,
    pub pricing: Pricing,
    pub gate: Gate,
}

/// Request parameters that `require_parameters` holds endpoints to (the rest are passed through, or are
/// the gateway's own).
const CHECKED_PARAMS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "top_a",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "seed",
    "stop",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "structured_outputs",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "max_tokens",
    "max_completion_tokens",
    "reasoning",
    "reasoning_effort",
    "n",
];

/// The parameters a request uses that an endpoint must honour under `require_parameters`.
pub fn used_params(body: &Map<String, Value>) -> Vec<&'static str> {
    CHECKED_PARAMS
        .iter()
        .copied()
        .filter(|p| body.get(*p).is_some_and(|v| !v.is_null()))
        .collect()
}

fn honours(model: &Model, ep: &Endpoint, param: &str) -> bool {
    // The catalog names one spelling of a few parameters.
    let listed = match param {
        "max_completion_tokens" => "max_tokens",
        "reasoning_effort" => "reasoning",
        "structured_outputs" => "response_format",
        p => p,
    };
    let in_catalog = model.supported_parameters.is_empty()
        || model
            .supported_parameters
            .iter()
            .any(|s| s == listed || s == param);
    in_catalog && crate::providers::honours(ep.provider.kind, param)
}

fn matches(ep: &Endpoint, names: &[String]) -> bool {
    names.iter().any(|n| {
        ep.provider.slug.eq_ignore_ascii_case(n) || ep.provider.name.eq_ignore_ascii_case(n)
    })
}

/// The tenant's price per million prompt and completion tokens (the request fee apart).
pub fn unit_prices(p: &Pricing) -> (i64, i64, i64) {
    let fee = p.charge(Tokens::default()).0;
    let prompt = p.charge(Tokens::new(1_000_000, 0)).0 - fee;
    let completion = p.charge(Tokens::new(0, 1_000_000)).0 - fee;
    (prompt, completion, fee)
}

/// Why no endpoint of a model was left, for the error.
fn filtered_out(model: &Model, prefs: &Prefs, params: &[&str]) -> String {
    let mut why = Vec::new();
    if prefs.only.is_some() || prefs.ignore.is_some() || prefs.order.is_some() {
        why.push("provider only/ignore/order");
    }
    if prefs.deny_data_collection == Some(true) {
        why.push("data_collection: deny");
    }
    if prefs.require_parameters == Some(true) && !params.is_empty() {
        why.push("require_parameters");
    }
    if prefs.max_prompt.is_some() || prefs.max_completion.is_some() || prefs.max_request.is_some() {
        why.push("max_price");
    }
    format!(
        "no provider of `{}` meets this request's preferences ({}); its providers are: {}",
        model.slug,
        why.join(", "),
        model
            .endpoints
            .iter()
            .map(|e| e.provider.slug.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The endpoints to try, in order, over every model named.
pub fn plan(
    catalog: &Catalog,
    org_id: &str,
    models: &[Named],
    prefs: &Prefs,
    body: &Map<String, Value>,
    health: &Health,
    probe_timeout: Duration,
) -> Result<Vec<Candidate>, ApiError> {
    let params = if prefs.require_parameters == Some(true) {
        used_params(body)
    } else {
        Vec::new()
    };
    let allow_fallbacks = prefs.allow_fallbacks.unwrap_or(true);
    let mut out = Vec::new();
    let mut reasons = Vec::new();
    for (model, variant) in models {
        let mut eps: Vec<Candidate> = model
            .endpoints
            .iter()
            .filter(|e| prefs.only.as_ref().is_none_or(|o| matches(e, o)))
            .filter(|e| prefs.ignore.as_ref().is_none_or(|i| !matches(e, i)))
            .filter(|e| !(prefs.deny_data_collection == Some(true) && e.provider.collects_data))
            .filter(|e| params.iter().all(|p| honours(model, e, p)))
            .map(|e| Candidate {
                model: model.clone(),
                endpoint: e.clone(),
                pricing: catalog.pricing(org_id, model, e),
                gate: Gate::Healthy,
            })
            .filter(|c| {
                if prefs.max_prompt.is_none()
                    && prefs.max_completion.is_none()
                    && prefs.max_request.is_none()
                {
                    return true;
                }
                let (prompt, completion, fee) = unit_prices(&c.pricing);
                prefs.max_prompt.is_none_or(|m| prompt <= m.0)
                    && prefs.max_completion.is_none_or(|m| completion <= m.0)
                    && prefs.max_request.is_none_or(|m| fee <= m.0)
            })
            .collect();
        if let Some(order) = &prefs.order {
            if !allow_fallbacks {
                eps.retain(|c| matches(&c.endpoint, order));
            }
        }
        if eps.is_empty() {
            reasons.push(filtered_out(model, prefs, &params));
            continue;
        }
        let sort = variant.or(prefs.sort);
        eps = order_endpoints(eps, sort, prefs.order.as_deref(), health);
        if !allow_fallbacks && prefs.order.is_none() {
            eps.truncate(1);
        }
        // Gates are taken last, so a probe is only handed to an endpoint this request will try.
        for c in eps.iter_mut() {
            c.gate = health.gate(&c.endpoint.id, probe_timeout);
        }
        // Healthy ones (and a due probe) first; open breakers keep their order behind them.
        eps.sort_by_key(|c| c.gate == Gate::Open);
        out.extend(eps);
    }
    if out.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_endpoint",
            reasons.join("; "),
        )
        .with_meta("error_type", "no_matching_provider"));
    }
    Ok(out)
}

fn order_endpoints(
    mut eps: Vec<Candidate>,
    sort: Option<Sort>,
    order: Option<&[String]>,
    health: &Health,
) -> Vec<Candidate> {
    if eps.len() < 2 {
        return eps;
    }
    let price = |c: &Candidate| {
        let (p, c, _) = unit_prices(&c.pricing);
        p.saturating_add(c)
    };
    match sort {
        Some(Sort::Price) => eps.sort_by_key(|c| (price(c), c.endpoint.priority)),
        Some(Sort::Latency) => eps.sort_by(|a, b| {
            let l = |c: &Candidate| health.speed(&c.endpoint.id).0.unwrap_or(f64::INFINITY);
            l(a).total_cmp(&l(b))
        }),
        Some(Sort::Throughput) => eps.sort_by(|a, b| {
            let t = |c: &Candidate| health.speed(&c.endpoint.id).1.unwrap_or(0.0);
            t(b).total_cmp(&t(a))
        }),
        None => {
            // Priority groups in order; within one, a weighted draw without replacement
            // (Efraimidis–Spirakis: sort by ln(u)/w, largest first). Weight 0 goes last, cheapest first.
            let mut keyed: Vec<(i64, bool, f64, i64, usize)> = eps
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let p = price(c).max(1) as f64 / 1e6; // USD-ish scale, only for the draw
                    let w = c.endpoint.weight as f64 / (p * p).max(1e-12);
                    let key = if c.endpoint.weight == 0 {
                        f64::NEG_INFINITY
                    } else {
                        rand::random::<f64>().max(1e-300).ln() / w
                    };
                    (
                        c.endpoint.priority,
                        c.endpoint.weight == 0,
                        -key,
                        price(c),
                        i,
                    )
                })
                .collect();
            keyed.sort_by(|a, b| {
                (a.0, a.1)
                    .cmp(&(b.0, b.1))
                    .then(a.2.total_cmp(&b.2))
                    .then(a.3.cmp(&b.3))
            });
            let mut slots: Vec<Option<Candidate>> = eps.into_iter().map(Some).collect();
            eps = keyed.iter().filter_map(|k| slots[k.4].take()).collect();
        }
    }
    if let Some(order) = order {
        // Listed providers first, in the listed order; the others keep theirs.
        let rank = |c: &Candidate| {
            order
                .iter()
                .position(|n| matches(&c.endpoint, std::slice::from_ref(n)))
                .unwrap_or(usize::MAX)
        };
        eps.sort_by_key(rank);
    }
    eps
}
