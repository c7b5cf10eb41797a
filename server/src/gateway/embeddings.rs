//! `POST /embeddings`: OpenAI's shape, routed and failed over like chat, billed per input token at the
//! serving endpoint's input price. Embeddings go to OpenAI-compatible endpoints (OpenAI, Azure and the
//! presets); an endpoint of another protocol is passed over.

use super::chat::{self, attempt, Billed, Next, Outcome, Usage, GEN_HEADER};
use super::{ApiKeyAuth, LimitedBody};
use crate::error::ApiError;
use crate::money::{Nanos, Tokens};
use crate::providers::{self, openai, FailureKind, Timeouts, UpstreamFailure, Wire};
use crate::state::AppState;
use axum::{
    extract::State,
    http::HeaderValue,
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};
use std::time::Instant;

/// The input's characters (strings) or tokens (token arrays), and whether it is well formed.
fn input_size(v: &Value) -> Result<(usize, usize), ApiError> {
    let bad = || {
        ApiError::bad_field(
            "input",
            "must be a string, an array of strings, or an array of token arrays",
        )
    };
    match v {
        Value::String(s) if !s.is_empty() => Ok((s.chars().count(), 0)),
        Value::Array(a) if !a.is_empty() && a.len() <= 2048 => {
            let mut chars = 0;
            let mut tokens = 0;
            for item in a {
                match item {
                    Value::String(s) if !s.is_empty() => chars += s.chars().count(),
                    Value::Number(_) => tokens += 1,
                    Value::Array(t) if !t.is_empty() && t.iter().all(Value::is_number) => {
                        tokens += t.len()
                    }
                    _ => return Err(bad()),
                }
            }
            Ok((chars, tokens))
        }
        _ => Err(bad()),
    }
}

pub async fn embeddings(
    State(state): State<AppState>,
    ApiKeyAuth(key): ApiKeyAuth,
    LimitedBody(bytes): LimitedBody,
) -> Result<Response, ApiError> {
    let mut body = super::request::json_object(&bytes)?;
    let model = match body.get("model") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            return Err(ApiError::bad_field(
                "model",
                "is required: an embedding model from GET /api/v1/models",
            ))
        }
    };
    let (chars, tokens) = input_size(body.get("input").unwrap_or(&Value::Null))?;
    let prefs = match body.remove("provider") {
        None | Some(Value::Null) => super::route::Prefs::default(),
        Some(p) => super::route::parse_prefs(&p)?,
    };
    let prefs = prefs.over(&key.provider_prefs);
    let catalog = state.catalog.get();
    let models = chat::resolve_models(&state, &key, &catalog, &[model])?;
    let plan = chat::plan(&state, &key, &catalog, &models, &prefs, &body)?;
    let estimate = (chars as u64).div_ceil(4) + tokens as u64;
    // A token is at least one byte of the request (or one number of a token array).
    let bound = bytes.len() as u64;
    let worst = plan
        .iter()
        .map(|c| c.pricing.charge_bound(bound, 0))
        .max()
        .unwrap_or(Nanos::ZERO);
    let billed = chat::admit(&state, &key, plan[0].model.clone(), worst, estimate, None).await?;
    // Read to the end even if the client goes away: the provider bills the embeddings all the same.
    tokio::spawn(dispatch(billed, body, plan, bound))
        .await
        .map_err(ApiError::internal)
}

async fn dispatch(
    mut billed: Billed,
    body: serde_json::Map<String, Value>,
    plan: Vec<super::route::Candidate>,
    bound: u64,
) -> Response {
    let state = billed.state.clone();
    let mut last: Option<UpstreamFailure> = None;
    let mut failed_keys: Vec<String> = Vec::new();
    'endpoints: for cand in &plan {
        let ep = &cand.endpoint;
        let mut tried_here = false;
        let t = Timeouts::for_model(&state.cfg, &cand.model);
        while let Some(cred) = chat::pick_key(&mut billed, ep, &failed_keys, tried_here, &mut last)
        {
            tried_here = true;
            let started = Instant::now();
            let result = async {
                if providers::wire(ep.provider.kind) != Wire::OpenAi {
                    return Err(UpstreamFailure::new(
                        FailureKind::Unsupported,
                        &ep.provider.name,
                        "embeddings are served here by OpenAI-compatible providers only",
                    ));
                }
                let mut b = body.clone();
                b.insert("model".into(), Value::String(ep.upstream_model.clone()));
                let req = state
                    .http
                    .post(openai::chat_url(ep, "embeddings"))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(&b).expect("JSON serialises"));
                let req = openai::authorise(ep.provider.kind, req, cred);
                let resp = providers::send(req, &ep.provider.name, t).await?;
                // The provider answered 2xx: whatever goes wrong now, it may bill for.
                let malformed = |m: String| {
                    UpstreamFailure::new(FailureKind::Malformed, &ep.provider.name, m).billable()
                };
                let raw = providers::read_capped(resp, 256 * 1024 * 1024, t.idle)
                    .await
                    .map_err(|k| UpstreamFailure {
                        kind: k,
                        ..malformed("the response could not be read".into())
                    })?;
                let v: Value = serde_json::from_slice(&raw)
                    .map_err(|e| malformed(format!("response is not JSON ({e})")))?;
                if !v["data"].is_array() {
                    return Err(malformed("response has no `data` array".into()));
                }
                Ok(v)
            }
            .await;
            match result {
                Ok(v) => {
                    billed.state.health.record(&ep.id, true);
                    billed.attempts.push(attempt(ep, 200, None, started));
                    return answer(billed, cand, v).await;
                }
                Err(f) => {
                    if f.billable {
                        billed.abandoned(ep, &cand.pricing, (bound, 0), &f.message);
                    }
                    match chat::failed(
                        &mut billed,
                        ep,
                        cred,
                        f,
                        started,
                        &mut failed_keys,
                        &mut last,
                    ) {
                        Next::OtherKey => {}
                        Next::OtherEndpoint => break,
                        Next::Answer => break 'endpoints,
                    }
                }
            }
        }
    }
    chat::unanswered(billed, last, false).await
}

async fn answer(mut billed: Billed, cand: &super::route::Candidate, mut v: Value) -> Response {
    let reported = v["usage"]["prompt_tokens"].as_u64();
    let usage = Usage {
        tokens: Tokens::new(reported.unwrap_or(billed.prompt_estimate), 0),
        reasoning: 0,
        estimated: reported.is_none(),
    };
    let generation = billed.generation(Outcome {
        endpoint: Some(&cand.endpoint),
        pricing: Some(cand.pricing),
        usage,
        upstream_id: None,
        finish_reason: None,
        ttft_ms: None,
        streamed: false,
        cancelled: false,
        status: 200,
        error: None,
    });
    let cost = generation.charge;
    let prompt = generation.prompt_tokens;
    billed.settle(generation).await;
    v["model"] = json!(cand.model.slug);
    v["provider"] = json!(cand.endpoint.provider.name);
    v["id"] = json!(billed.gen_id);
    v["usage"] = json!({"prompt_tokens": prompt, "total_tokens": prompt, "cost": cost.usd_json()});
    let mut res = axum::Json(v).into_response();
    if let Ok(h) = HeaderValue::from_str(&billed.gen_id) {
        res.headers_mut().insert(GEN_HEADER, h);
    }
    res
}
