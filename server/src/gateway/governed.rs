//! Request fields that change what a provider charges or what it keeps. OpenAI-compatible endpoints get
//! the client's JSON as it came (unknown fields survive), so a field that raises the provider's price
//! would otherwise be billed to the platform at the list price; the adapters of the other protocols
//! build their provider's request from the fields they know, and leave the rest behind.
//!
//! Each such field is priced or refused: `service_tier` (a tier the endpoint prices as a share of its
//! list price), `web_search_options` (the endpoint's price per searching request), audio input parts
//! (the endpoint's audio price); audio output, xAI's `search_parameters`, provider-side tools and
//! Anthropic's one-hour cache writes are priced nowhere and refused with a 400 naming the field.
//! `store` and `prompt_cache_retention` ask the provider to keep the conversation: refused where the
//! organisation's (or key's, or request's) data policy says `data_collection: "deny"`.

use super::route::Candidate;
use crate::catalog::is_default_tier;
use crate::error::ApiError;
use crate::money::PPM;
use crate::providers::{self, limits::Media, Wire};
use serde_json::{Map, Value};

/// What a request asks for that costs extra.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// A service tier other than the default.
    pub tier: Option<String>,
    pub web_search: bool,
    pub audio_input: bool,
}

fn refuse(field: &str, why: &str) -> ApiError {
    ApiError::bad_field(field, why).with_meta("error_type", "unpriced_parameter")
}

/// Reads the governed fields of a chat request; refuses what no endpoint may serve.
pub fn read(
    body: &Map<String, Value>,
    media: &[Media],
    deny_retention: bool,
) -> Result<Extras, ApiError> {
    let mut x = Extras::default();
    match body.get("service_tier") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if is_default_tier(t) => {}
        Some(Value::String(t)) => x.tier = Some(t.clone()),
        Some(_) => return Err(ApiError::bad_field("service_tier", "must be a string")),
    }
    x.web_search = body.get("web_search_options").is_some_and(|v| !v.is_null());
    x.audio_input = media.contains(&Media::Audio);
    let audio_out = body.get("audio").is_some_and(|v| !v.is_null())
        || body
            .get("modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|m| m == "audio"));
    if audio_out {
        return Err(refuse(
            "modalities",
            "asks for audio output, which this platform does not price; ask for text",
        ));
    }
    if body.get("search_parameters").is_some_and(|v| !v.is_null()) {
        return Err(refuse(
            "search_parameters",
            "turns on the provider's paid live search, which this platform does not price",
        ));
    }
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match t.get("type").and_then(Value::as_str) {
            None | Some("function") | Some("custom") => {}
            Some(kind) => {
                return Err(refuse(
                    &format!("tools[{i}]"),
                    &format!("is a provider-side {kind:?} tool, which this platform does not price; declare functions"),
                ))
            }
        }
    }
    if let Some(path) = one_hour_cache(body) {
        return Err(refuse(
            &path,
            "asks for a one-hour cache write, which this platform does not price; leave `ttl` out (five minutes)",
        ));
    }
    if deny_retention {
        if body.get("store").and_then(Value::as_bool) == Some(true) {
            return Err(refuse(
                "store",
                "asks the provider to keep this conversation, which the data policy (data_collection: \"deny\") forbids",
            ));
        }
        if body
            .get("prompt_cache_retention")
            .is_some_and(|v| !v.is_null())
        {
            return Err(refuse(
                "prompt_cache_retention",
                "asks the provider to keep the prompt longer, which the data policy (data_collection: \"deny\") forbids",
            ));
        }
    }
    Ok(x)
}

/// Where a `cache_control` asks for a one-hour cache: messages' parts, system parts and tools.
fn one_hour_cache(body: &Map<String, Value>) -> Option<String> {
    let long = |v: &Value| v["cache_control"]["ttl"].as_str() == Some("1h");
    for (i, m) in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if long(m) {
            return Some(format!("messages[{i}].cache_control"));
        }
        for (j, p) in m["content"].as_array().into_iter().flatten().enumerate() {
            if long(p) {
                return Some(format!("messages[{i}].content[{j}].cache_control"));
            }
        }
    }
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if long(t) {
            return Some(format!("tools[{i}].cache_control"));
        }
    }
    None
}

/// Whether an endpoint serves what the request asks for at a price (fields its adapter does not send
/// on cost nothing there).
fn serves(c: &Candidate, x: &Extras) -> bool {
    let wire = providers::wire(c.endpoint.provider.kind);
    let passes = wire == Wire::OpenAi;
    let tier = match (&x.tier, passes) {
        (Some(t), true) => c.endpoint.tier_ppm(t).is_some(),
        _ => true,
    };
    let search = !(x.web_search && passes) || c.endpoint.web_search.is_some();
    let audio = !(x.audio_input && matches!(wire, Wire::OpenAi | Wire::Gemini))
        || c.endpoint.audio_input.is_some();
    tier && search && audio
}

/// Keeps the endpoints that price what the request asks for, with those prices in their pricing: a
/// priced tier's multiplier (the hold takes the dearer of it and the default tier, which a provider may
/// fall back to), the web-search price per request. None left is a 400 naming the field.
pub fn apply(plan: Vec<Candidate>, x: &Extras) -> Result<Vec<Candidate>, ApiError> {
    if *x == Extras::default() {
        return Ok(plan);
    }
    let model = plan
        .first()
        .map(|c| c.model.slug.clone())
        .unwrap_or_default();
    let kept: Vec<Candidate> = plan
        .into_iter()
        .filter(|c| serves(c, x))
        .map(|mut c| {
            let passes = providers::wire(c.endpoint.provider.kind) == Wire::OpenAi;
            if let (Some(t), true) = (&x.tier, passes) {
                c.pricing.tier_ppm = c.endpoint.tier_ppm(t).unwrap_or(PPM as i64);
            }
            if x.web_search && passes {
                c.pricing.request.0 += c.endpoint.web_search.map_or(0, |n| n.0);
            }
            c
        })
        .collect();
    if !kept.is_empty() {
        return Ok(kept);
    }
    let (field, what) = if let Some(t) = &x.tier {
        ("service_tier", format!("{t:?} is not offered by any provider of `{model}`; leave it out (the default tier)"))
    } else if x.web_search {
        (
            "web_search_options",
            format!("no provider of `{model}` offers web search here"),
        )
    } else {
        (
            "messages",
            format!("holds audio, and no provider of `{model}` takes audio input here"),
        )
    };
    Err(refuse(field, &what))
}

/// The tier a provider reports it served (OpenAI answers with `service_tier`), priced at this endpoint:
/// what the charge uses; `None` keeps the requested tier's price.
pub fn served_tier_ppm(ep: &crate::catalog::Endpoint, reported: Option<&str>) -> Option<i64> {
    ep.tier_ppm(reported?)
}

/// The pricing to charge at: the captured one, at the tier the provider says it served when this
/// endpoint prices that tier.
pub fn charged_pricing(
    ep: &crate::catalog::Endpoint,
    pricing: crate::money::Pricing,
    reported: Option<&str>,
) -> crate::money::Pricing {
    match served_tier_ppm(ep, reported) {
        Some(tier_ppm) => crate::money::Pricing {
            tier_ppm,
            ..pricing
        },
        None => pricing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn err(v: Value, deny: bool) -> String {
        let e = read(&body(v), &[], deny).expect_err("refused");
        assert_eq!(e.status.as_u16(), 400);
        e.message
    }

    #[test]
    fn fields_that_change_the_price_are_priced_or_refused_by_name() {
        assert_eq!(
            read(&body(json!({"service_tier": "auto"})), &[], false).expect("ok"),
            Extras::default()
        );
        let x = read(
            &body(json!({"service_tier": "flex", "web_search_options": {}})),
            &[Media::Audio],
            false,
        )
        .expect("ok");
        assert_eq!(
            x,
            Extras {
                tier: Some("flex".into()),
                web_search: true,
                audio_input: true
            }
        );
        assert!(err(json!({"modalities": ["text", "audio"]}), false).contains("`modalities`"));
        assert!(err(json!({"search_parameters": {"mode": "on"}}), false)
            .contains("`search_parameters`"));
        assert!(err(
            json!({"tools": [{"type": "function"}, {"type": "web_search"}]}),
            false
        )
        .contains("`tools[1]`"));
        assert!(err(
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]}),
            false
        )
        .contains("`messages[0].content[0].cache_control`"));
        // Retention follows the data policy.
        assert!(read(&body(json!({"store": true})), &[], false).is_ok());
        assert!(err(json!({"store": true}), true).contains("`store`"));
        assert!(err(json!({"prompt_cache_retention": "24h"}), true)
            .contains("`prompt_cache_retention`"));
        assert!(read(&body(json!({"store": false})), &[], true).is_ok());
    }
}
