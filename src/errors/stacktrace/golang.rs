//! Go panics and goroutine dumps: `panic: msg`, then per goroutine a
//! `goroutine N [state]:` line followed by pairs of `pkg.func(args)` and a
//! tab-indented `/path/file.go:N +0x..`. Only the first goroutine is read:
//! it is the one that panicked; the rest of a `GOTRACEBACK=all` dump is
//! bystanders.

use std::sync::LazyLock;

use regex::Regex;

use super::{matching_open_paren, ChainedException, Frame};

static GOROUTINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^goroutine \d+ \[[^\]]*\]:\s*$").expect("goroutine pattern compiles")
});
static FILE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s+(?P<path>\S.*?\.go):(?P<line>\d+)(?:\s+\+0x[0-9a-fA-F]+)?\s*$")
        .expect("go file pattern compiles")
});

pub(super) fn line_score(line: &str) -> u32 {
    if GOROUTINE.is_match(line) {
        10
    } else if line.starts_with('\t') && FILE_LINE.is_match(line) {
        3
    } else {
        0
    }
}

pub(super) fn parse(text: &str) -> Vec<ChainedException> {
    let mut exception = ChainedException::default();
    let mut in_goroutine = false;
    let mut pending: Option<Frame> = None;

    for line in text.lines() {
        if !in_goroutine {
            if GOROUTINE.is_match(line) {
                in_goroutine = true;
            } else if exception.message.is_none() {
                // Go has no exception types; what stopped the program is the
                // closest thing, as `panic` is for Rust.
                let kinds = [("panic: ", "panic"), ("fatal error: ", "fatal error")];
                if let Some((msg, kind)) = kinds
                    .iter()
                    .find_map(|(p, k)| line.strip_prefix(p).map(|m| (m, *k)))
                {
                    let msg = msg.trim_end_matches(" [recovered]").trim();
                    exception.type_name = Some(kind.to_string());
                    exception.message = Some(msg.to_string());
                }
            }
            continue;
        }
        if line.trim().is_empty() || GOROUTINE.is_match(line) {
            break;
        }
        if let Some(caps) = FILE_LINE.captures(line) {
            if let Some(mut frame) = pending.take() {
                frame.path = Some(caps["path"].to_string());
                frame.line = caps["line"].parse().ok();
                exception.frames.push(frame);
            }
            continue;
        }
        if let Some(frame) = pending.take() {
            exception.frames.push(frame);
        }
        pending = Some(function_frame(line.trim()));
    }
    if let Some(frame) = pending {
        exception.frames.push(frame);
    }
    if exception.frames.is_empty() && exception.type_name.is_none() {
        return Vec::new();
    }
    vec![exception]
}

/// `github.com/acme/shop/orders.(*Service).Load(0xc0001, {0x6f2a40, 0x5})`
/// → package `github.com/acme/shop/orders`, function `(*Service).Load`.
fn function_frame(line: &str) -> Frame {
    let line = line.strip_prefix("created by ").unwrap_or(line);
    // Go 1.21+: `created by pkg.fn in goroutine 7`.
    let line = match line.rfind(" in goroutine ") {
        Some(i) => &line[..i],
        None => line,
    };
    let qualified = if line.ends_with(')') {
        match matching_open_paren(line) {
            Some(open) if open > 0 && !line[..open].ends_with('.') => &line[..open],
            _ => line,
        }
    } else {
        line
    };
    let (package, function) = split_package(qualified);
    Frame {
        module: package.to_string(),
        function: function.to_string(),
        ..Default::default()
    }
}

fn split_package(qualified: &str) -> (&str, &str) {
    let name_end = qualified.find(['[', '(']).unwrap_or(qualified.len());
    let last_slash = qualified[..name_end].rfind('/').map_or(0, |i| i + 1);
    match qualified[last_slash..].find('.') {
        Some(dot) => (
            &qualified[..last_slash + dot],
            &qualified[last_slash + dot + 1..],
        ),
        None => ("", qualified),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_stacktrace, Language, LanguageHint};
    use super::split_package;
    use crate::errors::InAppRules;

    const NIL_DEREF: &str =
        "panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6b2f4c]

goroutine 42 [running]:
github.com/acme/shop/orders.(*Service).Load(0x0, {0xc000124000, 0x24})
\t/home/ci/work/shop/orders/service.go:87 +0x2c
github.com/acme/shop/orders.Handler.func1({0x7f3c40, 0xc0002a0000}, 0xc0001b2100)
\t/home/ci/work/shop/orders/http.go:42 +0x65
net/http.HandlerFunc.ServeHTTP(...)
\t/usr/local/go/src/net/http/server.go:2136
github.com/go-chi/chi/v5.(*Mux).routeHTTP(0xc0000f4060, {0x7f3c40, 0xc0002a0000}, 0xc0001b2100)
\t/root/go/pkg/mod/github.com/go-chi/chi/v5@v5.0.12/mux.go:459 +0x1c4
created by net/http.(*Server).Serve in goroutine 1
\t/usr/local/go/src/net/http/server.go:3285 +0x4b4

goroutine 1 [IO wait]:
internal/poll.runtime_pollWait(0x7f1a2c, 0x72)
\t/usr/local/go/src/runtime/netpoll.go:345 +0x85
";

    #[test]
    fn parses_the_panicking_goroutine_only() {
        let t = parse_stacktrace(NIL_DEREF, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.language, Language::Go);
        let e = &t.exceptions[0];
        assert_eq!(e.type_name.as_deref(), Some("panic"));
        assert_eq!(
            e.message.as_deref(),
            Some("runtime error: invalid memory address or nil pointer dereference")
        );
        let got: Vec<_> = e
            .frames
            .iter()
            .map(|f| (f.module.as_str(), f.function.as_str(), f.line, f.in_app))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "github.com/acme/shop/orders",
                    "(*Service).Load",
                    Some(87),
                    true
                ),
                (
                    "github.com/acme/shop/orders",
                    "Handler.func1",
                    Some(42),
                    true
                ),
                ("net/http", "HandlerFunc.ServeHTTP", Some(2136), false),
                (
                    "github.com/go-chi/chi/v5",
                    "(*Mux).routeHTTP",
                    Some(459),
                    false
                ),
                ("net/http", "(*Server).Serve", Some(3285), false),
            ]
        );
    }

    #[test]
    fn splits_packages_with_dots_and_generics() {
        assert_eq!(split_package("main.main"), ("main", "main"));
        // Go escapes dots in the last import path element.
        assert_eq!(
            split_package("gopkg.in/yaml%2ev3.(*decoder).unmarshal"),
            ("gopkg.in/yaml%2ev3", "(*decoder).unmarshal")
        );
        assert_eq!(
            split_package("example.com/x/lru.(*Cache[...]).Get"),
            ("example.com/x/lru", "(*Cache[...]).Get")
        );
    }
}
