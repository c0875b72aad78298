//! .NET `Exception.ToString()`: a `Type: message ---> Inner: message` header,
//! then `at Ns.Class.Method(args) in path:line N` frames. Inner exceptions'
//! frames come first, each closed by `--- End of inner exception stack
//! trace ---`, and the outermost exception's frames come last.

use std::sync::LazyLock;

use regex::Regex;

use super::{split_qualified, split_type_message, ChainedException, Frame};

static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*at\s+(?P<qual>.+?)\((?P<args>[^()]*)\)(?:\s+in\s+(?P<path>.+?):line\s+(?P<line>\d+))?\s*$")
        .expect(".NET frame pattern compiles")
});

static ERROR_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<ty>\S+) \(-?\d+\):").expect(".NET error code pattern compiles")
});

const END_OF_INNER: &str = "--- End of inner exception stack trace ---";
const INNER_MARKER: &str = "---> ";

pub(super) fn line_score(line: &str) -> u32 {
    let t = line.trim();
    if t.starts_with("--- End of ") {
        return 3;
    }
    match FRAME.captures(line) {
        Some(c) if c.name("path").is_some() => 4,
        // Java frames carry `File.java:N` where .NET carries typed arguments.
        Some(c)
            if !c["args"].contains(".java:")
                && !c["args"].contains(".kt:")
                && !c["args"].contains(':') =>
        {
            if c["qual"].starts_with("System.") || c["qual"].starts_with("Microsoft.") {
                2
            } else {
                1
            }
        }
        _ => 0,
    }
}

pub(super) fn parse(text: &str) -> Vec<ChainedException> {
    // Header exceptions, outermost first.
    let mut headers: Vec<ChainedException> = Vec::new();
    // Frame segments in print order: innermost exception's frames first.
    let mut segments: Vec<Vec<Frame>> = vec![Vec::new()];
    let mut seen_frame = false;

    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(caps) = FRAME.captures(line) {
            seen_frame = true;
            if let Some(segment) = segments.last_mut() {
                segment.push(frame(&caps));
            }
            continue;
        }
        if trimmed.starts_with(END_OF_INNER) {
            segments.push(Vec::new());
            continue;
        }
        if trimmed.starts_with("--- ") {
            // `--- End of stack trace from previous location ---`: an async
            // rethrow; the frames on both sides belong to one exception.
            continue;
        }
        if seen_frame {
            continue;
        }
        let inner = trimmed.starts_with(INNER_MARKER);
        let header_line = trimmed.strip_prefix(INNER_MARKER).unwrap_or(trimmed);
        // Skip a log preamble: the header starts at the first typed line.
        if headers.is_empty() && !inner {
            let first = header_line.split(" ---> ").next().unwrap_or("");
            if split_header(first).0.is_none() {
                continue;
            }
        }
        if headers.is_empty() || inner {
            for part in header_line.split(" ---> ") {
                let (type_name, message) = split_header(part);
                headers.push(ChainedException {
                    type_name,
                    message,
                    ..Default::default()
                });
            }
        }
    }
    segments.retain(|s| !s.is_empty());
    if headers.is_empty() {
        headers.push(ChainedException::default());
    }
    // Segments print innermost first and the last one always belongs to
    // the outermost exception; a trace with fewer segments than headers
    // (frames trimmed by a logger) fills from the outside in.
    let n = headers.len();
    let count = segments.len();
    for (i, frames) in segments.into_iter().enumerate() {
        let target = (count - 1 - i).min(n - 1);
        if let Some(h) = headers.get_mut(target) {
            h.frames.extend(frames);
        }
    }
    headers
}

/// `SocketException (111): msg` carries the OS error code after the type.
fn split_header(part: &str) -> (Option<String>, Option<String>) {
    let part = ERROR_CODE.replace(part, "${ty}:");
    split_type_message(&part)
}

fn frame(caps: &regex::Captures<'_>) -> Frame {
    let (class, method) = split_qualified(&caps["qual"], ".");
    let path = caps.name("path").map(|p| p.as_str().to_string());
    Frame {
        module: class.to_string(),
        function: method.to_string(),
        line: caps.name("line").and_then(|l| l.as_str().parse().ok()),
        column: None,
        in_app: false,
        path,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse_stacktrace, Language, LanguageHint};
    use crate::errors::InAppRules;

    const ASPNET: &str = r"System.InvalidOperationException: Sequence contains no elements
   at System.Linq.ThrowHelper.ThrowNoElementsException()
   at System.Linq.Enumerable.First[TSource](IEnumerable`1 source)
   at Acme.Shop.Orders.OrderService.<>c__DisplayClass5_0.<Process>b__0(Order o) in /src/Acme.Shop/Orders/OrderService.cs:line 55
   at Acme.Shop.Orders.OrderService.GetOrder(Int32 id) in /src/Acme.Shop/Orders/OrderService.cs:line 87
   at Acme.Shop.Api.OrdersController.<Get>d__3.MoveNext() in /src/Acme.Shop/Api/OrdersController.cs:line 31
--- End of stack trace from previous location ---
   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.TaskOfIActionResultExecutor.Execute(ActionContext context)
";

    const INNER: &str = r"System.Net.Http.HttpRequestException: Payment gateway call failed
 ---> System.Net.Sockets.SocketException (111): Connection refused
   at System.Net.Sockets.Socket.AwaitableSocketAsyncEventArgs.ThrowException(SocketError error, CancellationToken cancellationToken)
   at Acme.Payments.GatewayClient.ConnectAsync(Uri uri) in C:\build\Acme.Payments\GatewayClient.cs:line 40
   --- End of inner exception stack trace ---
   at Acme.Payments.GatewayClient.ChargeAsync(Decimal amount) in C:\build\Acme.Payments\GatewayClient.cs:line 72
   at Acme.Payments.CheckoutHandler.Handle(CheckoutCommand cmd) in C:\build\Acme.Payments\CheckoutHandler.cs:line 19
";

    #[test]
    fn parses_an_aspnet_trace() {
        let t = parse_stacktrace(ASPNET, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.language, Language::DotNet);
        assert_eq!(t.exceptions.len(), 1);
        let e = &t.exceptions[0];
        assert_eq!(
            e.type_name.as_deref(),
            Some("System.InvalidOperationException")
        );
        assert_eq!(e.frames.len(), 6);
        assert_eq!(e.frames[1].module, "System.Linq.Enumerable");
        assert_eq!(e.frames[1].function, "First[TSource]");
        assert!(!e.frames[1].in_app);
        assert_eq!(
            e.frames[2].module,
            "Acme.Shop.Orders.OrderService.<>c__DisplayClass5_0"
        );
        assert_eq!(e.frames[2].function, "<Process>b__0");
        assert_eq!(e.frames[3].line, Some(87));
        assert_eq!(
            e.frames[3].path.as_deref(),
            Some("/src/Acme.Shop/Orders/OrderService.cs")
        );
        assert!(e.frames[3].in_app);
        assert!(!e.frames[5].in_app);
    }

    #[test]
    fn inner_exceptions_get_their_own_frames() {
        let t = parse_stacktrace(INNER, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.exceptions.len(), 2);
        let outer = &t.exceptions[0];
        assert_eq!(
            outer.type_name.as_deref(),
            Some("System.Net.Http.HttpRequestException")
        );
        assert_eq!(
            outer
                .frames
                .iter()
                .map(|f| f.function.as_str())
                .collect::<Vec<_>>(),
            ["ChargeAsync", "Handle"]
        );
        let inner = &t.exceptions[1];
        assert_eq!(
            inner.type_name.as_deref(),
            Some("System.Net.Sockets.SocketException")
        );
        assert_eq!(inner.frames.len(), 2);
        assert_eq!(inner.frames[1].function, "ConnectAsync");
    }

    #[test]
    fn log_preamble_and_trailing_text_are_ignored() {
        let text = "fail: Microsoft.AspNetCore.Server.Kestrel[13]
      Connection id \"0HN1\", Request id \"0HN1:00000002\": An unhandled exception was thrown by the application.
System.ArgumentNullException: Value cannot be null. (Parameter 'sku')
   at Acme.Shop.Cart.Add(String sku) in /src/Cart.cs:line 14
Request finished in 3.2ms
";
        let t = parse_stacktrace(text, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.language, Language::DotNet);
        assert_eq!(t.exceptions.len(), 1);
        assert_eq!(
            t.exceptions[0].type_name.as_deref(),
            Some("System.ArgumentNullException")
        );
        assert_eq!(t.exceptions[0].frames.len(), 1);
    }

    #[test]
    fn single_line_inner_header_splits() {
        let text = "System.AggregateException: One or more errors occurred. (boom) ---> System.TimeoutException: boom
   at Acme.Jobs.Runner.Run() in /src/Runner.cs:line 9
   --- End of inner exception stack trace ---
   at Acme.Jobs.Program.Main() in /src/Program.cs:line 3
";
        let t = parse_stacktrace(text, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.exceptions.len(), 2);
        assert_eq!(
            t.exceptions[1].type_name.as_deref(),
            Some("System.TimeoutException")
        );
        assert_eq!(t.exceptions[1].frames[0].function, "Run");
        assert_eq!(t.exceptions[0].frames[0].function, "Main");
    }
}
