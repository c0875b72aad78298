//! What a GenAI call cost, worked out at ingest from a price table.
//!
//! Applications rarely report cost; they report a model and token counts.
//! qyl keeps a built-in table of the major providers' list prices (per
//! million tokens, with the date each price took effect), which `[genai]` in
//! qyl.toml can override or extend, and prices every call as its export
//! comes in — on the exporting request's task, not on the writer thread — so
//! queries sum a column instead of joining prices.
//!
//! Rules: a cost the application sent wins (`sent`). Cached tokens are a
//! subset of the input tokens and are priced at the cache rates instead of
//! the input rate. A call whose model has no price is marked `missing` and
//! keeps a NULL cost: totals report how many calls lack a price rather than
//! counting them as $0. Date-suffixed model names (`gpt-4o-2024-08-06`,
//! `claude-3-5-sonnet-20241022`, `…@20240620`) match their base entry.
//!
//! This lives in `ingest` because pricing is an enrichment step like
//! `enrich`; the table is built once from the configuration and shared
//! (read-only) with the API, which shows it at `/api/v1/genai/pricing`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::SpanRecord;

/// One price period of one model.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Price {
    /// The model name, or a prefix ending in `*`. Matched case-insensitively;
    /// a date suffix on the model name is ignored.
    pub model: String,
    /// When set, only calls from this provider (`gen_ai.provider.name`) match.
    pub provider: Option<String>,
    /// Who sells it, for display.
    pub vendor: Option<String>,
    /// First day (UTC) this price applies, `YYYY-MM-DD`.
    pub valid_from: String,
    #[serde(skip)]
    pub valid_from_unix_nano: u64,
    /// USD per million input tokens (uncached).
    pub input_per_mtok: f64,
    /// USD per million output tokens (reasoning tokens included).
    pub output_per_mtok: f64,
    /// USD per million input tokens read from the prompt cache; the input
    /// price when unset.
    pub cache_read_per_mtok: Option<f64>,
    /// USD per million input tokens written to the prompt cache; the input
    /// price when unset.
    pub cache_write_per_mtok: Option<f64>,
    /// `builtin` or `config`.
    pub source: &'static str,
}

/// A price entry in `[[genai.prices]]` of qyl.toml.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub model: String,
    #[serde(default)]
    pub provider: Option<String>,
    /// Without it the entry replaces every built-in period of that model.
    #[serde(default)]
    pub valid_from: Option<String>,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PricingError {
    #[error("genai.prices[{index}] ({model}): {message}")]
    Invalid {
        index: usize,
        model: String,
        message: String,
    },
}

/// The price table in force.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: Vec<Price>,
}

/// (vendor, model pattern, valid from, input, output, cache read, cache
/// write), USD per million tokens: list prices of current models.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    Option<f64>,
    Option<f64>,
);

const BUILTIN: &[Row] = &[
    // OpenAI: cached input is read at a discount; no cache-write charge.
    (
        "openai",
        "gpt-5",
        "2025-08-07",
        1.25,
        10.0,
        Some(0.125),
        None,
    ),
    (
        "openai",
        "gpt-5-mini",
        "2025-08-07",
        0.25,
        2.0,
        Some(0.025),
        None,
    ),
    (
        "openai",
        "gpt-5-nano",
        "2025-08-07",
        0.05,
        0.40,
        Some(0.005),
        None,
    ),
    (
        "openai",
        "gpt-4.1",
        "2025-04-14",
        2.0,
        8.0,
        Some(0.50),
        None,
    ),
    (
        "openai",
        "gpt-4.1-mini",
        "2025-04-14",
        0.40,
        1.60,
        Some(0.10),
        None,
    ),
    (
        "openai",
        "gpt-4.1-nano",
        "2025-04-14",
        0.10,
        0.40,
        Some(0.025),
        None,
    ),
    (
        "openai",
        "gpt-4o",
        "2024-08-06",
        2.50,
        10.0,
        Some(1.25),
        None,
    ),
    (
        "openai",
        "gpt-4o-mini",
        "2024-07-18",
        0.15,
        0.60,
        Some(0.075),
        None,
    ),
    (
        "openai",
        "gpt-4-turbo",
        "2024-04-09",
        10.0,
        30.0,
        None,
        None,
    ),
    ("openai", "gpt-4", "2023-03-14", 30.0, 60.0, None, None),
    (
        "openai",
        "gpt-3.5-turbo",
        "2024-01-25",
        0.50,
        1.50,
        None,
        None,
    ),
    ("openai", "o1", "2024-12-17", 15.0, 60.0, Some(7.50), None),
    (
        "openai",
        "o1-mini",
        "2024-09-12",
        1.10,
        4.40,
        Some(0.55),
        None,
    ),
    ("openai", "o3", "2025-06-10", 2.0, 8.0, Some(0.50), None),
    (
        "openai",
        "o3-mini",
        "2025-01-31",
        1.10,
        4.40,
        Some(0.55),
        None,
    ),
    (
        "openai",
        "o4-mini",
        "2025-04-16",
        1.10,
        4.40,
        Some(0.275),
        None,
    ),
    (
        "openai",
        "text-embedding-3-small",
        "2024-01-25",
        0.02,
        0.0,
        None,
        None,
    ),
    (
        "openai",
        "text-embedding-3-large",
        "2024-01-25",
        0.13,
        0.0,
        None,
        None,
    ),
    (
        "openai",
        "text-embedding-ada-002",
        "2022-12-15",
        0.10,
        0.0,
        None,
        None,
    ),
    // Anthropic: cache reads at 0.1x input, 5-minute cache writes at 1.25x.
    (
        "anthropic",
        "claude-opus-4-5",
        "2025-11-24",
        5.0,
        25.0,
        Some(0.50),
        Some(6.25),
    ),
    (
        "anthropic",
        "claude-opus-4-1",
        "2025-08-05",
        15.0,
        75.0,
        Some(1.50),
        Some(18.75),
    ),
    (
        "anthropic",
        "claude-opus-4",
        "2025-05-22",
        15.0,
        75.0,
        Some(1.50),
        Some(18.75),
    ),
    (
        "anthropic",
        "claude-sonnet-4-5",
        "2025-09-29",
        3.0,
        15.0,
        Some(0.30),
        Some(3.75),
    ),
    (
        "anthropic",
        "claude-sonnet-4",
        "2025-05-22",
        3.0,
        15.0,
        Some(0.30),
        Some(3.75),
    ),
    (
        "anthropic",
        "claude-haiku-4-5",
        "2025-10-01",
        1.0,
        5.0,
        Some(0.10),
        Some(1.25),
    ),
    (
        "anthropic",
        "claude-3-7-sonnet",
        "2025-02-19",
        3.0,
        15.0,
        Some(0.30),
        Some(3.75),
    ),
    (
        "anthropic",
        "claude-3-5-sonnet",
        "2024-06-20",
        3.0,
        15.0,
        Some(0.30),
        Some(3.75),
    ),
    (
        "anthropic",
        "claude-3-5-haiku",
        "2024-10-22",
        0.80,
        4.0,
        Some(0.08),
        Some(1.0),
    ),
    (
        "anthropic",
        "claude-3-opus",
        "2024-02-29",
        15.0,
        75.0,
        Some(1.50),
        Some(18.75),
    ),
    (
        "anthropic",
        "claude-3-haiku",
        "2024-03-07",
        0.25,
        1.25,
        Some(0.03),
        Some(0.30),
    ),
    // Google Gemini (prompts up to 200k tokens).
    (
        "google",
        "gemini-2.5-pro",
        "2025-06-17",
        1.25,
        10.0,
        Some(0.31),
        None,
    ),
    (
        "google",
        "gemini-2.5-flash",
        "2025-06-17",
        0.30,
        2.50,
        Some(0.075),
        None,
    ),
    (
        "google",
        "gemini-2.5-flash-lite",
        "2025-07-22",
        0.10,
        0.40,
        Some(0.025),
        None,
    ),
    (
        "google",
        "gemini-2.0-flash",
        "2025-02-05",
        0.10,
        0.40,
        Some(0.025),
        None,
    ),
    (
        "google",
        "gemini-2.0-flash-lite",
        "2025-02-25",
        0.075,
        0.30,
        None,
        None,
    ),
    (
        "google",
        "gemini-1.5-pro",
        "2024-10-01",
        1.25,
        5.0,
        Some(0.3125),
        None,
    ),
    (
        "google",
        "gemini-1.5-flash",
        "2024-08-12",
        0.075,
        0.30,
        Some(0.01875),
        None,
    ),
    // Mistral
    (
        "mistral",
        "mistral-large",
        "2024-11-18",
        2.0,
        6.0,
        None,
        None,
    ),
    (
        "mistral",
        "mistral-medium",
        "2025-05-07",
        0.40,
        2.0,
        None,
        None,
    ),
    (
        "mistral",
        "mistral-small",
        "2025-03-17",
        0.10,
        0.30,
        None,
        None,
    ),
    ("mistral", "codestral", "2025-01-13", 0.30, 0.90, None, None),
    (
        "mistral",
        "ministral-8b",
        "2024-10-16",
        0.10,
        0.10,
        None,
        None,
    ),
    (
        "mistral",
        "ministral-3b",
        "2024-10-16",
        0.04,
        0.04,
        None,
        None,
    ),
    (
        "mistral",
        "mistral-embed",
        "2023-12-11",
        0.10,
        0.0,
        None,
        None,
    ),
    // DeepSeek (cache hits at the cache-read price)
    (
        "deepseek",
        "deepseek-chat",
        "2025-02-08",
        0.27,
        1.10,
        Some(0.07),
        None,
    ),
    (
        "deepseek",
        "deepseek-reasoner",
        "2025-02-08",
        0.55,
        2.19,
        Some(0.14),
        None,
    ),
    // xAI
    ("xai", "grok-4", "2025-07-09", 3.0, 15.0, Some(0.75), None),
    ("xai", "grok-3", "2025-04-03", 3.0, 15.0, Some(0.75), None),
    (
        "xai",
        "grok-3-mini",
        "2025-04-03",
        0.30,
        0.50,
        Some(0.075),
        None,
    ),
    // Cohere
    (
        "cohere",
        "command-r-plus",
        "2024-08-30",
        2.50,
        10.0,
        None,
        None,
    ),
    ("cohere", "command-r", "2024-08-30", 0.15, 0.60, None, None),
];

/// `YYYY-MM-DD` as Unix nanoseconds at midnight UTC.
fn day_start(date: &str) -> Option<u64> {
    if date.len() != 10 {
        return None;
    }
    let t = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as u64)
}

fn check_price(v: Option<f64>) -> bool {
    v.is_none_or(|p| p.is_finite() && p >= 0.0)
}

impl PriceTable {
    /// The built-in table alone.
    pub fn builtin() -> PriceTable {
        let entries = BUILTIN
            .iter()
            .map(|(vendor, model, from, i, o, cr, cw)| Price {
                model: model.to_string(),
                provider: None,
                vendor: Some(vendor.to_string()),
                valid_from: from.to_string(),
                valid_from_unix_nano: day_start(from).unwrap_or(0),
                input_per_mtok: *i,
                output_per_mtok: *o,
                cache_read_per_mtok: *cr,
                cache_write_per_mtok: *cw,
                source: "builtin",
            })
            .collect();
        PriceTable { entries }
    }

    /// The built-in table (unless `builtin` is false) with `overrides`
    /// applied: an entry without `valid_from` replaces every built-in period
    /// of its model; one with a date adds a period (or replaces the one of
    /// the same date).
    pub fn with_overrides(
        builtin: bool,
        overrides: &[PriceConfig],
    ) -> Result<PriceTable, PricingError> {
        let mut table = if builtin {
            PriceTable::builtin()
        } else {
            PriceTable::default()
        };
        for (index, p) in overrides.iter().enumerate() {
            let bad = |message: &str| PricingError::Invalid {
                index,
                model: p.model.clone(),
                message: message.to_string(),
            };
            let model = p.model.trim().to_ascii_lowercase();
            if model.is_empty() || model[..model.len() - 1].contains('*') {
                return Err(bad(
                    "model must be a name or a prefix ending in * (and nothing else)",
                ));
            }
            if !check_price(Some(p.input_per_mtok))
                || !check_price(Some(p.output_per_mtok))
                || !check_price(p.cache_read_per_mtok)
                || !check_price(p.cache_write_per_mtok)
            {
                return Err(bad("prices must be finite and not negative"));
            }
            let (valid_from, from_ns) = match &p.valid_from {
                Some(d) => (
                    d.clone(),
                    day_start(d).ok_or_else(|| bad("valid_from must be a date, YYYY-MM-DD"))?,
                ),
                None => ("1970-01-01".to_string(), 0),
            };
            let provider = p.provider.clone().filter(|s| !s.is_empty());
            table.entries.retain(|e| {
                let same_model = e.model == model && e.provider == provider;
                !(same_model && (p.valid_from.is_none() || e.valid_from == valid_from))
            });
            table.entries.push(Price {
                model,
                provider,
                vendor: None,
                valid_from,
                valid_from_unix_nano: from_ns,
                input_per_mtok: p.input_per_mtok,
                output_per_mtok: p.output_per_mtok,
                cache_read_per_mtok: p.cache_read_per_mtok,
                cache_write_per_mtok: p.cache_write_per_mtok,
                source: "config",
            });
        }
        table
            .entries
            .sort_by(|a, b| a.model.cmp(&b.model).then(a.valid_from.cmp(&b.valid_from)));
        Ok(table)
    }

    pub fn entries(&self) -> &[Price] {
        &self.entries
    }

    /// The price of `model` (from `provider`) for a call at `at` (Unix
    /// nanoseconds): the most specific matching entry (an exact name over a
    /// prefix, a longer prefix over a shorter one), in its latest period
    /// that started by then.
    pub fn lookup(&self, provider: Option<&str>, model: &str, at: u64) -> Option<&Price> {
        let name = normalise(model);
        let mut best: Option<(usize, &Price)> = None;
        for e in &self.entries {
            if e.valid_from_unix_nano > at {
                continue;
            }
            if let Some(p) = &e.provider {
                if !provider.is_some_and(|sp| sp.eq_ignore_ascii_case(p)) {
                    continue;
                }
            }
            let Some(rank) = match_rank(&e.model, &name) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((r, b)) => {
                    rank > r
                        || (rank == r && e.provider.is_some() && b.provider.is_none())
                        || (rank == r
                            && e.provider.is_some() == b.provider.is_some()
                            && e.valid_from_unix_nano >= b.valid_from_unix_nano)
                }
            };
            if better {
                best = Some((rank, e));
            }
        }
        best.map(|(_, e)| e)
    }

    /// Fills `cost_usd` and `cost_source` of every GenAI call in `spans`.
    pub fn price_spans(&self, spans: &mut [SpanRecord]) {
        for span in spans {
            let at = span.start_time_unix_nano;
            let g = &mut span.genai;
            if g.cost_usd.is_some() {
                g.cost_source = Some("sent");
                continue;
            }
            let has_tokens = g.input_tokens.is_some() || g.output_tokens.is_some();
            if !g.is_call() || !has_tokens {
                continue;
            }
            let price = g
                .model()
                .and_then(|m| self.lookup(g.provider.as_deref(), m, at));
            match price {
                Some(p) => {
                    g.cost_usd = Some(p.cost(
                        g.input_tokens.unwrap_or(0),
                        g.output_tokens.unwrap_or(0),
                        g.cache_read_tokens.unwrap_or(0),
                        g.cache_write_tokens.unwrap_or(0),
                    ));
                    g.cost_source = Some("priced");
                }
                None => g.cost_source = Some("missing"),
            }
        }
    }
}

impl Price {
    /// USD for a call. Cache reads and writes are part of `input` and are
    /// priced at their own rates; the rest of the input at the input rate.
    /// Counts that do not add up (more cached than input) are clamped.
    pub fn cost(&self, input: i64, output: i64, cache_read: i64, cache_write: i64) -> f64 {
        let input = input.max(0) as f64;
        let cache_read = (cache_read.max(0) as f64).min(input);
        let cache_write = (cache_write.max(0) as f64).min(input - cache_read);
        let uncached = input - cache_read - cache_write;
        let read_rate = self.cache_read_per_mtok.unwrap_or(self.input_per_mtok);
        let write_rate = self.cache_write_per_mtok.unwrap_or(self.input_per_mtok);
        (uncached * self.input_per_mtok
            + cache_read * read_rate
            + cache_write * write_rate
            + output.max(0) as f64 * self.output_per_mtok)
            / 1e6
    }
}

/// Lower case, without a routing prefix (`openai/gpt-4o`, `models/gemini-…`).
fn normalise(model: &str) -> String {
    let m = model.trim();
    let m = m.rsplit_once('/').map_or(m, |(_, tail)| tail);
    m.to_ascii_lowercase()
}

/// How well `pattern` matches `name`: `None` for not at all; exact names
/// (with or without a date suffix) rank above prefixes, longer above shorter.
fn match_rank(pattern: &str, name: &str) -> Option<usize> {
    if let Some(prefix) = pattern.strip_suffix('*') {
        return name.starts_with(prefix).then_some(prefix.len());
    }
    let rest = name.strip_prefix(pattern)?;
    (rest.is_empty() || is_version_suffix(rest)).then_some(10_000 + pattern.len())
}

/// `-2024-08-06`, `-20241022`, `@20240620`, `-latest`, `-001`, `-preview`
/// and combinations such as `-20241022-v2:0`: names of a snapshot of the
/// same model rather than another model.
fn is_version_suffix(rest: &str) -> bool {
    let mut parts = rest.split(['-', '@', ':']);
    if !matches!(rest.chars().next(), Some('-' | '@')) {
        return false;
    }
    parts.next(); // empty before the first separator
    let mut any = false;
    for p in parts {
        // A date split at its dashes: 2024, 08, 06.
        let all_digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let ok = all_digits
            || matches!(p, "latest" | "preview" | "exp")
            || (p.len() >= 2 && p.starts_with('v') && p[1..].bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GenAiFields;

    const DAY: u64 = 86_400_000_000_000;

    fn now() -> u64 {
        day_start("2026-01-01").unwrap()
    }

    #[test]
    fn date_suffixed_names_match_their_base_entry() {
        let t = PriceTable::builtin();
        let p = |m: &str| t.lookup(None, m, now()).map(|p| p.model.as_str());
        assert_eq!(p("gpt-4o"), Some("gpt-4o"));
        assert_eq!(p("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(p("GPT-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
        assert_eq!(p("claude-3-5-sonnet-20241022"), Some("claude-3-5-sonnet"));
        assert_eq!(p("claude-3-5-sonnet@20240620"), Some("claude-3-5-sonnet"));
        assert_eq!(p("claude-3-5-sonnet-latest"), Some("claude-3-5-sonnet"));
        assert_eq!(p("openai/gpt-4.1-mini"), Some("gpt-4.1-mini"));
        assert_eq!(p("models/gemini-2.5-flash"), Some("gemini-2.5-flash"));
        assert_eq!(p("gemini-2.5-flash-lite"), Some("gemini-2.5-flash-lite"));
        // Another model, not a snapshot of gpt-4o.
        assert_eq!(p("gpt-4o-audio-preview"), None);
        assert_eq!(p("llama-3-70b"), None);
        assert_eq!(p("o3-mini-2025-01-31"), Some("o3-mini"));
    }

    #[test]
    fn prices_apply_from_their_date() {
        let t = PriceTable::builtin();
        let from = day_start("2024-08-06").unwrap();
        assert!(t.lookup(None, "gpt-4o", from - DAY).is_none());
        assert!(t.lookup(None, "gpt-4o", from).is_some());
    }

    #[test]
    fn cached_tokens_are_a_subset_of_input() {
        let t = PriceTable::builtin();
        let sonnet = t.lookup(None, "claude-sonnet-4-5", now()).unwrap();
        // 1000 input of which 600 read from and 100 written to the cache.
        let c = sonnet.cost(1000, 200, 600, 100);
        let expect = (300.0 * 3.0 + 600.0 * 0.30 + 100.0 * 3.75 + 200.0 * 15.0) / 1e6;
        assert!((c - expect).abs() < 1e-12, "{c} vs {expect}");
        // Without a cache price, cached tokens cost the input price.
        let gpt4 = t.lookup(None, "gpt-4-turbo", now()).unwrap();
        assert!((gpt4.cost(1000, 0, 500, 0) - 1000.0 * 10.0 / 1e6).abs() < 1e-12);
        // Nonsense counts are clamped, never negative.
        assert!(gpt4.cost(10, 0, 50, 50) >= 0.0);
    }

    #[test]
    fn overrides_replace_or_extend() {
        let over = |model: &str, from: Option<&str>, input: f64| PriceConfig {
            model: model.into(),
            provider: None,
            valid_from: from.map(str::to_string),
            input_per_mtok: input,
            output_per_mtok: 1.0,
            cache_read_per_mtok: None,
            cache_write_per_mtok: None,
        };
        let t = PriceTable::with_overrides(
            true,
            &[
                over("gpt-4o", None, 1.0),
                over("my-llm*", Some("2025-01-01"), 0.5),
                over("my-llm-large", Some("2025-01-01"), 4.0),
                over("my-llm-large", Some("2025-06-01"), 2.0),
            ],
        )
        .unwrap();
        let gpt = t.lookup(None, "gpt-4o-2024-08-06", now()).unwrap();
        assert_eq!((gpt.input_per_mtok, gpt.source), (1.0, "config"));
        assert_eq!(
            t.entries().iter().filter(|e| e.model == "gpt-4o").count(),
            1
        );
        assert_eq!(
            t.lookup(None, "my-llm-small", now())
                .unwrap()
                .input_per_mtok,
            0.5
        );
        assert_eq!(
            t.lookup(None, "my-llm-large", now())
                .unwrap()
                .input_per_mtok,
            2.0
        );
        let before = day_start("2025-03-01").unwrap();
        assert_eq!(
            t.lookup(None, "my-llm-large", before)
                .unwrap()
                .input_per_mtok,
            4.0
        );

        let only = PriceTable::with_overrides(false, &[over("x", None, 1.0)]).unwrap();
        assert_eq!(only.entries().len(), 1);

        assert!(PriceTable::with_overrides(true, &[over("", None, 1.0)]).is_err());
        assert!(PriceTable::with_overrides(true, &[over("a*b", None, 1.0)]).is_err());
        assert!(PriceTable::with_overrides(true, &[over("a", None, -1.0)]).is_err());
        let e = PriceTable::with_overrides(true, &[over("a", Some("2025-13-01"), 1.0)]);
        assert!(e.unwrap_err().to_string().contains("valid_from"));
    }

    #[test]
    fn provider_bound_entries_only_match_their_provider() {
        let t = PriceTable::with_overrides(
            true,
            &[PriceConfig {
                model: "gpt-4o".into(),
                provider: Some("azure.ai.openai".into()),
                valid_from: None,
                input_per_mtok: 9.0,
                output_per_mtok: 9.0,
                cache_read_per_mtok: None,
                cache_write_per_mtok: None,
            }],
        )
        .unwrap();
        assert_eq!(
            t.lookup(Some("azure.ai.openai"), "gpt-4o", now())
                .unwrap()
                .input_per_mtok,
            9.0
        );
        assert_eq!(
            t.lookup(Some("openai"), "gpt-4o", now())
                .unwrap()
                .input_per_mtok,
            2.5
        );
    }

    fn call(model: Option<&str>, cost: Option<f64>, op: &str) -> SpanRecord {
        SpanRecord {
            start_time_unix_nano: now(),
            genai: GenAiFields {
                provider: Some("openai".into()),
                operation: Some(op.into()),
                request_model: model.map(str::to_string),
                input_tokens: Some(1000),
                output_tokens: Some(100),
                cost_usd: cost,
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn spans_are_priced_sent_or_flagged_missing() {
        let t = PriceTable::builtin();
        let mut spans = vec![
            call(Some("gpt-4o-mini"), None, "chat"),
            call(Some("gpt-4o-mini"), Some(0.5), "chat"),
            call(Some("unknown-model"), None, "chat"),
            call(None, None, "chat"),
            call(Some("gpt-4o"), None, "invoke_agent"),
            SpanRecord::default(),
        ];
        t.price_spans(&mut spans);
        let src: Vec<_> = spans.iter().map(|s| s.genai.cost_source).collect();
        assert_eq!(
            src,
            vec![
                Some("priced"),
                Some("sent"),
                Some("missing"),
                Some("missing"),
                None,
                None
            ]
        );
        let c = spans[0].genai.cost_usd.unwrap();
        assert!((c - (1000.0 * 0.15 + 100.0 * 0.60) / 1e6).abs() < 1e-12);
        assert_eq!(spans[1].genai.cost_usd, Some(0.5));
        assert_eq!(spans[2].genai.cost_usd, None);
        assert_eq!(spans[4].genai.cost_usd, None);
    }
}
