//! JavaScript `error.stack`: V8 (Node, Chrome, Deno, Bun) prints
//! `at fn (file:line:col)`, Firefox and Safari print `fn@file:line:col`.
//! Both list the innermost call first under a `Type: message` line.

use std::sync::LazyLock;

use regex::Regex;

use super::{basename, matching_open_paren, split_type_message, ChainedException, Frame};

static V8_FRAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*at\s+(?P<rest>.+?)\s*$").expect("V8 frame pattern compiles"));
static GECKO_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?P<func>[^@\s]*(?:\s[^@\s]+)*)@(?P<loc>(?:\S+:\d+(?::\d+)?|\[native code\]))\s*$",
    )
    .expect("Gecko frame pattern compiles")
});
static LINE_COL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<file>.*?)(?::(?P<line>\d+))(?::(?P<col>\d+))?$")
        .expect("JS location pattern compiles")
});
static V8_SCORED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*at\s+(?:.+\s\()?\S+:\d+:\d+\)?\s*$").expect("V8 score pattern compiles")
});

pub(super) fn line_score(line: &str) -> u32 {
    if V8_SCORED.is_match(line) || GECKO_FRAME.is_match(line) {
        3
    } else if line.contains("(node:internal/") || line.contains("(internal/") {
        1
    } else {
        0
    }
}

pub(super) fn parse(text: &str) -> Vec<ChainedException> {
    let mut exception = ChainedException::default();
    let mut header_seen = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(frame) = v8_frame(line).or_else(|| gecko_frame(line)) {
            exception.frames.push(frame);
            continue;
        }
        // The first `Type: message` line before the frames is the header;
        // an untyped line only stands in until one appears.
        if !header_seen && exception.frames.is_empty() {
            match split_type_message(line) {
                (Some(type_name), message) => {
                    exception.type_name = Some(type_name);
                    exception.message = message;
                    header_seen = true;
                }
                (None, message) => {
                    if exception.message.is_none() {
                        exception.message = message;
                    }
                }
            }
        }
    }
    vec![exception]
}

fn v8_frame(line: &str) -> Option<Frame> {
    let caps = V8_FRAME.captures(line)?;
    let rest = caps.name("rest")?.as_str();
    let (function, location) = if rest.ends_with(')') {
        match matching_open_paren(rest) {
            Some(open) if open > 0 => (rest[..open].trim(), &rest[open + 1..rest.len() - 1]),
            _ => ("", rest),
        }
    } else {
        ("", rest)
    };
    // `eval at fn (file:1:2), <anonymous>:3:4`: the code ran in the eval.
    let location = location.rsplit(", ").next().unwrap_or(location);
    // `fn [as alias]` names the same function twice.
    let function = function.split(" [as ").next().unwrap_or(function);
    Some(located_frame(function, location))
}

fn gecko_frame(line: &str) -> Option<Frame> {
    let caps = GECKO_FRAME.captures(line)?;
    // Async markers (`async*fn`, `promise callback*fn`) name the same frame.
    let function = caps["func"].rsplit('*').next().unwrap_or("");
    Some(located_frame(function, &caps["loc"]))
}

fn located_frame(function: &str, location: &str) -> Frame {
    let (path, line, column) = match LINE_COL.captures(location) {
        Some(c) => (
            c["file"].to_string(),
            c["line"].parse().ok(),
            c.name("col").and_then(|m| m.as_str().parse().ok()),
        ),
        // Native frames: `native`, `<anonymous>`, `index 0`, `[native code]`.
        None => (location.to_string(), None, None),
    };
    Frame {
        module: basename(&path).to_string(),
        function: function.to_string(),
        path: Some(path),
        line,
        column,
        in_app: false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_stacktrace, Language, LanguageHint};
    use crate::errors::InAppRules;

    const NODE: &str = "TypeError: Cannot read properties of undefined (reading 'email')
    at getUser (/srv/api/src/users/service.js:42:17)
    at async Promise.all (index 0)
    at async handler (/srv/api/src/routes/users.ts:18:5)
    at Layer.handle [as handle_request] (/srv/api/node_modules/express/lib/router/layer.js:95:5)
    at Object.<anonymous> (/srv/api/src/index.js:3:1)
    at /srv/api/src/middleware/auth.js:27:9
    at Module._compile (node:internal/modules/cjs/loader:1256:14)
    at eval (eval at compile (/srv/api/src/tpl.js:10:3), <anonymous>:1:1)
";

    const FIREFOX: &str = "TypeError: user is undefined
renderProfile@https://app.acme.io/static/js/main.3f9a1c2b.chunk.js:1:20451
UserList/<@https://app.acme.io/static/js/main.3f9a1c2b.chunk.js:1:18022
async*loadUsers@https://app.acme.io/static/js/main.3f9a1c2b.chunk.js:1:17990
@https://app.acme.io/static/js/vendors~main.chunk.js:2:9921
promiseReactionJob@[native code]
";

    #[test]
    fn parses_a_node_trace() {
        let t = parse_stacktrace(NODE, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.language, Language::JavaScript);
        let e = &t.exceptions[0];
        assert_eq!(e.type_name.as_deref(), Some("TypeError"));
        let got: Vec<_> = e
            .frames
            .iter()
            .map(|f| (f.module.as_str(), f.function.as_str(), f.line, f.in_app))
            .collect();
        assert_eq!(
            got,
            [
                ("service.js", "getUser", Some(42), true),
                ("index 0", "async Promise.all", None, false),
                ("users.ts", "async handler", Some(18), true),
                ("layer.js", "Layer.handle", Some(95), false),
                ("index.js", "Object.<anonymous>", Some(3), true),
                ("auth.js", "", Some(27), true),
                ("loader", "Module._compile", Some(1256), false),
                ("<anonymous>", "eval", Some(1), false),
            ]
        );
        assert_eq!(e.frames[0].column, Some(17));
    }

    #[test]
    fn parses_a_safari_trace() {
        let text = "global code@https://app.acme.io/static/js/boot.js:12:34
render@https://app.acme.io/static/js/view.js:3:9
";
        let hint = LanguageHint {
            sdk_language: Some("webjs"),
            exception_type: Some("TypeError"),
        };
        let t = parse_stacktrace(text, hint, &InAppRules::default()).expect("parses");
        let got: Vec<_> = t.exceptions[0]
            .frames
            .iter()
            .map(|f| (f.module.as_str(), f.function.as_str()))
            .collect();
        assert_eq!(got, [("boot.js", "global code"), ("view.js", "render")]);
    }

    #[test]
    fn parses_a_firefox_trace() {
        let t = parse_stacktrace(FIREFOX, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.language, Language::JavaScript);
        let e = &t.exceptions[0];
        assert_eq!(e.message.as_deref(), Some("user is undefined"));
        let got: Vec<_> = e
            .frames
            .iter()
            .map(|f| (f.module.as_str(), f.function.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("main.3f9a1c2b.chunk.js", "renderProfile"),
                ("main.3f9a1c2b.chunk.js", "UserList/<"),
                ("main.3f9a1c2b.chunk.js", "loadUsers"),
                ("vendors~main.chunk.js", ""),
                ("[native code]", "promiseReactionJob"),
            ]
        );
        assert_eq!(e.frames[0].column, Some(20451));
        assert!(!e.frames[4].in_app);
    }
}
