//! Stack trace text → frames. SDKs send `exception.stacktrace` as the
//! language's own printed form, so grouping by code location starts with
//! reading six different formats back into one shape.
//!
//! Frames are stored innermost first (the frame that raised comes first) for
//! every language, so "the culprit" is always the first in-app frame even
//! though Python prints the other way round.

use serde::{Deserialize, Serialize};

use super::inapp::InAppRules;

mod dotnet;
mod golang;
mod java;
mod javascript;
mod python;
mod rust;

/// A language whose printed stack traces we can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Java,
    DotNet,
    JavaScript,
    Go,
    Rust,
}

impl Language {
    pub const ALL: [Language; 6] = [
        Language::Python,
        Language::Java,
        Language::DotNet,
        Language::JavaScript,
        Language::Go,
        Language::Rust,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Java => "java",
            Language::DotNet => "dotnet",
            Language::JavaScript => "javascript",
            Language::Go => "go",
            Language::Rust => "rust",
        }
    }

    /// Reads a `telemetry.sdk.language` value (and a few spellings people
    /// use by hand).
    pub fn from_sdk_language(value: &str) -> Option<Language> {
        match value.trim().to_ascii_lowercase().as_str() {
            "python" | "py" => Some(Language::Python),
            "java" | "kotlin" | "scala" | "jvm" => Some(Language::Java),
            "dotnet" | ".net" | "csharp" | "c#" | "fsharp" => Some(Language::DotNet),
            "nodejs" | "node" | "js" | "javascript" | "webjs" | "typescript" | "ts" | "deno"
            | "bun" => Some(Language::JavaScript),
            "go" | "golang" => Some(Language::Go),
            "rust" => Some(Language::Rust),
            _ => None,
        }
    }

    /// Guesses from the shape of an `exception.type`. Only shapes that belong
    /// to one language answer; `TypeError` or `ValueError` do not.
    pub fn from_exception_type(ty: &str) -> Option<Language> {
        let ty = ty.trim();
        if ty.contains("::") {
            return Some(Language::Rust);
        }
        if ty.starts_with('*') {
            // Go prints pointer receivers: `*errors.errorString`, `*fs.PathError`.
            return Some(Language::Go);
        }
        if ty.starts_with("System.") || ty.starts_with("Microsoft.") {
            return Some(Language::DotNet);
        }
        const JVM: [&str; 6] = [
            "java.", "javax.", "jakarta.", "kotlin.", "kotlinx.", "scala.",
        ];
        if JVM.iter().any(|p| ty.starts_with(p)) {
            return Some(Language::Java);
        }
        None
    }
}

/// What the record around a stack trace says about its language. Text wins
/// when it is unambiguous; the hint breaks ties and covers terse traces.
#[derive(Debug, Clone, Copy, Default)]
pub struct LanguageHint<'a> {
    /// `telemetry.sdk.language` of the resource.
    pub sdk_language: Option<&'a str>,
    /// `exception.type` of the event.
    pub exception_type: Option<&'a str>,
}

impl LanguageHint<'_> {
    pub fn language(&self) -> Option<Language> {
        self.sdk_language
            .and_then(Language::from_sdk_language)
            .or_else(|| self.exception_type.and_then(Language::from_exception_type))
    }
}

/// One stack frame as printed, plus the in-app verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// Where the function lives, at the granularity the language names it:
    /// class for Java/.NET, package for Go, path for Rust, file basename for
    /// Python and JavaScript.
    pub module: String,
    /// The function or method name as printed (empty when anonymous).
    pub function: String,
    /// The file path or URL as printed, kept for in-app rules and display.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    pub in_app: bool,
}

/// One exception of a chain (`Caused by:`, inner exceptions, Python's
/// "direct cause"), with its own frames.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedException {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Innermost first.
    pub frames: Vec<Frame>,
    /// Frames the printer elided as shared with the enclosing trace
    /// (Java's `... N more`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A parsed stack trace: the reported exception first, then its causes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackTrace {
    pub language: Language,
    pub exceptions: Vec<ChainedException>,
}

impl StackTrace {
    /// Every frame of the chain, reported exception first.
    pub fn frames(&self) -> impl Iterator<Item = &Frame> {
        self.exceptions.iter().flat_map(|e| e.frames.iter())
    }

    /// The first in-app frame: where a person would start reading.
    pub fn culprit(&self) -> Option<&Frame> {
        self.frames().find(|f| f.in_app)
    }

    /// Re-runs in-app classification, e.g. after the rules changed.
    pub fn classify(&mut self, rules: &InAppRules) {
        let language = self.language;
        for frame in self.exceptions.iter_mut().flat_map(|e| e.frames.iter_mut()) {
            frame.in_app = rules.is_in_app(language, frame);
        }
    }
}

/// Stack traces larger than this are cut before parsing: the frames that
/// matter for grouping are at the top, and ingest must stay cheap.
const MAX_TRACE_BYTES: usize = 256 * 1024;

/// Parses `text` in whichever language it reads as, classifying frames with
/// `rules`. `None` when no frame could be read.
pub fn parse_stacktrace(
    text: &str,
    hint: LanguageHint<'_>,
    rules: &InAppRules,
) -> Option<StackTrace> {
    let text = truncate_at_char(text, MAX_TRACE_BYTES);
    let language = detect_language(text, hint)?;
    let exceptions = match language {
        Language::Python => python::parse(text),
        Language::Java => java::parse(text),
        Language::DotNet => dotnet::parse(text),
        Language::JavaScript => javascript::parse(text),
        Language::Go => golang::parse(text),
        Language::Rust => rust::parse(text),
    };
    let mut trace = StackTrace {
        language,
        exceptions,
    };
    // A trace that yielded no frame says nothing the message does not.
    trace.frames().next()?;
    trace.classify(rules);
    Some(trace)
}

/// Picks the language whose frame syntax the text matches best. The hint
/// adds a small bonus so it decides between formats that look alike, and it
/// is the answer when the text gives no signal at all.
pub fn detect_language(text: &str, hint: LanguageHint<'_>) -> Option<Language> {
    let hinted = hint.language();
    let mut scores = [0u32; 6];
    for line in text.lines().take(400) {
        let scored = [
            python::line_score(line),
            java::line_score(line),
            dotnet::line_score(line),
            javascript::line_score(line),
            golang::line_score(line),
            rust::line_score(line),
        ];
        for (total, s) in scores.iter_mut().zip(scored) {
            *total += s;
        }
    }
    if let Some(h) = hinted {
        scores[index_of(h)] += 2;
    }
    let (best, score) = Language::ALL
        .iter()
        .zip(scores)
        .max_by_key(|(_, s)| *s)
        .map(|(l, s)| (*l, s))?;
    if score > 2 || (hinted.is_none() && score > 0) {
        Some(best)
    } else {
        hinted
    }
}

fn index_of(language: Language) -> usize {
    Language::ALL
        .iter()
        .position(|l| *l == language)
        .unwrap_or(0)
}

fn truncate_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The last path segment of a file path or URL, without query or fragment.
pub(crate) fn basename(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let path = path.trim_end_matches(['/', '\\']);
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Splits `Type: message` (the header line of most languages). A line
/// without `: ` is all type when it looks like a name, else all message.
pub(crate) fn split_type_message(line: &str) -> (Option<String>, Option<String>) {
    let line = line.trim();
    if line.is_empty() {
        return (None, None);
    }
    let (ty, msg) = match line.split_once(": ") {
        Some((t, m)) => (t.trim(), Some(m.trim())),
        None => match line.strip_suffix(':') {
            Some(t) => (t.trim(), None),
            None => (line, None),
        },
    };
    let looks_like_type = !ty.is_empty()
        && !ty.contains(char::is_whitespace)
        && ty.chars().all(|c| {
            c.is_alphanumeric()
                || matches!(
                    c,
                    '.' | '_' | '$' | '`' | '+' | '<' | '>' | '[' | ']' | ':' | '*' | '/' | '-'
                )
        })
        // Type names are qualified or capitalised (`KeyError`, `java.io.X`,
        // `*fs.PathError`); log prefixes are lowercase (`fail:`) or shouted
        // (`ERROR:`).
        && (ty.contains(['.', ':', '$', '*'])
            || (ty.starts_with(char::is_uppercase) && ty.contains(char::is_lowercase)));
    if looks_like_type {
        (
            Some(ty.to_string()),
            msg.filter(|m| !m.is_empty()).map(str::to_string),
        )
    } else {
        (None, Some(line.to_string()))
    }
}

/// Index of the `(` that opens the parenthesised group ending at the last
/// byte of `s` (which must be `)`), honouring nesting.
pub(crate) fn matching_open_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `a.b.C.method` at the last separator that is not inside brackets,
/// so generic arguments like `Map<K, V>` or `First[T]` stay whole.
pub(crate) fn split_qualified<'a>(qualified: &'a str, sep: &str) -> (&'a str, &'a str) {
    let bytes = qualified.as_bytes();
    let sep_b = sep.as_bytes();
    let mut depth = 0i32;
    let mut split = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' | b'[' | b'(' | b'{' => depth += 1,
            b'>' | b']' | b')' | b'}' => depth -= 1,
            _ => {
                if depth == 0 && bytes[i..].starts_with(sep_b) {
                    split = Some(i);
                    i += sep_b.len();
                    continue;
                }
            }
        }
        i += 1;
    }
    match split {
        Some(i) => (&qualified[..i], &qualified[i + sep.len()..]),
        None => ("", qualified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_handles_urls_and_windows_paths() {
        assert_eq!(basename("/app/src/users.js"), "users.js");
        assert_eq!(basename("http://x/static/main.js?v=3#a"), "main.js");
        assert_eq!(basename(r"C:\src\Shop\Order.cs"), "Order.cs");
        assert_eq!(basename("orders.py"), "orders.py");
    }

    #[test]
    fn split_type_message_shapes() {
        assert_eq!(
            split_type_message("java.lang.IllegalStateException: boom: again"),
            (
                Some("java.lang.IllegalStateException".into()),
                Some("boom: again".into())
            )
        );
        assert_eq!(
            split_type_message("KeyboardInterrupt"),
            (Some("KeyboardInterrupt".into()), None)
        );
        assert_eq!(split_type_message("fail: boom").0, None);
        assert_eq!(split_type_message("ERROR: boom").0, None);
        assert_eq!(
            split_type_message("*fs.PathError: open x").0.as_deref(),
            Some("*fs.PathError")
        );
        assert_eq!(
            split_type_message("something went wrong"),
            (None, Some("something went wrong".into()))
        );
    }

    #[test]
    fn split_qualified_respects_brackets() {
        assert_eq!(
            split_qualified("System.Linq.Enumerable.First[T.X]", "."),
            ("System.Linq.Enumerable", "First[T.X]")
        );
        assert_eq!(split_qualified("a::B<c::D>::f", "::"), ("a::B<c::D>", "f"));
        assert_eq!(split_qualified("main", "."), ("", "main"));
    }

    #[test]
    fn hint_reads_sdk_language_and_type_shape() {
        let h = LanguageHint {
            sdk_language: Some("nodejs"),
            exception_type: None,
        };
        assert_eq!(h.language(), Some(Language::JavaScript));
        let h = LanguageHint {
            sdk_language: None,
            exception_type: Some("*fs.PathError"),
        };
        assert_eq!(h.language(), Some(Language::Go));
        let h = LanguageHint {
            sdk_language: None,
            exception_type: Some("std::io::Error"),
        };
        assert_eq!(h.language(), Some(Language::Rust));
        let h = LanguageHint {
            sdk_language: None,
            exception_type: Some("TypeError"),
        };
        assert_eq!(h.language(), None);
    }

    #[test]
    fn empty_or_garbage_text_parses_to_none() {
        let rules = InAppRules::default();
        assert!(parse_stacktrace("", LanguageHint::default(), &rules).is_none());
        assert!(parse_stacktrace("just a message", LanguageHint::default(), &rules).is_none());
        let hint = LanguageHint {
            sdk_language: Some("python"),
            exception_type: None,
        };
        assert!(parse_stacktrace("ValueError: x", hint, &rules).is_none());
    }

    #[test]
    fn huge_input_is_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_TRACE_BYTES);
        let cut = truncate_at_char(&s, MAX_TRACE_BYTES + 1);
        assert!(cut.len() <= MAX_TRACE_BYTES + 1);
        assert!(parse_stacktrace(&s, LanguageHint::default(), &InAppRules::default()).is_none());
    }

    /// Random lines stitched from every format's syntax, fed to every
    /// parser, the normaliser and the fingerprint: nothing may panic.
    #[test]
    fn fragment_soup_never_panics() {
        const FRAGMENTS: &[&str] = &[
            "at ",
            "File \"",
            "\", line ",
            ", in ",
            "goroutine 1 [running]:",
            "\t",
            ":12",
            ":3:4",
            "(",
            ")",
            "::",
            "{{closure}}",
            "<",
            ">",
            "[",
            "]",
            "@",
            "--- End of inner exception stack trace ---",
            " ---> ",
            "Caused by: ",
            "... 3 more",
            "stack backtrace:",
            "   0: ",
            "0x55d0 - ",
            " in ",
            ":line ",
            "Traceback (most recent call last):",
            "panic: ",
            "thread 'm' panicked at ",
            "$$Lambda$1/0x1",
            "lambda$a$0",
            "<Get>d__3",
            "MoveNext",
            ".func1",
            "-fm",
            "é",
            "🦀",
            "\u{0}",
            "node:internal/x",
            "Object.<anonymous>",
            "Suppressed: ",
            "Exception in thread \"",
            "`1",
            " as ",
            "::h0123456789abcdef",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let rules = InAppRules {
            include: vec!["a".into()],
            exclude: vec!["<".into()],
        };
        for _ in 0..1500 {
            let mut text = String::new();
            for _ in 0..(next() % 12) {
                for _ in 0..(next() % 6) {
                    text.push_str(FRAGMENTS[(next() as usize) % FRAGMENTS.len()]);
                }
                text.push('\n');
            }
            for language in Language::ALL {
                let hint = LanguageHint {
                    sdk_language: Some(language.as_str()),
                    exception_type: None,
                };
                if let Some(trace) = parse_stacktrace(&text, hint, &rules) {
                    let _ = crate::errors::normalize::normalize_frames(language, trace.frames());
                    let _ = crate::errors::fingerprint(&crate::errors::ErrorSignature {
                        stacktrace: Some(&trace),
                        message: Some(&text),
                        ..Default::default()
                    });
                }
                let frames: Vec<Frame> = text
                    .lines()
                    .map(|l| Frame {
                        module: l.into(),
                        function: l.chars().rev().collect(),
                        ..Default::default()
                    })
                    .collect();
                let _ = crate::errors::normalize::normalize_frames(language, &frames);
            }
        }
    }
}
