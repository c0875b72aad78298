//! Frames → the part of them that survives a rebuild. Line and column
//! numbers move with every edit, compilers number closures and lambdas in
//! declaration order, and symbol hashes change with every build; none of
//! that says anything about which bug this is, so none of it is hashed.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::paths::{js_module, python_module};
use super::stacktrace::{split_qualified, Frame, Language};

/// What one frame contributes to a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FrameKey {
    pub module: String,
    pub function: String,
}

impl FrameKey {
    pub fn component(&self) -> String {
        format!("{} {}", self.module, self.function)
    }
}

/// Frames beyond this many (after collapsing) are not hashed: a stack
/// overflow must not cost more than any other error.
pub const MAX_HASHED_FRAMES: usize = 128;

/// Recursion cycles up to this many frames long collapse (`a a a` → `a`,
/// `a b a b` → `a b`): mutual recursion is as common as self-recursion.
const MAX_CYCLE: usize = 4;

/// Normalises `frames` (innermost first), drops noise frames and collapses
/// repeated runs, which is what recursion leaves behind, so the same bug
/// hit at a different depth keeps its fingerprint.
pub fn normalize_frames<'a>(
    language: Language,
    frames: impl IntoIterator<Item = &'a Frame>,
) -> Vec<FrameKey> {
    let mut out: Vec<FrameKey> = Vec::new();
    for frame in frames {
        let Some(key) = normalize_frame(language, frame) else {
            continue;
        };
        out.push(key);
        collapse_repeat(&mut out);
        if out.len() == MAX_HASHED_FRAMES {
            break;
        }
    }
    out
}

/// Drops the tail of `keys` when it repeats the run just before it.
fn collapse_repeat(keys: &mut Vec<FrameKey>) {
    let n = keys.len();
    for period in 1..=MAX_CYCLE.min(n / 2) {
        if keys[n - period..] == keys[n - 2 * period..n - period] {
            keys.truncate(n - period);
            return;
        }
    }
}

/// One frame's stable identity, or `None` for frames that are pure noise
/// (compiler-generated trampolines, native JS frames, comprehensions).
pub fn normalize_frame(language: Language, frame: &Frame) -> Option<FrameKey> {
    let (module, function) = match language {
        Language::Python => python(frame)?,
        Language::Java => java(frame)?,
        Language::DotNet => dotnet(frame),
        Language::JavaScript => javascript(frame)?,
        Language::Go => go(frame),
        Language::Rust => rust(frame),
    };
    if module.is_empty() && function.is_empty() {
        return None;
    }
    Some(FrameKey { module, function })
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("normalisation pattern compiles")
}

static NET_ARITY: LazyLock<Regex> = LazyLock::new(|| regex(r"`\d+"));

/// Removes generic arguments: `<…>` and `[…]` directly after a name
/// (`Vec<T>`, `First[TSource]`, `Map[go.shape.int]`), plus .NET's `` `1 ``
/// arity markers. Brackets that start a segment (`<lambda>`, `<Get>d__3`,
/// `<core::X as Y>`) are names, not generics, and stay.
pub fn strip_generics(s: &str) -> String {
    let s = NET_ARITY.replace_all(s, "");
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut prev: Option<char> = None;
    for c in s.chars() {
        if depth > 0 {
            match c {
                '<' | '[' => depth += 1,
                '>' | ']' => depth -= 1,
                _ => {}
            }
            continue;
        }
        if matches!(c, '<' | '[') && prev.is_some_and(|p| p.is_alphanumeric() || p == '_') {
            depth = 1;
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

fn python(frame: &Frame) -> Option<(String, String)> {
    // 3.12 inlines comprehensions, so their frames come and go with the
    // interpreter version; the enclosing function identifies the code.
    if matches!(
        frame.function.as_str(),
        "<listcomp>" | "<dictcomp>" | "<setcomp>" | "<genexpr>"
    ) {
        return None;
    }
    // The file name, not the path: the path starts with the deploy root.
    let module = frame
        .path
        .as_deref()
        .map_or_else(|| frame.module.clone(), python_module);
    Some((module, frame.function.clone()))
}

static JAVA_LAMBDA_METHOD: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^lambda\$(?P<name>.*?)\$\d+$"));
static JAVA_LAMBDA_CLASS: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\$\$Lambda(?:\$\d+)?(?:/0x[0-9a-fA-F]+)?"));
/// Classes generated at run time carry a per-process or per-build suffix:
/// CGLIB (`$$EnhancerBySpringCGLIB$$5f1c2a9b`, `$$SpringCGLIB$$0`),
/// ByteBuddy-made subclasses (`$HibernateProxy$dTxa8Yq2`,
/// `$ByteBuddy$Ab12`, `$MockitoMock$1234`) and Javassist (`_$$_jvst4a2_0`).
static JAVA_CGLIB: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\$\$(?P<kind>[A-Za-z]*CGLIB|FastClass[A-Za-z]*)\$\$[0-9a-fA-F]+"));
static JAVA_BYTEBUDDY: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\$(?P<kind>HibernateProxy|ByteBuddy|MockitoMock|auxiliary)\$[A-Za-z0-9]+")
});
static JAVA_JAVASSIST: LazyLock<Regex> = LazyLock::new(|| regex(r"_\$\$_jvst[0-9a-f]+_[0-9a-f]+"));
/// JDK dynamic proxies live in numbered modules (`jdk.proxy2`) whose
/// number depends on load order.
static JAVA_PROXY_MODULE: LazyLock<Regex> = LazyLock::new(|| regex(r"^jdk\.proxy\d+\."));
static JAVA_ANON_CLASS: LazyLock<Regex> = LazyLock::new(|| regex(r"\$\d+"));
static JAVA_GENERATED: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?P<name>GeneratedMethodAccessor|GeneratedConstructorAccessor|\$Proxy)\d+")
});

fn java(frame: &Frame) -> Option<(String, String)> {
    // `access$000` is a synthetic trampoline javac adds for private access;
    // `Foo$$Lambda$12/0x….apply` is the JVM's generated bridge into a
    // lambda body, whose own frame (`lambda$method$0`) follows it.
    if frame.function.starts_with("access$") || JAVA_LAMBDA_CLASS.is_match(&frame.module) {
        return None;
    }
    // A class loader or module prefix (`app//`, `shop@1.4.2/`,
    // `loader/shop@1.4.2/`) names the packaging, not the class.
    let module = frame.module.rsplit('/').next().unwrap_or(&frame.module);
    let module = JAVA_CGLIB.replace_all(module, "$$$$${kind}");
    let module = JAVA_BYTEBUDDY.replace_all(&module, "$$${kind}");
    let module = JAVA_JAVASSIST.replace_all(&module, "");
    let module = JAVA_PROXY_MODULE.replace(&module, "jdk.proxy.");
    let module = JAVA_GENERATED.replace_all(&module, "${name}");
    // Anonymous classes are numbered in declaration order.
    let module = JAVA_ANON_CLASS.replace_all(&module, "$$anon");
    let function = JAVA_LAMBDA_METHOD.replace(&frame.function, "lambda$$${name}");
    Some((module.into_owned(), function.into_owned()))
}

static NET_ASYNC_STATE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^(?P<outer>.*)\.<(?P<method>[^>]*)>d__\d+$"));
static NET_DISPLAY_CLASS: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\.<>c(?:__DisplayClass\d+_\d+)?$"));
static NET_LAMBDA: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^<(?P<method>[^>]*)>(?:b__[\d_]+|g__(?P<local>[^|]*)\|[\d_]+)$"));
static NET_LAMBDA_METHOD: LazyLock<Regex> = LazyLock::new(|| regex(r"^lambda_method\d+$"));

fn dotnet(frame: &Frame) -> (String, String) {
    let mut module = strip_generics(&frame.module);
    let mut function = strip_generics(&frame.function);
    // `Class.<Method>d__5.MoveNext`: the async state machine of `Method`.
    if let Some(c) = NET_ASYNC_STATE.captures(&module) {
        if function == "MoveNext" {
            function = c["method"].to_string();
            module = c["outer"].to_string();
        }
    }
    // `Class.<>c__DisplayClass5_0.<Process>b__0`: a lambda inside `Process`;
    // `<Main>g__Local|0_0`: a local function inside `Main`.
    module = NET_DISPLAY_CLASS.replace(&module, "").into_owned();
    if let Some(c) = NET_LAMBDA.captures(&function) {
        function = match c.name("local") {
            Some(local) => format!("{}.{}", &c["method"], local.as_str()),
            None => c["method"].to_string(),
        };
    }
    if NET_LAMBDA_METHOD.is_match(&function) {
        function = "lambda_method".to_string();
    }
    (module, function)
}

fn javascript(frame: &Frame) -> Option<(String, String)> {
    let path = frame.path.as_deref().unwrap_or("");
    // Native frames have no file to point at.
    if frame.line.is_none() || path.is_empty() || path == "<anonymous>" || path == "native" {
        return None;
    }
    // The file's name without what the bundler and the deploy add.
    let module = js_module(path);
    let mut function = frame.function.trim();
    for prefix in ["async ", "new "] {
        function = function.strip_prefix(prefix).unwrap_or(function);
    }
    function = function.strip_prefix("Object.").unwrap_or(function);
    // Firefox marks nested anonymous functions with `/<`.
    let function = function.trim_end_matches('<').trim_end_matches('/');
    let function = match function {
        "<anonymous>" | "anonymous" | "<unknown>" | "?" => "",
        f => f,
    };
    Some((module, strip_generics(function)))
}

static GO_CLOSURE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\.(?P<kind>func|gowrap|deferwrap)\d+(?:\.\d+)*"));

fn go(frame: &Frame) -> (String, String) {
    let function = strip_generics(&frame.function);
    // Closures are numbered per enclosing function: `Handler.func1`, `.func2.1`.
    let function = GO_CLOSURE.replace_all(&function, ".${kind}");
    let function = function
        .strip_suffix("-fm")
        .unwrap_or(&function)
        .to_string();
    (frame.module.clone(), function)
}

static RUST_HASH: LazyLock<Regex> = LazyLock::new(|| regex(r"::h[0-9a-f]{16}$"));
static RUST_CLOSURE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"::\{\{(?:closure|constant|constructor)\}\}"));
static RUST_QUALIFIED: LazyLock<Regex> =
    LazyLock::new(|| regex(r"<(?:impl )?(?P<ty>[^<>]+?)(?: as [^<>]+)?>"));

fn rust(frame: &Frame) -> (String, String) {
    let qualified = if frame.module.is_empty() {
        frame.function.clone()
    } else {
        format!("{}::{}", frame.module, frame.function)
    };
    let qualified = RUST_HASH.replace(&qualified, "");
    // A closure is part of the function that defines it; async blocks too.
    let qualified = RUST_CLOSURE.replace_all(&qualified, "");
    let qualified = strip_generics(&qualified);
    // `<Type as Trait>::method` and `<impl Type>::method` → `Type::method`.
    let qualified = RUST_QUALIFIED.replace_all(&qualified, "${ty}");
    let (module, function) = split_qualified(&qualified, "::");
    (module.to_string(), function.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(module: &str, function: &str) -> Frame {
        Frame {
            module: module.into(),
            function: function.into(),
            path: Some("/src/x".into()),
            line: Some(1),
            ..Default::default()
        }
    }

    fn key(language: Language, module: &str, function: &str) -> Option<(String, String)> {
        normalize_frame(language, &f(module, function)).map(|k| (k.module, k.function))
    }

    fn pair(m: &str, f: &str) -> Option<(String, String)> {
        Some((m.into(), f.into()))
    }

    #[test]
    fn generics_are_stripped_but_bracketed_names_kept() {
        assert_eq!(strip_generics("Vec<Option<T>>::push"), "Vec::push");
        assert_eq!(strip_generics("First[TSource]"), "First");
        assert_eq!(strip_generics("List`1.Add"), "List.Add");
        assert_eq!(strip_generics("<lambda>"), "<lambda>");
        assert_eq!(strip_generics("Object.<anonymous>"), "Object.<anonymous>");
        assert_eq!(strip_generics("(*Cache[...]).Get"), "(*Cache).Get");
        assert_eq!(strip_generics("unbalanced<"), "unbalanced");
        assert_eq!(strip_generics("a>b]"), "a>b]");
    }

    #[test]
    fn rust_noise() {
        assert_eq!(
            key(Language::Rust, "shop::orders", "load::h0123456789abcdef"),
            pair("shop::orders", "load")
        );
        assert_eq!(
            key(Language::Rust, "shop::orders::process", "{{closure}}"),
            pair("shop::orders", "process")
        );
        assert_eq!(
            key(
                Language::Rust,
                "shop::run::{{closure}}::{{closure}}",
                "{{closure}}"
            ),
            pair("shop", "run")
        );
        assert_eq!(
            key(
                Language::Rust,
                "tokio::runtime::task::core::Core<T,S>",
                "poll"
            ),
            pair("tokio::runtime::task::core::Core", "poll")
        );
        assert_eq!(
            key(
                Language::Rust,
                "<core::iter::adapters::map::Map<I,F> as core::iter::traits::iterator::Iterator>",
                "next"
            ),
            pair("core::iter::adapters::map::Map", "next")
        );
        assert_eq!(
            key(Language::Rust, "anyhow::error::<impl anyhow::Error>", "msg"),
            pair("anyhow::error::anyhow::Error", "msg")
        );
    }

    #[test]
    fn java_noise() {
        for (module, expected) in [
            (
                "shop-loader/com.acme.shop@1.4.2/com.acme.Billing",
                "com.acme.Billing",
            ),
            (
                "com.acme.Customer$HibernateProxy$dTxa8Yq2",
                "com.acme.Customer$HibernateProxy",
            ),
            (
                "com.acme.Repo$MockitoMock$1234567",
                "com.acme.Repo$MockitoMock",
            ),
            (
                "com.acme.Billing$$EnhancerByCGLIB$$5f1c2a9b",
                "com.acme.Billing$$EnhancerByCGLIB",
            ),
            (
                "com.acme.Billing$$SpringCGLIB$$0",
                "com.acme.Billing$$SpringCGLIB",
            ),
            ("com.acme.Billing_$$_jvst4a2_0", "com.acme.Billing"),
            ("jdk.proxy3.$Proxy142", "jdk.proxy.$Proxy"),
        ] {
            assert_eq!(
                key(Language::Java, module, "f"),
                pair(expected, "f"),
                "{module}"
            );
        }
        assert_eq!(
            key(Language::Java, "com.acme.OrderService", "lambda$process$0"),
            pair("com.acme.OrderService", "lambda$process")
        );
        assert_eq!(
            key(Language::Java, "com.acme.OrderService", "lambda$process$7"),
            pair("com.acme.OrderService", "lambda$process")
        );
        assert_eq!(
            key(
                Language::Java,
                "com.acme.OrderService$$Lambda$1214/0x0000000801a3c8f0",
                "apply"
            ),
            None
        );
        assert_eq!(
            key(
                Language::Java,
                "com.acme.OrderService$$Lambda/0x00007f0c",
                "apply"
            ),
            None
        );
        assert_eq!(key(Language::Java, "com.acme.Repo", "access$000"), None);
        assert_eq!(
            key(
                Language::Java,
                "com.acme.Billing$$EnhancerBySpringCGLIB$$5f1c2a9b",
                "charge"
            ),
            pair("com.acme.Billing$$EnhancerBySpringCGLIB", "charge")
        );
        assert_eq!(
            key(Language::Java, "com.acme.Syncer$pull$2", "invokeSuspend"),
            pair("com.acme.Syncer$pull$anon", "invokeSuspend")
        );
        assert_eq!(
            key(
                Language::Java,
                "jdk.internal.reflect.GeneratedMethodAccessor42",
                "invoke"
            ),
            pair("jdk.internal.reflect.GeneratedMethodAccessor", "invoke")
        );
    }

    #[test]
    fn dotnet_noise() {
        assert_eq!(
            key(
                Language::DotNet,
                "Acme.Api.OrdersController.<Get>d__3",
                "MoveNext"
            ),
            pair("Acme.Api.OrdersController", "Get")
        );
        assert_eq!(
            key(
                Language::DotNet,
                "Acme.Api.OrdersController.<Get>d__12",
                "MoveNext"
            ),
            pair("Acme.Api.OrdersController", "Get")
        );
        assert_eq!(
            key(
                Language::DotNet,
                "Acme.Orders.OrderService.<>c__DisplayClass5_0",
                "<Process>b__0"
            ),
            pair("Acme.Orders.OrderService", "Process")
        );
        assert_eq!(
            key(
                Language::DotNet,
                "Acme.Orders.OrderService.<>c",
                "<Process>b__5_1"
            ),
            pair("Acme.Orders.OrderService", "Process")
        );
        assert_eq!(
            key(Language::DotNet, "Acme.Program", "<Main>g__Validate|0_0"),
            pair("Acme.Program", "Main.Validate")
        );
        assert_eq!(
            key(Language::DotNet, "System.Linq.Enumerable", "First[TSource]"),
            pair("System.Linq.Enumerable", "First")
        );
        assert_eq!(
            key(Language::DotNet, "System.Collections.Generic.List`1", "Add"),
            pair("System.Collections.Generic.List", "Add")
        );
        assert_eq!(
            key(Language::DotNet, "", "lambda_method12"),
            pair("", "lambda_method")
        );
    }

    #[test]
    fn javascript_noise() {
        let frame = |path: &str, function: &str, line: Option<u32>| Frame {
            module: crate::errors::stacktrace::basename(path).into(),
            function: function.into(),
            path: Some(path.into()),
            line,
            ..Default::default()
        };
        let n =
            |fr: Frame| normalize_frame(Language::JavaScript, &fr).map(|k| (k.module, k.function));
        assert_eq!(
            n(frame("/app/index.js", "Object.<anonymous>", Some(3))),
            pair("index", "")
        );
        assert_eq!(
            n(frame("/a/users.ts", "async handler", Some(3))),
            pair("users", "handler")
        );
        assert_eq!(
            n(frame("/a/users.ts", "new UserRepo", Some(3))),
            pair("users", "UserRepo")
        );
        assert_eq!(
            n(frame("/a/users.ts", "Object.getUser", Some(3))),
            pair("users", "getUser")
        );
        assert_eq!(
            n(frame(
                "https://x/static/js/main.3f9a1c2b.chunk.js",
                "UserList/<",
                Some(1)
            )),
            pair("main", "UserList")
        );
        assert_eq!(
            n(frame(
                "https://x/assets/index-4b8e21cd.js",
                "render",
                Some(1)
            )),
            pair("index", "render")
        );
        assert_eq!(n(frame("index 0", "async Promise.all", None)), None);
        assert_eq!(n(frame("<anonymous>", "eval", Some(1))), None);
    }

    #[test]
    fn go_noise() {
        assert_eq!(
            key(Language::Go, "github.com/acme/shop", "Handler.func1"),
            pair("github.com/acme/shop", "Handler.func")
        );
        assert_eq!(
            key(Language::Go, "github.com/acme/shop", "Handler.func3.2"),
            pair("github.com/acme/shop", "Handler.func")
        );
        assert_eq!(key(Language::Go, "main", "Map[...]"), pair("main", "Map"));
        assert_eq!(
            key(
                Language::Go,
                "example.com/lru",
                "(*Cache[go.shape.string]).Get"
            ),
            pair("example.com/lru", "(*Cache).Get")
        );
        assert_eq!(
            key(Language::Go, "main", "(*Server).handle-fm"),
            pair("main", "(*Server).handle")
        );
        assert_eq!(
            key(Language::Go, "main", "main.gowrap1"),
            pair("main", "main.gowrap")
        );
    }

    #[test]
    fn python_noise() {
        let py = |function: &str| {
            let frame = Frame {
                path: Some("/srv/releases/20241203-1412/shop/pricing.py".into()),
                ..f("pricing.py", function)
            };
            normalize_frame(Language::Python, &frame).map(|k| (k.module, k.function))
        };
        assert_eq!(py("<listcomp>"), None);
        assert_eq!(py("<genexpr>"), None);
        assert_eq!(py("<lambda>"), pair("pricing.py", "<lambda>"));
        assert_eq!(py("compute"), pair("pricing.py", "compute"));
        // Without a path the parser's module (the file name) stands.
        assert_eq!(
            normalize_frame(
                Language::Python,
                &Frame {
                    path: None,
                    ..f("pricing.py", "compute")
                }
            )
            .map(|k| k.module),
            Some("pricing.py".into())
        );
    }

    #[test]
    fn recursion_collapses_and_lines_do_not_matter() {
        let mut frames = Vec::new();
        for line in [10, 11, 12, 13] {
            frames.push(Frame {
                line: Some(line),
                ..f("tree.py", "walk")
            });
        }
        frames.push(f("tree.py", "main"));
        let keys = normalize_frames(Language::Python, &frames);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].function, "walk");
        // A Rust closure frame merges with its defining function.
        let frames = [f("shop::run", "{{closure}}"), f("shop", "run")];
        assert_eq!(normalize_frames(Language::Rust, &frames).len(), 1);
    }

    #[test]
    fn mutual_recursion_collapses() {
        let cycle = |depth: usize| {
            let mut frames = vec![f("parser.py", "expect")];
            for _ in 0..depth {
                frames.push(f("parser.py", "parse_expr"));
                frames.push(f("parser.py", "parse_term"));
                frames.push(f("parser.py", "parse_factor"));
            }
            frames.push(f("parser.py", "parse"));
            normalize_frames(Language::Python, &frames)
        };
        let shallow = cycle(2);
        assert_eq!(shallow.len(), 5);
        assert_eq!(shallow, cycle(40));
        // Distinct frames are never merged.
        let frames = [
            f("a.py", "x"),
            f("a.py", "y"),
            f("a.py", "z"),
            f("a.py", "x"),
        ];
        assert_eq!(normalize_frames(Language::Python, &frames).len(), 4);
    }

    #[test]
    fn hashed_frames_are_capped() {
        let frames: Vec<_> = (0..1000).map(|i| f("m.py", &format!("f{i}"))).collect();
        assert_eq!(
            normalize_frames(Language::Python, &frames).len(),
            MAX_HASHED_FRAMES
        );
    }
}
