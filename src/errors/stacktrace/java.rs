//! JVM stack traces (Java, Kotlin, Scala): `at pkg.Class.method(File.java:N)`
//! under a `Type: message` header, with `Caused by:` chains whose shared tail
//! is elided as `... N more`. `Suppressed:` blocks are skipped: they describe
//! cleanup failures, not the error being grouped.

use std::sync::LazyLock;

use regex::Regex;

use super::{split_qualified, split_type_message, ChainedException, Frame};

static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    // Logback and Log4j append packaging data like ` ~[app.jar:1.2]`.
    Regex::new(r"^(?P<indent>\s*)at\s+(?P<qual>[^\s(]+)\((?P<loc>[^)]*)\)(?:\s+[~\[].*)?\s*$")
        .expect("java frame pattern compiles")
});
static MORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*\.\.\. (?P<n>\d+) (?:more|common frames omitted)\s*$")
        .expect("java more pattern compiles")
});
static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<file>[^:]+\.(?:java|kt|kts|scala|groovy|clj)):(?P<line>\d+)$")
        .expect("java location pattern compiles")
});

pub(super) fn line_score(line: &str) -> u32 {
    let t = line.trim_start();
    if t.starts_with("Caused by: ") {
        return 2;
    }
    if MORE.is_match(line) {
        return 2;
    }
    if let Some(caps) = FRAME.captures(line) {
        let loc = &caps["loc"];
        if LOCATION.is_match(loc) || loc == "Native Method" || loc == "Unknown Source" {
            return 3;
        }
    }
    0
}

pub(super) fn parse(text: &str) -> Vec<ChainedException> {
    let mut chain: Vec<ChainedException> = Vec::new();
    let mut suppressed_indent: Option<usize> = None;
    let mut untyped_header: Option<String> = None;

    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(level) = suppressed_indent {
            if indent > level {
                continue;
            }
            suppressed_indent = None;
        }
        if trimmed.starts_with("Suppressed: ") {
            suppressed_indent = Some(indent);
            continue;
        }
        if let Some(caps) = FRAME.captures(line) {
            if chain.is_empty() {
                chain.push(ChainedException {
                    message: untyped_header.take(),
                    ..Default::default()
                });
            }
            if let Some(current) = chain.last_mut() {
                current.frames.push(frame(&caps["qual"], &caps["loc"]));
            }
            continue;
        }
        if let Some(caps) = MORE.captures(line) {
            if let Some(current) = chain.last_mut() {
                current.omitted = caps["n"].parse().unwrap_or(0);
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("Caused by: ") {
            let (type_name, message) = split_type_message(rest);
            chain.push(ChainedException {
                type_name,
                message,
                ..Default::default()
            });
            continue;
        }
        // The header is the first line that reads as `Type: message`, so a
        // log preamble above it is skipped; later lines continue the message.
        if chain.is_empty() {
            let header = strip_thread_prefix(trimmed);
            match split_type_message(header) {
                (Some(type_name), message) => chain.push(ChainedException {
                    type_name: Some(type_name),
                    message,
                    ..Default::default()
                }),
                (None, message) => {
                    if untyped_header.is_none() {
                        untyped_header = message;
                    }
                }
            }
        }
    }
    chain
}

/// `Exception in thread "main" java.lang.X: msg` → `java.lang.X: msg`.
fn strip_thread_prefix(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix("Exception in thread \"") {
        if let Some(end) = rest.find("\" ") {
            return &rest[end + 2..];
        }
    }
    line
}

fn frame(qualified: &str, location: &str) -> Frame {
    let qualified = strip_module_prefix(qualified);
    let (class, method) = split_qualified(qualified, ".");
    let (path, line) = match LOCATION.captures(location) {
        Some(c) => (Some(c["file"].to_string()), c["line"].parse().ok()),
        None => (None, None),
    };
    Frame {
        module: class.to_string(),
        function: method.to_string(),
        path,
        line,
        column: None,
        in_app: false,
    }
}

/// Drops the JDK 9+ class-loader and module prefixes (`java.base/`,
/// `app//`, `java.base@17.0.2/`, `loader/shop@1.4.2/`) but not the `/0x…`
/// of a hidden lambda class.
fn strip_module_prefix(mut qualified: &str) -> &str {
    while let Some(i) = qualified.find('/') {
        if qualified[..i].contains('$') {
            break;
        }
        qualified = &qualified[i + 1..];
    }
    qualified
}

#[cfg(test)]
mod tests {
    use super::super::{parse_stacktrace, Language, LanguageHint};
    use super::strip_module_prefix;
    use crate::errors::InAppRules;

    const SPRING: &str = "Exception in thread \"http-nio-8080-exec-3\" java.lang.IllegalStateException: Order 4821 not found
\tat com.acme.shop.orders.OrderService.load(OrderService.java:87)
\tat com.acme.shop.orders.OrderService.lambda$process$0(OrderService.java:55)
\tat java.base/java.util.Optional.orElseThrow(Optional.java:403)
\tat com.acme.shop.orders.OrderService$$Lambda$1214/0x0000000801a3c8f0.apply(Unknown Source)
\tat com.acme.shop.orders.OrderController.get(OrderController.kt:31)
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883) ~[spring-webmvc-6.1.3.jar:6.1.3]
\tat jdk.internal.reflect.GeneratedMethodAccessor42.invoke(Unknown Source)
\tSuppressed: java.io.IOException: close failed
\t\tat com.acme.shop.io.Stream.close(Stream.java:12)
\t\t... 4 more
Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30004ms.
\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)
\tat com.acme.shop.db.OrderRepository.access$000(OrderRepository.java:19)
\tat com.acme.shop.db.OrderRepository.find(OrderRepository.java:44)
\t... 6 more
";

    #[test]
    fn parses_a_spring_trace_with_cause_and_suppressed() {
        let t = parse_stacktrace(SPRING, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.language, Language::Java);
        assert_eq!(t.exceptions.len(), 2, "suppressed blocks are not causes");
        let top = &t.exceptions[0];
        assert_eq!(
            top.type_name.as_deref(),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(top.message.as_deref(), Some("Order 4821 not found"));
        assert_eq!(top.frames.len(), 7);
        assert_eq!(top.frames[0].module, "com.acme.shop.orders.OrderService");
        assert_eq!(top.frames[0].function, "load");
        assert_eq!(top.frames[0].path.as_deref(), Some("OrderService.java"));
        assert_eq!(top.frames[0].line, Some(87));
        assert_eq!(top.frames[2].module, "java.util.Optional");
        assert!(!top.frames[2].in_app);
        assert_eq!(
            top.frames[3].module,
            "com.acme.shop.orders.OrderService$$Lambda$1214/0x0000000801a3c8f0"
        );
        assert_eq!(top.frames[4].path.as_deref(), Some("OrderController.kt"));
        assert!(!top.frames[5].in_app, "spring is a dependency");
        let cause = &t.exceptions[1];
        assert_eq!(
            cause.type_name.as_deref(),
            Some("java.sql.SQLTransientConnectionException")
        );
        assert_eq!(cause.omitted, 6);
        assert_eq!(cause.frames[2].function, "find");
        assert!(cause.frames[2].in_app);
    }

    #[test]
    fn log_preamble_is_not_the_header() {
        let text = "2024-05-01 12:00:01.123 ERROR [main] c.a.Worker - job failed
com.acme.jobs.JobFailed: job 17 failed
\tat com.acme.jobs.Worker.run(Worker.java:40)
";
        let t = parse_stacktrace(text, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(
            t.exceptions[0].type_name.as_deref(),
            Some("com.acme.jobs.JobFailed")
        );
        let bare = "something broke\n\tat com.acme.jobs.Worker.run(Worker.java:40)\n";
        let t = parse_stacktrace(bare, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.exceptions[0].type_name, None);
        assert_eq!(t.exceptions[0].message.as_deref(), Some("something broke"));
    }

    #[test]
    fn module_prefixes_are_dropped_but_lambda_addresses_kept() {
        assert_eq!(
            strip_module_prefix("java.base/java.util.Optional.get"),
            "java.util.Optional.get"
        );
        assert_eq!(
            strip_module_prefix("app//com.acme.Main.main"),
            "com.acme.Main.main"
        );
        assert_eq!(
            strip_module_prefix("A$$Lambda/0x1.apply"),
            "A$$Lambda/0x1.apply"
        );
        assert_eq!(
            strip_module_prefix("loader/shop@1.4.2/com.acme.Main.main"),
            "com.acme.Main.main"
        );
        assert_eq!(
            strip_module_prefix("app//com.acme.A$$Lambda/0x1.apply"),
            "com.acme.A$$Lambda/0x1.apply"
        );
    }

    #[test]
    fn kotlin_coroutine_trace_is_read_as_jvm() {
        let kt = "kotlinx.coroutines.TimeoutCancellationException: Timed out waiting for 5000 ms
\tat kotlinx.coroutines.TimeoutKt.TimeoutCancellationException(Timeout.kt:184)
\tat com.acme.sync.Syncer$pull$2.invokeSuspend(Syncer.kt:77)
\tat kotlin.coroutines.jvm.internal.BaseContinuationImpl.resumeWith(ContinuationImpl.kt:33)
";
        let t =
            parse_stacktrace(kt, LanguageHint::default(), &InAppRules::default()).expect("parses");
        assert_eq!(t.language, Language::Java);
        let f = &t.exceptions[0].frames[1];
        assert_eq!(
            (f.module.as_str(), f.function.as_str(), f.in_app),
            ("com.acme.sync.Syncer$pull$2", "invokeSuspend", true)
        );
    }
}
