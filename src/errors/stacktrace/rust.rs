//! Rust panics and `std::backtrace::Backtrace` output: `thread 'x' panicked
//! at file:line:col:` with the message on the next line (older toolchains:
//! `panicked at 'msg', file:line:col`), then `N: path::to::fn` frames each
//! optionally followed by `at file:line:col`. The full format
//! (`N: 0x55.. - path::to::fn::h0123456789abcdef`) is read too.

use std::sync::LazyLock;

use regex::Regex;

use super::{split_qualified, ChainedException, Frame};

static PANIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^thread '(?P<thread>[^']*)'(?: \(\d+\))? panicked at (?P<rest>.*)$")
        .expect("rust panic pattern compiles")
});
static OLD_PANIC_REST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^'(?P<msg>.*)', \S+:\d+(?::\d+)?$").expect("rust old panic pattern compiles")
});
static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*\d+:\s+(?:0x[0-9a-fA-F]+ - )?(?P<func>\S.*?)\s*$")
        .expect("rust frame pattern compiles")
});
static AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s+at (?P<path>.+?):(?P<line>\d+)(?::(?P<col>\d+))?\s*$")
        .expect("rust location pattern compiles")
});
static HASH_SUFFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"::h[0-9a-f]{16}$").expect("rust hash pattern compiles"));

pub(super) fn line_score(line: &str) -> u32 {
    let t = line.trim();
    if PANIC.is_match(line) || t.eq_ignore_ascii_case("stack backtrace:") {
        5
    } else if AT.is_match(line) && t.contains(".rs:") {
        3
    } else if FRAME.is_match(line) && t.contains("::") {
        2
    } else {
        0
    }
}

pub(super) fn parse(text: &str) -> Vec<ChainedException> {
    let mut exception = ChainedException::default();
    // anyhow prints `Caused by:` with `0: message` lines that look like
    // frames, so when a backtrace header exists only what follows it counts.
    let has_header = text
        .lines()
        .any(|l| l.trim().eq_ignore_ascii_case("stack backtrace:"));
    let mut in_backtrace = !has_header;
    let mut message_next = false;

    for line in text.lines() {
        if let Some(caps) = PANIC.captures(line) {
            exception.type_name = Some("panic".to_string());
            let rest = caps["rest"].trim();
            match OLD_PANIC_REST.captures(rest) {
                Some(old) => exception.message = Some(old["msg"].to_string()),
                None => message_next = true,
            }
            continue;
        }
        if message_next {
            message_next = false;
            if !line.trim().is_empty() {
                exception.message = Some(line.trim().to_string());
                continue;
            }
        }
        if line.trim().eq_ignore_ascii_case("stack backtrace:") {
            in_backtrace = true;
            continue;
        }
        if !in_backtrace {
            continue;
        }
        if let Some(caps) = AT.captures(line) {
            if let Some(frame) = exception.frames.last_mut() {
                if frame.path.is_none() {
                    frame.path = Some(caps["path"].to_string());
                    frame.line = caps["line"].parse().ok();
                    frame.column = caps.name("col").and_then(|c| c.as_str().parse().ok());
                }
            }
            continue;
        }
        if let Some(caps) = FRAME.captures(line) {
            let func = &caps["func"];
            if func == "<unknown>" {
                continue;
            }
            exception.frames.push(frame(func));
        }
    }
    if exception.frames.is_empty() && exception.type_name.is_none() {
        return Vec::new();
    }
    vec![exception]
}

fn frame(symbol: &str) -> Frame {
    let symbol = HASH_SUFFIX.replace(symbol, "");
    let (module, function) = split_qualified(&symbol, "::");
    Frame {
        module: module.to_string(),
        function: function.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_stacktrace, Language, LanguageHint};
    use crate::errors::InAppRules;

    const PANIC: &str = "thread 'tokio-runtime-worker' panicked at src/orders/service.rs:87:14:
called `Option::unwrap()` on a `None` value
stack backtrace:
   0: rust_begin_unwind
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/panicking.rs:665:5
   1: core::panicking::panic_fmt
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/panicking.rs:74:14
   2: core::option::unwrap_failed
   3: shop::orders::service::OrderService::load
             at ./src/orders/service.rs:87:14
   4: shop::orders::service::process::{{closure}}
             at ./src/orders/service.rs:55:9
   5: <core::iter::adapters::map::Map<I,F> as core::iter::traits::iterator::Iterator>::next
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/iter/adapters/map.rs:107:19
   6: tokio::runtime::task::core::Core<T,S>::poll
             at /home/dev/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.41.0/src/runtime/task/core.rs:331:17
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.
";

    const FULL: &str = "thread 'main' panicked at 'index out of bounds: the len is 3 but the index is 7', src/main.rs:12:5
stack backtrace:
   0:     0x55d0b6b8c2e1 - std::backtrace_rs::backtrace::libunwind::trace::h5a5c6b8e1d2f3a4b
                               at /rustc/abc/library/std/src/../../backtrace/src/backtrace/libunwind.rs:93:5
   1:     0x55d0b6b8c3a0 - ingest::parse::decode_batch::h0011223344556677
                               at /build/ingest/src/parse.rs:212:9
   2:     0x55d0b6b8c400 - <unknown>
   3:     0x55d0b6b8c500 - __libc_start_main
";

    const ANYHOW: &str = "Error: failed to load order 42

Caused by:
    0: connection refused
    1: os error 111

Stack backtrace:
   0: anyhow::error::<impl anyhow::Error>::msg
   1: shop::db::connect
             at ./src/db.rs:20:5
";

    #[test]
    fn parses_a_modern_panic() {
        let t = parse_stacktrace(PANIC, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.language, Language::Rust);
        let e = &t.exceptions[0];
        assert_eq!(e.type_name.as_deref(), Some("panic"));
        assert_eq!(
            e.message.as_deref(),
            Some("called `Option::unwrap()` on a `None` value")
        );
        let got: Vec<_> = e
            .frames
            .iter()
            .map(|f| (f.module.as_str(), f.function.as_str(), f.in_app))
            .collect();
        assert_eq!(
            got,
            [
                ("", "rust_begin_unwind", false),
                ("core::panicking", "panic_fmt", false),
                ("core::option", "unwrap_failed", false),
                ("shop::orders::service::OrderService", "load", true),
                ("shop::orders::service::process", "{{closure}}", true),
                ("<core::iter::adapters::map::Map<I,F> as core::iter::traits::iterator::Iterator>", "next", false),
                ("tokio::runtime::task::core::Core<T,S>", "poll", false),
            ]
        );
        assert_eq!(e.frames[3].line, Some(87));
        assert_eq!(e.frames[3].column, Some(14));
    }

    #[test]
    fn parses_the_full_format_and_old_panic_line() {
        let t = parse_stacktrace(FULL, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(
            e.message.as_deref(),
            Some("index out of bounds: the len is 3 but the index is 7")
        );
        assert_eq!(e.frames.len(), 3, "<unknown> frames carry nothing");
        assert_eq!(e.frames[1].module, "ingest::parse");
        assert_eq!(e.frames[1].function, "decode_batch");
        assert!(e.frames[1].in_app);
        assert!(!e.frames[2].in_app, "libc start-up is not the app");
    }

    #[test]
    fn anyhow_causes_are_not_frames() {
        let t = parse_stacktrace(ANYHOW, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        let e = &t.exceptions[0];
        assert_eq!(e.frames.len(), 2);
        assert_eq!(e.frames[1].function, "connect");
        assert!(!e.frames[0].in_app);
        assert!(e.frames[1].in_app);
    }
}
