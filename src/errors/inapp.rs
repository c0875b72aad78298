//! Which frames are the application's own code. Grouping on in-app frames
//! keeps a bug in one handler from merging with every other error that
//! passes through the same framework, and it names the culprit.
//!
//! Frames are in-app unless they come from a dependency or the standard
//! library. Users can override both ways with `[errors]` rules in qyl.toml.

use serde::{Deserialize, Serialize};

use super::paths::is_dependency;
use super::stacktrace::{Frame, Language};

/// User overrides. A rule matches a frame when the frame's module or its
/// qualified function (`module.function` / `module::function`) starts with
/// it, or when its path contains it. `include` wins over `exclude`, and both
/// win over the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InAppRules {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

const PYTHON_STDLIB_PATHS: &[&str] = &[
    "/lib/python2",
    "/lib/python3",
    "/Lib/",
    "/lib/pypy",
    "/lib-python/",
    "<frozen ",
];

const JVM_LIBRARY: &[&str] = &[
    "java.",
    "javax.",
    "jakarta.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "groovy.",
    "org.springframework.",
    "org.apache.",
    "org.hibernate.",
    "org.eclipse.jetty.",
    "io.netty.",
    "io.grpc.",
    "io.micronaut.",
    "io.quarkus.",
    "io.vertx.",
    "reactor.",
    "io.reactivex.",
    "com.fasterxml.",
    "com.google.",
    "okhttp3.",
    "okio.",
    "retrofit2.",
    "com.zaxxer.",
    "org.junit.",
    "org.gradle.",
    "ch.qos.logback.",
    "org.slf4j.",
];

const DOTNET_LIBRARY: &[&str] = &[
    "System.",
    "Microsoft.",
    "Newtonsoft.",
    "Npgsql.",
    "Grpc.",
    "Polly.",
    "MediatR.",
    "lambda_method",
];

/// Go standard library roots. Go has no path marker for the standard
/// library when built with `-trimpath`, so the package name decides.
const GO_STDLIB: &[&str] = &[
    "runtime",
    "internal",
    "net",
    "sync",
    "syscall",
    "os",
    "io",
    "fmt",
    "encoding",
    "database",
    "reflect",
    "testing",
    "context",
    "crypto",
    "bufio",
    "strings",
    "strconv",
    "time",
    "log",
    "errors",
    "sort",
    "bytes",
    "math",
    "compress",
    "html",
    "text",
    "mime",
    "regexp",
    "unicode",
    "path",
    "archive",
    "container",
    "debug",
    "embed",
    "expvar",
    "flag",
    "hash",
    "image",
    "plugin",
    "slices",
    "maps",
    "iter",
    "cmp",
    "unique",
];

const RUST_LIBRARY: &[&str] = &[
    "__rustc::",
    "std::",
    "core::",
    "alloc::",
    "tokio::",
    "tokio_util::",
    "futures::",
    "futures_util::",
    "futures_core::",
    "hyper::",
    "hyper_util::",
    "axum::",
    "tower::",
    "tonic::",
    "anyhow::",
    "eyre::",
    "backtrace::",
    "tracing::",
    "async_trait::",
    "rayon::",
    "rayon_core::",
];

/// Symbols of the Rust runtime and libc that carry no module path.
const RUST_RUNTIME_SYMBOLS: &[&str] = &[
    "rust_begin_unwind",
    "rust_panic",
    "__rust_",
    "_start",
    "__libc_start",
    "start_thread",
    "clone",
    "__clone",
    "main",
    "BaseThreadInitThunk",
    "RtlUserThreadStart",
];

impl InAppRules {
    pub fn is_in_app(&self, language: Language, frame: &Frame) -> bool {
        if self
            .include
            .iter()
            .any(|r| rule_matches(r, language, frame))
        {
            return true;
        }
        if self
            .exclude
            .iter()
            .any(|r| rule_matches(r, language, frame))
        {
            return false;
        }
        !is_library(language, frame)
    }
}

fn rule_matches(rule: &str, language: Language, frame: &Frame) -> bool {
    if rule.is_empty() {
        return false;
    }
    if frame.module.starts_with(rule) || frame.path.as_deref().is_some_and(|p| p.contains(rule)) {
        return true;
    }
    let sep = if language == Language::Rust {
        "::"
    } else {
        "."
    };
    let qualified = if frame.module.is_empty() {
        frame.function.clone()
    } else {
        format!("{}{sep}{}", frame.module, frame.function)
    };
    qualified.starts_with(rule)
}

fn is_library(language: Language, frame: &Frame) -> bool {
    let path = frame.path.as_deref().map(|p| p.replace('\\', "/"));
    let path = path.as_deref();
    // Package managers' stores, wherever this machine keeps them.
    if path.is_some_and(is_dependency) {
        return true;
    }
    let module = frame.module.as_str();
    match language {
        Language::Python => path.is_some_and(|p| PYTHON_STDLIB_PATHS.iter().any(|d| p.contains(d))),
        Language::Java => JVM_LIBRARY.iter().any(|p| module.starts_with(p)),
        Language::DotNet => {
            let qualified = if module.is_empty() {
                frame.function.as_str()
            } else {
                module
            };
            DOTNET_LIBRARY.iter().any(|p| qualified.starts_with(p))
        }
        Language::JavaScript => match path {
            // A frame with no line is native code (`native`, `index 0`,
            // `<anonymous>`, `[native code]`).
            _ if frame.line.is_none() => true,
            Some(p) => {
                p.starts_with("node:")
                    || p.starts_with("ext:")
                    || p.starts_with("internal/")
                    || p == "<anonymous>"
                    || p.starts_with("webpack/")
            }
            None => true,
        },
        Language::Go => {
            // Only the runtime's builtins (`panic`) print without a package.
            if module.is_empty() {
                return true;
            }
            let root = module.split('/').next().unwrap_or(module);
            GO_STDLIB.contains(&root)
        }
        Language::Rust => {
            // `<core::iter::Map<I,F> as Iterator>::next`: the type decides.
            let module = module.trim_start_matches('<');
            // Unless the type is not a path (`<fn() as FnOnce>`): then the trait.
            let module = match module.split_once(" as ") {
                Some((ty, tr))
                    if ty.starts_with(['(', '[', '&', '*'])
                        || ty.starts_with("fn(")
                        || ty.starts_with("dyn ") =>
                {
                    tr
                }
                _ => module,
            };
            if module.is_empty() {
                RUST_RUNTIME_SYMBOLS
                    .iter()
                    .any(|s| frame.function.starts_with(s))
            } else {
                RUST_LIBRARY
                    .iter()
                    .any(|p| module.starts_with(p) || module == p.trim_end_matches(':'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(module: &str, function: &str, path: Option<&str>) -> Frame {
        Frame {
            module: module.into(),
            function: function.into(),
            path: path.map(str::to_string),
            line: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_mark_libraries() {
        let r = InAppRules::default();
        assert!(!r.is_in_app(
            Language::Python,
            &frame("x.py", "f", Some("/venv/lib/python3.12/site-packages/x.py"))
        ));
        assert!(!r.is_in_app(
            Language::Python,
            &frame("json.py", "f", Some("/usr/lib/python3.12/json/decoder.py"))
        ));
        assert!(r.is_in_app(
            Language::Python,
            &frame("views.py", "f", Some("/srv/app/views.py"))
        ));
        assert!(!r.is_in_app(Language::Java, &frame("java.util.HashMap", "get", None)));
        assert!(r.is_in_app(Language::Java, &frame("com.acme.Main", "main", None)));
        assert!(!r.is_in_app(
            Language::DotNet,
            &frame("System.Linq.Enumerable", "First", None)
        ));
        assert!(!r.is_in_app(
            Language::JavaScript,
            &frame("x.js", "f", Some("/a/node_modules/x.js"))
        ));
        assert!(!r.is_in_app(
            Language::JavaScript,
            &frame("loader", "f", Some("node:internal/modules/cjs/loader"))
        ));
        assert!(!r.is_in_app(Language::Go, &frame("net/http", "f", Some("server.go"))));
        assert!(r.is_in_app(Language::Go, &frame("main", "main", Some("/src/main.go"))));
        assert!(!r.is_in_app(
            Language::Go,
            &frame(
                "github.com/x/y",
                "f",
                Some("/root/go/pkg/mod/github.com/x/y@v1/y.go")
            )
        ));
        assert!(!r.is_in_app(Language::Rust, &frame("std::rt", "lang_start", None)));
        assert!(!r.is_in_app(
            Language::Rust,
            &frame(
                "<alloc::boxed::Box<F,A> as core::ops::FnOnce>",
                "call_once",
                None
            )
        ));
        assert!(r.is_in_app(
            Language::Rust,
            &frame("shop::orders", "load", Some("./src/orders.rs"))
        ));
        assert!(!r.is_in_app(Language::Rust, &frame("__rustc", "rust_begin_unwind", None)));
        assert!(!r.is_in_app(
            Language::Rust,
            &frame("<fn() -> core::result::Result<(), alloc::string::String> as core::ops::function::FnOnce<()>>", "call_once", None)
        ));
        assert!(r.is_in_app(
            Language::Rust,
            &frame("<shop::Order as core::fmt::Display>", "fmt", None)
        ));
        assert!(!r.is_in_app(
            Language::Rust,
            &frame("x", "y", Some(r"C:\Users\me\.cargo\registry\src\x\lib.rs"))
        ));
    }

    #[test]
    fn include_beats_exclude_beats_defaults() {
        let r = InAppRules {
            include: vec![
                "org.springframework.web.servlet".into(),
                "mycorp-sdk".into(),
            ],
            exclude: vec!["com.acme.generated".into(), "org.springframework".into()],
        };
        assert!(r.is_in_app(
            Language::Java,
            &frame(
                "org.springframework.web.servlet.FrameworkServlet",
                "service",
                None
            )
        ));
        assert!(!r.is_in_app(
            Language::Java,
            &frame("com.acme.generated.Proto", "parse", None)
        ));
        assert!(r.is_in_app(
            Language::JavaScript,
            &frame("c.js", "f", Some("/app/node_modules/mycorp-sdk/c.js"))
        ));
        // Qualified-function prefixes match too.
        let r = InAppRules {
            include: vec![],
            exclude: vec!["shop::orders::load".into()],
        };
        assert!(!r.is_in_app(Language::Rust, &frame("shop::orders", "load", None)));
        assert!(r.is_in_app(Language::Rust, &frame("shop::orders", "save", None)));
    }

    #[test]
    fn rules_deserialize_from_toml() {
        let r: InAppRules =
            toml::from_str("include = [\"a\"]\nexclude = [\"b\", \"c\"]").expect("valid toml");
        assert_eq!(r.include, ["a"]);
        assert_eq!(r.exclude, ["b", "c"]);
        let empty: InAppRules = toml::from_str("").expect("valid toml");
        assert_eq!(empty, InAppRules::default());
        assert!(toml::from_str::<InAppRules>("includes = []").is_err());
    }
}
