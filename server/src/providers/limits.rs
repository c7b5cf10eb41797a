//! What a provider can bill for a request's prompt beyond its text: each provider's documented maximum
//! for one media part, and the prompt text an adapter adds on its own. The gateway holds credit for the
//! worst case before a request runs, so these are upper bounds, never estimates; where a provider
//! documents no maximum for a kind of part, the part may take the model's whole context window.
//!
//! Text needs no table: every tokenizer in use (byte-level BPE, SentencePiece with byte fallback) spends
//! at least one byte per token, so the request's bytes outside media payloads bound its text tokens —
//! messages, roles, tool definitions (OpenAI renders them more compactly than their JSON: the cookbook's
//! "How to count tokens with tiktoken" counts 7 tokens a function and 3 a property) and schemas alike.

use super::Wire;

/// How closely an image is looked at (`image_url.detail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    Low,
    High,
    /// `auto`, `original` or not given.
    Auto,
}

/// A part of a prompt that is not text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// An image, with its pixel size when the request carries it inline and its header says.
    Image {
        detail: Detail,
        size: Option<(u32, u32)>,
    },
    Audio,
    /// A document (PDF and friends).
    File,
    Video,
    /// A part of a type the gateway does not know; it may be anything.
    Other,
}

/// What a request's prompt consists of, as far as billing is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptShape {
    /// The request's bytes that reach the provider as text: all of it but media payloads.
    pub text_bytes: u64,
    pub media: Vec<Media>,
    /// The request has tools or a response format (which some adapters send as a tool).
    pub tools: bool,
}

// OpenAI, https://developers.openai.com/api/docs/guides/images-vision (read 2026-12):
/// `detail: "low"`: the largest low-detail cost of any documented model (gpt-4.1-mini: a 6,144-patch
/// budget × 1.62; "`low` does not always use fewer tokens than `high`").
pub const OPENAI_IMAGE_LOW: u64 = 9_954;
/// `high`, `auto`, `original`: gpt-4o-mini at its 8-tile maximum (2,833 base + 8 × 5,667; an image is
/// fitted in 2048², its short side to 768, counted in 512 px tiles), above the patch models' 36,000.
pub const OPENAI_IMAGE_HIGH: u64 = 48_169;
// Anthropic, https://platform.claude.com/docs/en/build-with-claude/vision (2026-08):
/// ⌈w/28⌉ × ⌈h/28⌉ patches, larger images downscaled first: at most 4,784 (Claude 4.7 and later; 1,568
/// for the others).
pub const ANTHROPIC_IMAGE: u64 = 4_784;
/// "When you use `tools`, the API also automatically includes a special system prompt": at most 804
/// tokens (Opus 4.7 with `tool_choice` any/tool), https://platform.claude.com/docs/en/agents-and-tools/tool-use/overview;
/// plus the description of the tool a `response_format` becomes (under 128 bytes).
pub const ANTHROPIC_TOOL_PROMPT: u64 = 804 + 128;
// Google, https://ai.google.dev/gemini-api/docs/media-resolution and /image-understanding:
/// Gemini 3 at `ultra_high` media resolution.
pub const GEMINI_IMAGE_MAX_RESOLUTION: u64 = 2_240;
/// Gemini 2.x: 258 tokens an image up to 384 px, else 258 per tile, tiles of about ⅔ of the short side.
pub const GEMINI_TILE: u64 = 258;
// Amazon, https://docs.aws.amazon.com/nova/latest/nova2-userguide/using-multimodal-models.html:
/// Nova 2: "usage is billed at a flat rate of 230 tokens per image".
pub const NOVA2_IMAGE: u64 = 230;

/// The most tokens one part can be billed as on this provider, when documented.
pub fn allowance(wire: Wire, upstream_model: &str, m: Media) -> Option<u64> {
    match (wire, m) {
        (Wire::OpenAi, Media::Image { detail, .. }) => Some(match detail {
            Detail::Low => OPENAI_IMAGE_LOW,
            Detail::High | Detail::Auto => OPENAI_IMAGE_HIGH,
        }),
        (Wire::Anthropic, Media::Image { .. }) => Some(ANTHROPIC_IMAGE),
        (Wire::Gemini, Media::Image { size, .. }) => {
            size.map(|(w, h)| gemini_tiles(w, h).max(GEMINI_IMAGE_MAX_RESOLUTION))
        }
        (Wire::Bedrock, Media::Image { .. }) => {
            let m = upstream_model.to_ascii_lowercase();
            if m.contains("anthropic.") {
                Some(ANTHROPIC_IMAGE)
            } else if m.contains("amazon.nova-2") {
                Some(NOVA2_IMAGE)
            } else {
                None // Nova 1 and the others document no maximum
            }
        }
        // Audio (no per-second rate for chat), documents (no per-page maximum), video and anything
        // else: bounded only by the context window.
        _ => None,
    }
}

/// Gemini 2.x's documented tiling of an image: 258 tokens when both sides are at most 384 px, else
/// 258 for every crop unit (about the short side divided by 1.5) needed to cover it.
pub fn gemini_tiles(w: u32, h: u32) -> u64 {
    if w <= 384 && h <= 384 {
        return GEMINI_TILE;
    }
    let unit = (w.min(h) as u64 * 2 / 3).max(1);
    (w as u64).div_ceil(unit) * (h as u64).div_ceil(unit) * GEMINI_TILE
}

/// Prompt text the adapter writes that the client did not send.
pub fn added_prompt(wire: Wire, shape: &PromptShape) -> u64 {
    match wire {
        Wire::Anthropic | Wire::Bedrock if shape.tools => ANTHROPIC_TOOL_PROMPT,
        _ => 0,
    }
}

/// The most prompt tokens this request can be billed for at an endpoint of this wire and model whose
/// context window is `context` tokens.
pub fn prompt_bound(wire: Wire, upstream_model: &str, shape: &PromptShape, context: u64) -> u64 {
    let mut total = shape.text_bytes + added_prompt(wire, shape);
    for m in &shape.media {
        match allowance(wire, upstream_model, *m) {
            Some(n) => total = total.saturating_add(n),
            None => return context,
        }
    }
    total.min(context)
}

/// The pixel size an inline image's header declares (`data:image/png;base64,…`), reading only the first
/// bytes of its payload.
pub fn image_size(data_url: &str) -> Option<(u32, u32)> {
    use base64::Engine;
    let (_, payload) = super::data_url(data_url)?;
    // 1 KiB of base64 covers the headers of PNG, GIF, WebP and almost every JPEG.
    let head = &payload[..payload.len().min(1024) / 4 * 4];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(head)
        .ok()?;
    let size = imagesize::blob_size(&bytes).ok()?;
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: u64, media: Vec<Media>, tools: bool) -> PromptShape {
        PromptShape {
            text_bytes: text,
            media,
            tools,
        }
    }

    #[test]
    fn media_take_their_documented_maximum_or_the_context() {
        let img = |detail| Media::Image { detail, size: None };
        let ctx = 128_000;
        assert_eq!(
            prompt_bound(
                Wire::OpenAi,
                "gpt-4o",
                &shape(100, vec![img(Detail::Low)], false),
                ctx
            ),
            100 + OPENAI_IMAGE_LOW
        );
        assert_eq!(
            prompt_bound(
                Wire::OpenAi,
                "gpt-4o",
                &shape(100, vec![img(Detail::Auto), img(Detail::High)], false),
                ctx
            ),
            100 + 2 * OPENAI_IMAGE_HIGH
        );
        assert_eq!(
            prompt_bound(
                Wire::Anthropic,
                "claude",
                &shape(10, vec![img(Detail::Auto)], true),
                ctx
            ),
            10 + ANTHROPIC_IMAGE + ANTHROPIC_TOOL_PROMPT
        );
        // No documented maximum: the whole window.
        assert_eq!(
            prompt_bound(
                Wire::OpenAi,
                "m",
                &shape(10, vec![Media::Audio], false),
                ctx
            ),
            ctx
        );
        assert_eq!(
            prompt_bound(
                Wire::Anthropic,
                "m",
                &shape(10, vec![Media::File], false),
                ctx
            ),
            ctx
        );
        assert_eq!(
            prompt_bound(
                Wire::Gemini,
                "m",
                &shape(10, vec![img(Detail::Auto)], false),
                ctx
            ),
            ctx
        );
        let sized = Media::Image {
            detail: Detail::Auto,
            size: Some((3000, 1000)),
        };
        // 3000×1000: unit 666, 5 × 2 tiles = 2,580 tokens, above Gemini 3's 2,240.
        assert_eq!(
            prompt_bound(Wire::Gemini, "m", &shape(10, vec![sized], false), ctx),
            10 + 2_580
        );
        assert_eq!(
            prompt_bound(
                Wire::Bedrock,
                "us.anthropic.claude-x",
                &shape(0, vec![img(Detail::Low)], false),
                ctx
            ),
            ANTHROPIC_IMAGE
        );
        assert_eq!(
            prompt_bound(
                Wire::Bedrock,
                "meta.llama",
                &shape(0, vec![img(Detail::Low)], false),
                ctx
            ),
            ctx
        );
        // Never past the window.
        assert_eq!(
            prompt_bound(Wire::OpenAi, "m", &shape(500_000, vec![], false), ctx),
            ctx
        );
    }

    #[test]
    fn reads_an_inline_images_size_from_its_header() {
        use base64::Engine;
        // A 1×1 PNG.
        let png = base64::engine::general_purpose::STANDARD.encode([
            0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52,
            0, 0, 0x02, 0x80, 0, 0, 0x01, 0xE0, 8, 6, 0, 0, 0, 0x1F, 0x15, 0xC4, 0x89,
        ]);
        assert_eq!(
            image_size(&format!("data:image/png;base64,{png}")),
            Some((640, 480))
        );
        assert_eq!(image_size("https://example.com/cat.png"), None);
        assert_eq!(image_size("data:image/png;base64,!!!!"), None);
    }
}
