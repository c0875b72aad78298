//! GenAI failures grouped by what went wrong rather than where. A rate limit
//! from the OpenAI SDK raises from the same library frames as a bad request,
//! and the same 429 looks different in every SDK, so LLM calls are grouped by
//! (service, provider, operation, error class, tool) with the error class
//! read from `error.type`, the HTTP status and the message.
//!
//! The model is a tag on the group, not part of the key: a rate limit on
//! `gpt-4o-2024-08-06` and on `gpt-4o-2024-11-20` is one problem.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::fingerprint::hash_components;

/// What kind of GenAI failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenAiErrorClass {
    RateLimited,
    ContextLengthExceeded,
    ContentFiltered,
    Auth,
    Timeout,
    Overloaded,
    InvalidRequest,
    ToolError,
    OutputParseError,
    /// The output stopped at the token limit (finish reason `length`).
    /// Only ever a soft failure.
    Truncated,
    /// A GenAI error none of the above describes (a plain 500, an unknown
    /// SDK error type).
    Other,
}

impl GenAiErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            GenAiErrorClass::RateLimited => "rate_limited",
            GenAiErrorClass::ContextLengthExceeded => "context_length_exceeded",
            GenAiErrorClass::ContentFiltered => "content_filtered",
            GenAiErrorClass::Auth => "auth",
            GenAiErrorClass::Timeout => "timeout",
            GenAiErrorClass::Overloaded => "overloaded",
            GenAiErrorClass::InvalidRequest => "invalid_request",
            GenAiErrorClass::ToolError => "tool_error",
            GenAiErrorClass::OutputParseError => "output_parse_error",
            GenAiErrorClass::Truncated => "truncated",
            GenAiErrorClass::Other => "other",
        }
    }
}

/// What a failed GenAI span or log says about its failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenAiFailure<'a> {
    /// `error.type` (or `exception.type` when there is no `error.type`).
    pub error_type: Option<&'a str>,
    /// `http.response.status_code`.
    pub http_status: Option<u16>,
    /// `exception.message` or the span status message.
    pub message: Option<&'a str>,
    /// `gen_ai.operation.name`.
    pub operation: Option<&'a str>,
}

/// Phrases that name a failure precisely whatever the status code says:
/// providers report an oversized prompt as a 400 and a filtered prompt as
/// a 400 too.
const CONTEXT_LENGTH: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "prompt is too long",
    "input is too long",
    "too many tokens",
    "exceeds the token limit",
    "reduce the length",
    "string_above_max_length",
];
const CONTENT_FILTER: &[&str] = &[
    "content_filter",
    "content filter",
    "content_policy",
    "content policy",
    "content management policy",
    "responsibleaipolicyviolation",
    "safety system",
    "blocked due to safety",
    "flagged by",
];
const OUTPUT_PARSE: &[&str] = &[
    "outputparserexception",
    "outputparsingerror",
    "output_parse",
    "jsondecodeerror",
    "json decode",
    "failed to parse",
    "could not parse",
    "invalid json",
    "unexpected token",
];

/// `error.type` spellings across SDKs, compared lowercased on the last
/// `.`-separated segment (`openai.RateLimitError` → `ratelimiterror`).
fn class_of_error_type(ty: &str) -> Option<GenAiErrorClass> {
    let last = ty
        .trim()
        .rsplit('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let class = match last.as_str() {
        "ratelimiterror"
        | "rate_limit_error"
        | "rate_limit_exceeded"
        | "ratelimitexceeded"
        | "resourceexhausted"
        | "resource_exhausted"
        | "too_many_requests"
        | "throttlingexception"
        | "429" => GenAiErrorClass::RateLimited,
        "authenticationerror"
        | "authentication_error"
        | "permissiondeniederror"
        | "permission_error"
        | "permission_denied"
        | "invalid_api_key"
        | "unauthorized"
        | "forbidden"
        | "401"
        | "403" => GenAiErrorClass::Auth,
        "apitimeouterror" | "timeouterror" | "timeout" | "readtimeout" | "connecttimeout"
        | "timeoutexception" | "deadlineexceeded" | "deadline_exceeded" | "408" | "504" => {
            GenAiErrorClass::Timeout
        }
        "overloadederror"
        | "overloaded_error"
        | "serviceunavailableerror"
        | "service_unavailable"
        | "529"
        | "503" => GenAiErrorClass::Overloaded,
        "badrequesterror"
        | "invalid_request_error"
        | "invalidrequesterror"
        | "unprocessableentityerror"
        | "notfounderror"
        | "not_found_error"
        | "400"
        | "404"
        | "422" => GenAiErrorClass::InvalidRequest,
        "tool_error" | "toolexception" | "toolerror" => GenAiErrorClass::ToolError,
        _ => return None,
    };
    Some(class)
}

fn class_of_status(status: u16) -> Option<GenAiErrorClass> {
    match status {
        429 => Some(GenAiErrorClass::RateLimited),
        401 | 403 => Some(GenAiErrorClass::Auth),
        408 | 504 => Some(GenAiErrorClass::Timeout),
        503 | 529 => Some(GenAiErrorClass::Overloaded),
        400 | 404 | 413 | 422 => Some(GenAiErrorClass::InvalidRequest),
        _ => None,
    }
}

/// Keyword fallbacks for messages without a telling type or status.
const MESSAGE_KEYWORDS: &[(&str, GenAiErrorClass)] = &[
    ("rate limit", GenAiErrorClass::RateLimited),
    ("rate_limit", GenAiErrorClass::RateLimited),
    ("too many requests", GenAiErrorClass::RateLimited),
    ("quota", GenAiErrorClass::RateLimited),
    ("invalid api key", GenAiErrorClass::Auth),
    ("incorrect api key", GenAiErrorClass::Auth),
    ("invalid x-api-key", GenAiErrorClass::Auth),
    ("unauthorized", GenAiErrorClass::Auth),
    ("authentication", GenAiErrorClass::Auth),
    ("timed out", GenAiErrorClass::Timeout),
    ("timeout", GenAiErrorClass::Timeout),
    ("deadline exceeded", GenAiErrorClass::Timeout),
    ("overloaded", GenAiErrorClass::Overloaded),
    ("over capacity", GenAiErrorClass::Overloaded),
    ("invalid request", GenAiErrorClass::InvalidRequest),
    ("bad request", GenAiErrorClass::InvalidRequest),
];

/// Classifies a failed GenAI call. Precise phrases come first (a 400 that
/// says "maximum context length" is a context problem), then the SDK's
/// error type, then the HTTP status, then looser message keywords.
pub fn classify(failure: &GenAiFailure<'_>) -> GenAiErrorClass {
    // The failure of a tool execution is the tool's, whatever it raised.
    if failure
        .operation
        .is_some_and(|op| op.trim().eq_ignore_ascii_case("execute_tool"))
    {
        return GenAiErrorClass::ToolError;
    }
    let haystack = format!(
        "{} {}",
        failure.error_type.unwrap_or(""),
        failure.message.unwrap_or("")
    )
    .to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| haystack.contains(n));
    if has(CONTEXT_LENGTH) {
        return GenAiErrorClass::ContextLengthExceeded;
    }
    if has(CONTENT_FILTER) {
        return GenAiErrorClass::ContentFiltered;
    }
    if has(OUTPUT_PARSE) {
        return GenAiErrorClass::OutputParseError;
    }
    if let Some(class) = failure.error_type.and_then(class_of_error_type) {
        return class;
    }
    if let Some(class) = failure.http_status.and_then(class_of_status) {
        return class;
    }
    MESSAGE_KEYWORDS
        .iter()
        .find(|(k, _)| haystack.contains(k))
        .map_or(GenAiErrorClass::Other, |(_, class)| *class)
}

/// Soft failures: calls that succeeded but whose `finish_reasons` say the
/// answer is unusable. Each gets its own group, apart from hard errors.
pub fn soft_failure<S: AsRef<str>>(finish_reasons: &[S]) -> Option<GenAiErrorClass> {
    let mut truncated = false;
    for reason in finish_reasons {
        match reason.as_ref().trim().to_ascii_lowercase().as_str() {
            // Content filtering outranks truncation: it is the worse news.
            "content_filter" | "content_filtered" | "safety" | "blocklist"
            | "prohibited_content" | "spii" => return Some(GenAiErrorClass::ContentFiltered),
            "length" | "max_tokens" | "max_output_tokens" => truncated = true,
            _ => {}
        }
    }
    truncated.then_some(GenAiErrorClass::Truncated)
}

/// `gen_ai.response.finish_reasons` as stored: JSON array text. Anything
/// else yields no reasons rather than an error.
pub fn finish_reasons_from_json(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<serde_json::Value>>(text)
        .map(|items| {
            items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

static MODEL_DATE: LazyLock<Regex> = LazyLock::new(|| {
    // `-2024-08-06`, `-20241022`, `@20240620`, anywhere in the name
    // (Bedrock puts a version after it: `…-20241022-v2:0`).
    Regex::new(r"[-@](?:\d{4}-\d{2}-\d{2}|20\d{6})(?-u:\b)").expect("model date pattern compiles")
});
static MODEL_SHORT_DATE: LazyLock<Regex> = LazyLock::new(|| {
    // A trailing `-0613` (MMDD, OpenAI) or `-2407` (YYMM, Mistral).
    Regex::new(r"-(?:(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])|2[3-9](?:0[1-9]|1[0-2]))$")
        .expect("model short date pattern compiles")
});

/// The model name without its snapshot date, for the group's model tag.
pub fn model_tag(model: &str) -> String {
    let model = model.trim();
    let without = MODEL_DATE.replace_all(model, "");
    MODEL_SHORT_DATE.replace(&without, "").into_owned()
}

/// The key GenAI errors group by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GenAiGroupKey {
    pub service: String,
    pub provider: String,
    pub operation: String,
    pub class: GenAiErrorClass,
    pub tool_name: Option<String>,
    /// A finish-reason failure rather than an error.
    pub soft: bool,
}

impl GenAiGroupKey {
    /// Builds a key, normalising case and blanks so SDK spelling
    /// differences (`OpenAI` vs `openai`) do not split groups.
    pub fn new(
        service: &str,
        provider: &str,
        operation: &str,
        class: GenAiErrorClass,
        tool_name: Option<&str>,
        soft: bool,
    ) -> Self {
        GenAiGroupKey {
            service: service.trim().to_string(),
            provider: provider.trim().to_ascii_lowercase(),
            operation: operation.trim().to_ascii_lowercase(),
            class,
            tool_name: tool_name
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            soft,
        }
    }

    /// The fingerprint components, in the same form as stack fingerprints
    /// so the explanation reads alike.
    pub fn components(&self) -> Vec<String> {
        let mut c = vec![
            format!("genai.service:{}", self.service),
            format!("genai.provider:{}", self.provider),
            format!("genai.operation:{}", self.operation),
            format!("genai.class:{}", self.class.as_str()),
        ];
        if let Some(tool) = &self.tool_name {
            c.push(format!("genai.tool:{tool}"));
        }
        if self.soft {
            c.push("genai.soft".to_string());
        }
        c
    }

    pub fn hash(&self) -> String {
        hash_components(&self.components())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GenAiErrorClass::*;

    fn c(
        error_type: Option<&str>,
        http_status: Option<u16>,
        message: Option<&str>,
    ) -> GenAiErrorClass {
        classify(&GenAiFailure {
            error_type,
            http_status,
            message,
            operation: Some("chat"),
        })
    }

    #[test]
    fn classes_from_type_status_and_message() {
        assert_eq!(
            c(
                Some("openai.RateLimitError"),
                Some(429),
                Some("Rate limit reached for gpt-4o")
            ),
            RateLimited
        );
        assert_eq!(c(None, Some(429), None), RateLimited);
        assert_eq!(
            c(None, None, Some("You exceeded your current quota")),
            RateLimited
        );
        assert_eq!(
            c(
                Some("openai.BadRequestError"),
                Some(400),
                Some("This model's maximum context length is 128000 tokens")
            ),
            ContextLengthExceeded
        );
        assert_eq!(
            c(
                Some("anthropic.BadRequestError"),
                Some(400),
                Some("prompt is too long: 210000 tokens > 200000 maximum")
            ),
            ContextLengthExceeded
        );
        assert_eq!(
            c(Some("BadRequestError"), Some(400), Some("The response was filtered due to the prompt triggering Azure OpenAI's content management policy")),
            ContentFiltered
        );
        assert_eq!(
            c(
                Some("AuthenticationError"),
                Some(401),
                Some("Incorrect API key provided")
            ),
            Auth
        );
        assert_eq!(c(None, Some(403), None), Auth);
        assert_eq!(c(None, None, Some("invalid x-api-key")), Auth);
        assert_eq!(
            c(
                Some("openai.APITimeoutError"),
                None,
                Some("Request timed out.")
            ),
            Timeout
        );
        assert_eq!(c(None, Some(504), None), Timeout);
        assert_eq!(
            c(
                Some("anthropic.InternalServerError"),
                Some(529),
                Some("Overloaded")
            ),
            Overloaded
        );
        assert_eq!(
            c(None, Some(503), Some("The engine is currently overloaded")),
            Overloaded
        );
        assert_eq!(c(None, None, Some("overloaded_error")), Overloaded);
        assert_eq!(
            c(
                Some("BadRequestError"),
                Some(400),
                Some("Invalid 'messages[1].role'")
            ),
            InvalidRequest
        );
        assert_eq!(c(None, Some(422), None), InvalidRequest);
        assert_eq!(
            c(
                Some("json.decoder.JSONDecodeError"),
                None,
                Some("Expecting value: line 1 column 1")
            ),
            OutputParseError
        );
        assert_eq!(
            c(
                Some("langchain_core.exceptions.OutputParserException"),
                None,
                Some("bad output")
            ),
            OutputParseError
        );
        assert_eq!(
            c(
                Some("SyntaxError"),
                None,
                Some("Unexpected token < in JSON at position 0")
            ),
            OutputParseError
        );
        assert_eq!(
            c(Some("InternalServerError"), Some(500), Some("oops")),
            Other
        );
        assert_eq!(c(None, None, None), Other);
    }

    #[test]
    fn tool_execution_failures_are_tool_errors() {
        let f = GenAiFailure {
            error_type: Some("TimeoutError"),
            http_status: None,
            message: Some("weather API timed out"),
            operation: Some("execute_tool"),
        };
        assert_eq!(classify(&f), ToolError);
    }

    #[test]
    fn soft_failures_from_finish_reasons() {
        assert_eq!(soft_failure(&["stop"]), None);
        assert_eq!(soft_failure::<&str>(&[]), None);
        assert_eq!(soft_failure(&["stop", "length"]), Some(Truncated));
        assert_eq!(soft_failure(&["max_tokens"]), Some(Truncated));
        assert_eq!(
            soft_failure(&["length", "content_filter"]),
            Some(ContentFiltered)
        );
        assert_eq!(soft_failure(&["SAFETY".to_string()]), Some(ContentFiltered));
        assert_eq!(
            finish_reasons_from_json(r#"["length","stop"]"#),
            ["length", "stop"]
        );
        assert!(finish_reasons_from_json("not json").is_empty());
    }

    #[test]
    fn model_tags_lose_their_dates() {
        assert_eq!(model_tag("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(model_tag("claude-3-5-sonnet-20241022"), "claude-3-5-sonnet");
        assert_eq!(model_tag("claude-3-5-sonnet@20240620"), "claude-3-5-sonnet");
        assert_eq!(
            model_tag("anthropic.claude-3-5-sonnet-20241022-v2:0"),
            "anthropic.claude-3-5-sonnet-v2:0"
        );
        assert_eq!(model_tag("gpt-4-0613"), "gpt-4");
        assert_eq!(model_tag("gpt-3.5-turbo-0125"), "gpt-3.5-turbo");
        assert_eq!(model_tag("mistral-large-2407"), "mistral-large");
        assert_eq!(model_tag("o1-2024-12-17"), "o1");
        assert_eq!(model_tag("gemini-1.5-pro-002"), "gemini-1.5-pro-002");
        assert_eq!(model_tag("gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(
            model_tag("llama-3.1-70b-instruct"),
            "llama-3.1-70b-instruct"
        );
    }

    #[test]
    fn group_keys() {
        let a = GenAiGroupKey::new("checkout", "OpenAI", "chat", RateLimited, None, false);
        let b = GenAiGroupKey::new("checkout", "openai", "Chat", RateLimited, Some(""), false);
        assert_eq!(a.hash(), b.hash());
        let other_class = GenAiGroupKey::new("checkout", "openai", "chat", Timeout, None, false);
        assert_ne!(a.hash(), other_class.hash());
        let tool_a = GenAiGroupKey::new(
            "agent",
            "openai",
            "execute_tool",
            ToolError,
            Some("get_weather"),
            false,
        );
        let tool_b = GenAiGroupKey::new(
            "agent",
            "openai",
            "execute_tool",
            ToolError,
            Some("search_docs"),
            false,
        );
        assert_ne!(tool_a.hash(), tool_b.hash());
        let hard = GenAiGroupKey::new("checkout", "openai", "chat", ContentFiltered, None, false);
        let soft = GenAiGroupKey::new("checkout", "openai", "chat", ContentFiltered, None, true);
        assert_ne!(
            hard.hash(),
            soft.hash(),
            "soft failures form their own groups"
        );
        assert_eq!(
            soft.components().last().map(String::as_str),
            Some("genai.soft")
        );
    }
}
