//! `switchyard catalog apply FILE.toml`: operators keep their catalog in git and apply it idempotently.
//! The whole file is checked first; any error (named by line and field) means nothing is applied.
//!
//! Apply upserts every provider, model and endpoint in the file and the default markup. Endpoints of a model
//! in the file that the file no longer lists are disabled; nothing else is deleted.

use super::ProviderKind;
use crate::crypto::Cipher;
use crate::money::{Markup, MtokPrice};
use crate::store::{new_id, now_ms, Store};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    #[serde(default)]
    pub providers: Vec<ProviderSpec>,
    #[serde(default)]
    pub models: Vec<ModelSpec>,
    pub markup: Option<MarkupSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub slug: Spanned<String>,
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: Spanned<String>,
    pub api_key: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub slug: Spanned<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub context_length: u64,
    pub max_output_tokens: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub provider: Spanned<String>,
    pub upstream_model: String,
    pub input_per_mtok: MtokPrice,
    pub output_per_mtok: MtokPrice,
    pub max_output_tokens: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkupSpec {
    pub default_percent: Markup,
}

fn yes() -> bool {
    true
}

/// What `apply` did, for the operator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub providers: usize,
    pub models: usize,
    pub endpoints: usize,
    pub endpoints_disabled: u64,
    pub markup_percent: Option<String>,
}

/// A file that failed validation: every problem found, each naming its line and field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: nothing was applied; fix these and apply again:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct FileErrors {
    pub path: String,
    pub problems: Vec<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

fn slug_ok(s: &str, allow_slash: bool) -> bool {
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');
    if allow_slash {
        match s.split_once('/') {
            Some((a, b)) => {
                !a.is_empty() && !b.is_empty() && a.chars().all(ok_char) && b.chars().all(ok_char)
            }
            None => false,
        }
    } else {
        !s.is_empty() && s.chars().all(ok_char)
    }
}

/// A provider ready to be written: credentials resolved from the environment where asked.
struct ResolvedProvider<'a> {
    spec: &'a ProviderSpec,
    base_url: String,
    api_key: Option<String>,
}

/// Parses and checks a catalog file. `env` resolves `env:NAME` values. `known_providers` are slugs that
/// already exist in the database (an endpoint may refer to those too).
pub fn check(
    path: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    known_providers: &HashSet<String>,
) -> Result<CatalogFile, FileErrors> {
    let fail = |problems: Vec<String>| FileErrors {
        path: path.to_string(),
        problems,
    };
    let file: CatalogFile = toml::from_str(text).map_err(|e| {
        // Name the line and quote it, so the field is obvious whatever the message says.
        let at = e.span().map(|s| {
            let n = line_of(text, s.start);
            let quoted = text
                .lines()
                .nth(n - 1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .unwrap_or("");
            format!("line {n} ({quoted}): ")
        });
        fail(vec![format!("{}{}", at.unwrap_or_default(), e.message())])
    })?;
    let mut problems = Vec::new();
    let at = |s: std::ops::Range<usize>| line_of(text, s.start);

    let mut seen = HashSet::new();
    for p in &file.providers {
        let slug = p.slug.get_ref();
        if !slug_ok(slug, false) {
            problems.push(format!("line {}: providers.slug {slug:?} must be lowercase letters, digits, '-', '_' or '.'", at(p.slug.span())));
        }
        if !seen.insert(slug.clone()) {
            problems.push(format!(
                "line {}: providers.slug {slug:?} is defined twice",
                at(p.slug.span())
            ));
        }
        if let Err(msg) = resolve(p.base_url.get_ref(), env) {
            problems.push(format!(
                "line {}: providers.base_url {msg}",
                at(p.base_url.span())
            ));
        } else if let Ok(url) = resolve(p.base_url.get_ref(), env) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!(
                    "line {}: providers.base_url {url:?} must start with http:// or https://",
                    at(p.base_url.span())
                ));
            }
        }
        if let Some(k) = &p.api_key {
            if let Err(msg) = resolve(k.get_ref(), env) {
                problems.push(format!("line {}: providers.api_key {msg}", at(k.span())));
            }
        }
    }
    let mut seen_models = HashSet::new();
    for m in &file.models {
        let slug = m.slug.get_ref();
        let line = at(m.slug.span());
        if !slug_ok(slug, true) {
            problems.push(format!("line {line}: models.slug {slug:?} must look like \"author/name\" (lowercase letters, digits, '-', '_', '.')"));
        }
        if !seen_models.insert(slug.clone()) {
            problems.push(format!(
                "line {line}: models.slug {slug:?} is defined twice"
            ));
        }
        if m.context_length == 0 {
            problems.push(format!(
                "line {line}: models.context_length of {slug:?} must be positive"
            ));
        }
        let mut seen_eps = HashSet::new();
        for e in &m.endpoints {
            let prov = e.provider.get_ref();
            if !seen.contains(prov) && !known_providers.contains(prov) {
                problems.push(format!("line {}: models.endpoints.provider {prov:?} is not a provider in this file or the catalog", at(e.provider.span())));
            }
            if !seen_eps.insert((prov.clone(), e.upstream_model.clone())) {
                problems.push(format!(
                    "line {}: models.endpoints: {prov:?} serves {:?} twice for {slug:?}",
                    at(e.provider.span()),
                    e.upstream_model
                ));
            }
            if e.upstream_model.trim().is_empty() {
                problems.push(format!(
                    "line {}: models.endpoints.upstream_model must not be empty",
                    at(e.provider.span())
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(fail(problems))
    }
}

/// `env:NAME` reads the variable NAME; anything else is the literal value.
fn resolve(v: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    match v.strip_prefix("env:") {
        Some(name) => env(name)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("refers to environment variable {name}, which is not set")),
        None => Ok(v.to_string()),
    }
}

/// Checks the file, then writes all of it in one transaction and bumps the catalog version.
pub async fn apply(
    store: &Store,
    cipher: &Cipher,
    path: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<ApplyReport> {
    let existing: Vec<(String, String)> = sqlx::query_as("SELECT slug, id FROM providers")
        .fetch_all(&store.pool)
        .await?;
    let known: HashSet<String> = existing.iter().map(|(s, _)| s.clone()).collect();
    let file = check(path, text, env, &known)?;
    let resolved: Vec<ResolvedProvider> = file
        .providers
        .iter()
        .map(|p| ResolvedProvider {
            spec: p,
            base_url: resolve(p.base_url.get_ref(), env)
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            api_key: p
                .api_key
                .as_ref()
                .and_then(|k| resolve(k.get_ref(), env).ok()),
        })
        .collect();

    let now = now_ms();
    let mut report = ApplyReport::default();
    let mut tx = store.writer.begin().await?;
    let mut provider_ids: HashMap<String, String> = existing.into_iter().collect();
    for p in &resolved {
        let slug = p.spec.slug.get_ref();
        let enc = p.api_key.as_deref().map(|k| cipher.encrypt(k));
        let last4 = p.api_key.as_deref().map(|k| {
            let n = k.chars().count();
            k.chars().skip(n.saturating_sub(4)).collect::<String>()
        });
        let id = provider_ids.get(slug).cloned().unwrap_or_else(new_id);
        sqlx::query(
            "INSERT INTO providers (id, slug, name, kind, base_url, api_key_enc, enabled, created_at, updated_at, api_key_last4) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) \
             ON CONFLICT (slug) DO UPDATE SET name = excluded.name, kind = excluded.kind, base_url = excluded.base_url, \
               api_key_enc = excluded.api_key_enc, api_key_last4 = excluded.api_key_last4, enabled = excluded.enabled, \
               updated_at = excluded.updated_at",
        )
        .bind(&id)
        .bind(slug)
        .bind(&p.spec.name)
        .bind(p.spec.kind.as_str())
        .bind(&p.base_url)
        .bind(enc)
        .bind(p.spec.enabled as i64)
        .bind(now)
        .bind(last4)
        .execute(&mut *tx)
        .await?;
        provider_ids.insert(slug.clone(), id);
        report.providers += 1;
    }
    for m in &file.models {
        let slug = m.slug.get_ref();
        sqlx::query(
            "INSERT INTO models (id, slug, name, description, context_length, max_output_tokens, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (slug) DO UPDATE SET name = excluded.name, description = excluded.description, \
               context_length = excluded.context_length, max_output_tokens = excluded.max_output_tokens, \
               enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(new_id())
        .bind(slug)
        .bind(&m.name)
        .bind(&m.description)
        .bind(m.context_length as i64)
        .bind(m.max_output_tokens.map(|v| v as i64))
        .bind(m.enabled as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (model_id,): (String,) = sqlx::query_as("SELECT id FROM models WHERE slug = $1")
            .bind(slug)
            .fetch_one(&mut *tx)
            .await?;
        report.models += 1;
        // Endpoints the file no longer lists for this model stop receiving traffic.
        let r = sqlx::query(
            "UPDATE endpoints SET enabled = 0, updated_at = $2 WHERE model_id = $1 AND enabled = 1",
        )
        .bind(&model_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut disabled = r.rows_affected();
        for e in &m.endpoints {
            let provider_id = provider_ids
                .get(e.provider.get_ref())
                .cloned()
                .unwrap_or_default();
            sqlx::query(
                "INSERT INTO endpoints (id, model_id, provider_id, upstream_model, input_per_mtok_nanos, output_per_mtok_nanos, \
                   max_output_tokens, enabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 ON CONFLICT (model_id, provider_id, upstream_model) DO UPDATE SET \
                   input_per_mtok_nanos = excluded.input_per_mtok_nanos, output_per_mtok_nanos = excluded.output_per_mtok_nanos, \
                   max_output_tokens = excluded.max_output_tokens, enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(new_id())
            .bind(&model_id)
            .bind(&provider_id)
            .bind(&e.upstream_model)
            .bind(e.input_per_mtok.0)
            .bind(e.output_per_mtok.0)
            .bind(e.max_output_tokens.map(|v| v as i64))
            .bind(e.enabled as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if e.enabled {
                disabled = disabled.saturating_sub(1);
            }
            report.endpoints += 1;
        }
        report.endpoints_disabled += disabled;
    }
    if let Some(mk) = &file.markup {
        sqlx::query(
            "INSERT INTO markup_rules (scope, ppm, updated_at) VALUES ('default', $1, $2) \
             ON CONFLICT (scope) DO UPDATE SET ppm = excluded.ppm, updated_at = excluded.updated_at",
        )
        .bind(mk.default_percent.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        report.markup_percent = Some(mk.default_percent.to_percent_string());
    }
    super::admin::record(
        &mut tx,
        None,
        "catalog apply",
        path,
        None,
        Some(serde_json::json!({
            "providers": report.providers, "models": report.models, "endpoints": report.endpoints,
            "endpoints_disabled": report.endpoints_disabled, "markup": report.markup_percent,
        })),
    )
    .await?;
    super::admin::bump(&mut tx).await?;
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[providers]]
slug = "acme"
name = "Acme AI"
kind = "openai"
base_url = "http://127.0.0.1:9999/v1"
api_key = "env:ACME_API_KEY"

[[models]]
slug = "acme/fast-1"
name = "Acme Fast 1"
context_length = 128000
[[models.endpoints]]
provider = "acme"
upstream_model = "fast-1"
input_per_mtok = "0.50"
output_per_mtok = "1.50"

[markup]
default_percent = "10"
"#;

    fn env(n: &str) -> Option<String> {
        (n == "ACME_API_KEY").then(|| "sk-acme".to_string())
    }

    #[test]
    fn good_file_parses() {
        let f = check("c.toml", GOOD, &env, &HashSet::new()).expect("valid");
        assert_eq!(
            f.models[0].endpoints[0].input_per_mtok,
            MtokPrice(500_000_000)
        );
        assert_eq!(f.markup.expect("markup").default_percent, Markup(100_000));
    }

    fn problems(text: &str) -> String {
        check("c.toml", text, &env, &HashSet::new())
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = problems(&GOOD.replace(
            "context_length = 128000",
            "context_length = 128000\ncolour = 1",
        ));
        assert!(e.contains("line 13") && e.contains("colour"), "{e}");
        let e = problems(&GOOD.replace("\"0.50\"", "\"0.5x\""));
        assert!(
            e.contains("line 16") && e.contains("input_per_mtok") && e.contains("0.5x"),
            "{e}"
        );
        let e = problems(&GOOD.replace("provider = \"acme\"", "provider = \"nope\""));
        assert!(e.contains("line 14") && e.contains("nope"), "{e}");
        let dup = format!(
            "{GOOD}\n[[models]]\nslug = \"acme/fast-1\"\nname = \"x\"\ncontext_length = 1\n"
        );
        let e = problems(&dup);
        assert!(e.contains("defined twice") && e.contains("line 23"), "{e}");
        let e = problems(&GOOD.replace("env:ACME_API_KEY", "env:MISSING_KEY"));
        assert!(e.contains("line 7") && e.contains("MISSING_KEY"), "{e}");
        let e = problems(&GOOD.replace("kind = \"openai\"", "kind = \"smoke-signals\""));
        assert!(e.contains("line 5") && e.contains("smoke-signals"), "{e}");
    }
}
