//! Error messages → templates, and secrets out of everything we store.
//!
//! The same bug says "order 4821 not found" today and "order 77 not found"
//! tomorrow; grouping by message needs the variable parts replaced by their
//! kind first. The patterns run in a fixed order, most specific first, so a
//! UUID is never half-eaten by the number pattern.
//!
//! Secrets are a separate, cheaper pass that runs before anything is written
//! to disk: an API key pasted into an exception message must never reach the
//! database, whatever the grouping later does with the text.

use std::borrow::Cow;
use std::net::Ipv6Addr;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Compiles a pattern with ASCII word boundaries. The patterns only look
/// for ASCII tokens, and a Unicode `\b` would push the regex engine off its
/// fast DFA for every message that contains a non-ASCII character.
fn regex(pattern: &str) -> Regex {
    Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).expect("message pattern compiles")
}

/// Messages longer than this are cut before templating: grouping needs the
/// shape of the message, and a megabyte-long message must not cost more.
pub const MAX_TEMPLATE_INPUT: usize = 2048;

static SECRETS: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        // Anthropic before OpenAI: `sk-ant-` also starts with `sk-`.
        r"\bsk-ant-[A-Za-z0-9_\-]{8,}",
        r"|\bsk-[A-Za-z0-9_\-]{16,}",
        r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"|\bgh[pousr]_[A-Za-z0-9]{20,}",
        r"|\bgithub_pat_[A-Za-z0-9_]{20,}",
        r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}",
        r"|\bAIza[0-9A-Za-z_\-]{30,}",
        r"|(?i:\bbearer)\s+[A-Za-z0-9\-._~+/]{8,}=*",
        // `password=…`, `"api_key": "…"`: the key stays, the value goes.
        r#"|(?P<kv>(?i:\b(?:api[_\-]?key|x-api-key|password|passwd|client[_\-]?secret|secret[_\-]?key|access[_\-]?token|auth[_\-]?token)\b)["']?\s*[=:]\s*["']?)[^\s"',;&]{4,}"#,
        // Credentials in a URL: `postgres://app:hunter2@db/…`.
        r"|(?P<userinfo>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+@",
    ))
});

/// Replaces API keys, bearer tokens, `password=`-style values and URL
/// credentials with `<redacted>`. Cheap (one
/// pass, no allocation when nothing matches) and total: any input in,
/// a string out.
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    SECRETS.replace_all(text, |caps: &Captures<'_>| {
        if let Some(key) = caps.name("kv") {
            // `password: must be 8 characters` is a validation message, not
            // a secret: after a colon, only values with a digit are taken.
            let value = caps[0].get(key.len()..).unwrap_or("");
            if !key.as_str().contains('=') && !value.bytes().any(|b| b.is_ascii_digit()) {
                return caps[0].to_string();
            }
            return format!("{}<redacted>", key.as_str());
        }
        if let Some(user) = caps.name("userinfo") {
            return format!("{}<redacted>@", user.as_str());
        }
        let m = &caps[0];
        // Keep the scheme word so "Authorization: Bearer <redacted>" still reads.
        match m.get(..6).filter(|p| p.eq_ignore_ascii_case("bearer")) {
            Some(scheme) => format!("{scheme} <redacted>"),
            None => "<redacted>".to_string(),
        }
    })
}

/// One step of templating.
struct Pattern {
    re: &'static LazyLock<Regex>,
    apply: fn(&Regex, &str) -> String,
}

static QUOTED_AFTER_EQ: LazyLock<Regex> =
    LazyLock::new(|| regex(r#"=\s*(?:"[^"]*"|'[^']*'|`[^`]*`)"#));
static PROVIDER_ID: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"\b(?:chatcmpl-|req_|msg_|toolu_|call_|run_|thread_|resp_|asst_|file-|batch_|step_)[A-Za-z0-9]+\b",
    )
});
static URL: LazyLock<Regex> =
    LazyLock::new(|| regex(r#"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>`]*[^\s"'<>`.,;:!?)\]}]"#));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")
});
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
});
static DATETIME: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+\-]\d{2}:?\d{2}\b)?)?",
        r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|\b)",
    ))
});
static IPV6_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[A-Za-z0-9]+)?"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?::\d{1,5})?\b")
});
static HEX: LazyLock<Regex> = LazyLock::new(|| regex(r"\b0x[0-9A-Fa-f]+\b|\b[0-9A-Fa-f]{8,}\b"));
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        // Go-style compound durations: 1h2m3.5s, 150ms, 2.5s.
        r"\b\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))*\b",
        r"|\b\d+(?:\.\d+)?\s?(?:nanoseconds?|microseconds?|milliseconds?|millis|secs?|seconds?|mins?|minutes?|hrs?|hours?|days?)\b",
    ))
});
// The character before the number is kept so `user_42` → `user_<num>`
// while `utf8` and `x86` stay names.
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?P<pre>^|[^A-Za-z0-9.])-?\d+(?:\.\d+)*\b"));

static PATTERNS: &[Pattern] = &[
    Pattern {
        re: &QUOTED_AFTER_EQ,
        apply: |re, s| re.replace_all(s, "=<value>").into_owned(),
    },
    Pattern {
        re: &PROVIDER_ID,
        apply: provider_ids,
    },
    Pattern {
        re: &URL,
        apply: |re, s| re.replace_all(s, "<url>").into_owned(),
    },
    Pattern {
        re: &EMAIL,
        apply: |re, s| re.replace_all(s, "<email>").into_owned(),
    },
    Pattern {
        re: &UUID,
        apply: |re, s| re.replace_all(s, "<uuid>").into_owned(),
    },
    Pattern {
        re: &DATETIME,
        apply: |re, s| re.replace_all(s, "<datetime>").into_owned(),
    },
    Pattern {
        re: &IPV6_CANDIDATE,
        apply: ipv6,
    },
    Pattern {
        re: &IPV4,
        apply: |re, s| re.replace_all(s, "<ip>").into_owned(),
    },
    Pattern {
        re: &HEX,
        apply: hex,
    },
    Pattern {
        re: &DURATION,
        apply: |re, s| re.replace_all(s, "<duration>").into_owned(),
    },
    Pattern {
        re: &NUMBER,
        apply: |re, s| re.replace_all(s, "${pre}<num>").into_owned(),
    },
];

/// Provider ids are random; a suffix without a digit is more likely a word
/// (`call_later`, `run_forever`).
fn provider_ids(re: &Regex, s: &str) -> String {
    re.replace_all(s, |caps: &Captures<'_>| {
        let m = &caps[0];
        let suffix = m.split_once(['-', '_']).map_or("", |(_, rest)| rest);
        if suffix.len() >= 6 && suffix.bytes().any(|b| b.is_ascii_digit()) {
            "<provider_id>".to_string()
        } else {
            m.to_string()
        }
    })
    .into_owned()
}

/// A bare hex run counts when it mixes digits and letters: all letters is
/// a word (`defaced`), all digits is a number and must template the same
/// as a short number would (`order 77` and `order 12345678`).
fn hex(re: &Regex, s: &str) -> String {
    re.replace_all(s, |caps: &Captures<'_>| {
        let m = &caps[0];
        let mixed =
            m.bytes().any(|b| b.is_ascii_digit()) && m.bytes().any(|b| b.is_ascii_alphabetic());
        if m.starts_with("0x") || mixed {
            "<hex>".to_string()
        } else {
            m.to_string()
        }
    })
    .into_owned()
}

/// IPv6 is hard to match exactly with a regex; candidates are checked with
/// the standard parser and must stand alone (so `std::io` or `a::b` in a
/// Rust path is never an address).
fn ipv6(re: &Regex, s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for m in re.find_iter(s) {
        let before = s[..m.start()].chars().next_back();
        let after = s[m.end()..].chars().next();
        let standalone = !before
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '.'))
            && !after.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | ':'));
        let addr = m.as_str().split('%').next().unwrap_or("");
        let plausible = addr.len() >= 3 && addr.bytes().any(|b| b.is_ascii_hexdigit());
        if standalone && plausible && addr.parse::<Ipv6Addr>().is_ok() {
            out.push_str(&s[last..m.start()]);
            out.push_str("<ip>");
            last = m.end();
        }
    }
    out.push_str(&s[last..]);
    out
}

/// Turns a message into its template: variable parts become `<uuid>`,
/// `<hex>`, `<ip>`, `<email>`, `<url>`, `<datetime>`, `<duration>`, `<num>`,
/// `<value>` or `<provider_id>`, and secrets become `<redacted>`.
pub fn parameterize_message(message: &str) -> String {
    let message = cut(message.trim(), MAX_TEMPLATE_INPUT);
    let mut text = redact_secrets(message).into_owned();
    for p in PATTERNS {
        let re: &Regex = p.re;
        text = (p.apply)(re, &text);
    }
    text
}

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        parameterize_message(s)
    }

    #[test]
    fn each_kind_is_replaced() {
        assert_eq!(
            t("user 3f2b8c1e-9d4a-4c1b-8e2f-0a1b2c3d4e5f not found"),
            "user <uuid> not found"
        );
        assert_eq!(
            t("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 missing"),
            "commit <hex> missing"
        );
        assert_eq!(t("bad pointer 0x7ffd5e8c"), "bad pointer <hex>");
        assert_eq!(
            t("connect to 10.0.3.17:5432 refused"),
            "connect to <ip> refused"
        );
        assert_eq!(
            t("connect to [2001:db8::8a2e:370:7334]:443 refused"),
            "connect to [<ip>]:<num> refused"
        );
        assert_eq!(t("no route to fe80::1%eth0"), "no route to <ip>");
        assert_eq!(
            t("duplicate user jane.doe+test@example.co.uk"),
            "duplicate user <email>"
        );
        assert_eq!(
            t("GET https://api.acme.io/v2/orders/4821?expand=items failed."),
            "GET <url> failed."
        );
        assert_eq!(
            t("token expired at 2024-11-02T13:45:09.123Z"),
            "token expired at <datetime>"
        );
        assert_eq!(
            t("job started 2024-11-02 13:45:09+02:00, log at 13:45:10"),
            "job started <datetime>, log at <datetime>"
        );
        assert_eq!(
            t("upstream took 1532ms (limit 2.5s, budget 1h2m3s)"),
            "upstream took <duration> (limit <duration>, budget <duration>)"
        );
        assert_eq!(t("waited 30 seconds"), "waited <duration>");
        assert_eq!(
            t("order 4821 has -3 items, ratio 0.25"),
            "order <num> has <num> items, ratio <num>"
        );
        assert_eq!(t("order 12345678 and 1.2.3"), "order <num> and <num>");
        assert_eq!(t("KeyError: 'user_42'"), "KeyError: 'user_<num>'");
        assert_eq!(
            t(r#"constraint violated: email="a b" name='x'"#),
            "constraint violated: email=<value> name=<value>"
        );
        assert_eq!(
            t("completion chatcmpl-9xYz3AbCdEf12 failed"),
            "completion <provider_id> failed"
        );
        assert_eq!(
            t("request req_011CRhXYZ9 for msg_01XFDUDYJgAACzvnptvVoYEL tool toolu_01A09q90qw90lq917835lq9 call_abc123 run_Xy12ab thread_abc123def"),
            "request <provider_id> for <provider_id> tool <provider_id> <provider_id> <provider_id> <provider_id>"
        );
    }

    #[test]
    fn words_and_paths_survive() {
        assert_eq!(
            t("utf8 decode failed in std::io::Read for x86 build"),
            "utf8 decode failed in std::io::Read for x86 build"
        );
        assert_eq!(
            t("call_later is not allowed; run_forever stopped"),
            "call_later is not allowed; run_forever stopped"
        );
        assert_eq!(t("a::b::c failed"), "a::b::c failed");
        assert_eq!(t("accessed defaced facade"), "accessed defaced facade");
    }

    #[test]
    fn same_error_different_values_same_template() {
        let a = t("Timeout after 30004ms waiting for order 4821 (trace 4bf92f3577b34da6a3ce929d0e0e4736) at 2024-05-01T10:00:00Z");
        let b = t("Timeout after 512ms waiting for order 77 (trace 00f067aa0ba902b74bf92f3577b34da6) at 2025-01-31T23:59:59Z");
        assert_eq!(a, b);
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_secrets("key sk-proj-abcDEF1234567890xyzXYZ rejected"),
            "key <redacted> rejected"
        );
        assert_eq!(
            redact_secrets("key sk-ant-api03-abcdEFGH1234_-xyz rejected"),
            "key <redacted> rejected"
        );
        assert_eq!(
            redact_secrets("aws AKIAIOSFODNN7EXAMPLE denied"),
            "aws <redacted> denied"
        );
        assert_eq!(
            redact_secrets("token ghp_16C7e42F292c6912E7710c838347Ae178B4a used"),
            "token <redacted> used"
        );
        assert_eq!(
            redact_secrets("slack xoxb-123456789012-abcdefABCDEF failed"),
            "slack <redacted> failed"
        );
        assert_eq!(
            redact_secrets(
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_abc-123"
            ),
            "Authorization: Bearer <redacted>"
        );
        assert_eq!(
            redact_secrets("authorization: bearer abcdefgh12345678=="),
            "authorization: bearer <redacted>"
        );
        assert_eq!(
            redact_secrets("login failed: password=hunter22 user=bob"),
            "login failed: password=<redacted> user=bob"
        );
        assert_eq!(
            redact_secrets(r#"{"api_key": "abcd1234efgh"}"#),
            r#"{"api_key": "<redacted>"}"#
        );
        assert_eq!(
            redact_secrets("X-Api-Key: 9f8e7d6c5b4a"),
            "X-Api-Key: <redacted>"
        );
        assert_eq!(
            redact_secrets("password: must be at least 8 characters"),
            "password: must be at least 8 characters"
        );
        assert_eq!(
            redact_secrets("connect postgres://app:s3cr3t@db.internal:5432/shop failed"),
            "connect postgres://app:<redacted>@db.internal:5432/shop failed"
        );
        assert_eq!(
            redact_secrets("see https://example.com/a@b"),
            "see https://example.com/a@b"
        );
        assert!(matches!(
            redact_secrets("nothing to see here"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            redact_secrets("task-runner and sk-short stay"),
            "task-runner and sk-short stay"
        );
        assert_eq!(
            t("invalid key sk-proj-abcDEF1234567890xyzXYZ"),
            "invalid key <redacted>"
        );
    }

    /// A tiny deterministic generator, so the garbage is the same every run.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(0x5eed);
        let alphabet: Vec<char> =
            "sk-ant_AKIAghp xoxb Bearer0123456789abcdef:/.@=%'\"`[]é漢🦀\u{0}\u{200b}\n\t"
                .chars()
                .collect();
        for round in 0..2000 {
            let len = (rng.next() % 300) as usize;
            let text: String = if round % 2 == 0 {
                (0..len)
                    .map(|_| alphabet[(rng.next() as usize) % alphabet.len()])
                    .collect()
            } else {
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let _ = redact_secrets(&text);
            let _ = parameterize_message(&text);
        }
        let long = "é".repeat(MAX_TEMPLATE_INPUT);
        assert!(parameterize_message(&long).len() <= MAX_TEMPLATE_INPUT);
    }
}
