//! Python tracebacks: `File "...", line N, in fn` pairs printed oldest call
//! first, chained tracebacks printed cause first, the exception line last.
//! Exception groups (3.11+, `asyncio.TaskGroup`) draw each sub-exception's
//! traceback in a box; each box is read as an ordinary traceback.

use std::sync::LazyLock;

use regex::Regex;

use super::{basename, split_type_message, ChainedException, Frame};

static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*File "(?P<path>[^"]*)", line (?P<line>\d+)(?:, in (?P<func>.+?))?\s*$"#)
        .expect("python frame pattern compiles")
});

const HEADER: &str = "Traceback (most recent call last):";
const CHAIN_MARKERS: [&str; 2] = [
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
];

pub(super) fn line_score(line: &str) -> u32 {
    let t = group_line(line).map_or("", |(_, t)| t).trim_start();
    if t.ends_with(HEADER) {
        10
    } else if t.starts_with("File \"") && t.contains("\", line ") {
        3
    } else {
        0
    }
}

pub(super) fn parse(text: &str) -> Vec<ChainedException> {
    if !text.contains(GROUP_HEADER) {
        return parse_plain(text.lines());
    }
    // The group prints first, then each sub-exception in its own box; boxes
    // nest by indentation. Reported order is print order here.
    let mut out = Vec::new();
    let mut segment: Vec<&str> = Vec::new();
    let mut depth = None;
    for line in text.lines() {
        match group_line(line) {
            Some((d, content)) if depth == Some(d) || depth.is_none() => {
                depth = Some(d);
                segment.push(content);
            }
            other => {
                out.extend(parse_plain(segment.drain(..)));
                depth = other.map(|(d, _)| d);
                segment.extend(other.map(|(_, content)| content));
            }
        }
    }
    out.extend(parse_plain(segment.drain(..)));
    out
}

const GROUP_HEADER: &str = "Exception Group Traceback (most recent call last):";

/// Strips an exception-group box prefix (`  | `, `  + `) and says how deep
/// the box is. `None` for the box's horizontal rules (`+-+---- 1 ----`).
fn group_line(line: &str) -> Option<(usize, &str)> {
    let body = line.trim_start();
    let indent = line.len() - body.len();
    if body.starts_with('+') && body.contains("----") {
        return None;
    }
    match body.strip_prefix('|').or_else(|| body.strip_prefix("+ ")) {
        Some(rest) => Some((indent + 1, rest.strip_prefix(' ').unwrap_or(rest))),
        None => Some((0, line)),
    }
}

fn parse_plain<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<ChainedException> {
    // Blocks in print order: causes first, the reported exception last.
    let mut blocks: Vec<ChainedException> = Vec::new();
    let mut current: Option<ChainedException> = None;
    let mut awaiting_exception_line = false;

    for line in lines {
        let trimmed = line.trim();
        // `Traceback (…):` and `Exception Group Traceback (…):` both open one.
        let header = trimmed.ends_with(HEADER);
        if header || CHAIN_MARKERS.contains(&trimmed) {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
            if header {
                current = Some(ChainedException::default());
                awaiting_exception_line = true;
            }
            continue;
        }
        if let Some(caps) = FRAME.captures(line) {
            let block = current.get_or_insert_with(ChainedException::default);
            awaiting_exception_line = true;
            let path = &caps["path"];
            block.frames.push(Frame {
                module: basename(path).to_string(),
                function: caps.name("func").map_or("", |m| m.as_str()).to_string(),
                path: Some(path.to_string()),
                line: caps["line"].parse().ok(),
                column: None,
                in_app: false,
            });
            continue;
        }
        // Source lines, caret markers and notes are indented; the exception
        // line starts at column 0 once the frames are done.
        let at_column_zero = !line.starts_with([' ', '\t']);
        if awaiting_exception_line && at_column_zero && !trimmed.is_empty() {
            if let Some(block) = current.as_mut() {
                let (ty, msg) = split_type_message(trimmed);
                block.type_name = ty;
                block.message = msg;
            }
            awaiting_exception_line = false;
        }
    }
    if let Some(block) = current.take() {
        blocks.push(block);
    }
    blocks.retain(|b| !b.frames.is_empty() || b.type_name.is_some());
    for block in &mut blocks {
        block.frames.reverse();
    }
    blocks.reverse();
    blocks
}

#[cfg(test)]
mod tests {
    use super::super::{parse_stacktrace, Language, LanguageHint};
    use crate::errors::InAppRules;

    pub(crate) const DJANGO_KEYERROR: &str = r#"Traceback (most recent call last):
  File "/srv/shop/.venv/lib/python3.11/site-packages/django/core/handlers/exception.py", line 55, in inner
    response = get_response(request)
               ^^^^^^^^^^^^^^^^^^^^^
  File "/srv/shop/.venv/lib/python3.11/site-packages/django/core/handlers/base.py", line 197, in _get_response
    response = wrapped_callback(request, *callback_args, **callback_kwargs)
  File "/srv/shop/orders/views.py", line 88, in checkout
    total = pricing.compute_total(cart)
  File "/srv/shop/orders/pricing.py", line 41, in compute_total
    return sum(rates[item.sku] * item.qty for item in cart.items)
  File "/srv/shop/orders/pricing.py", line 41, in <genexpr>
    return sum(rates[item.sku] * item.qty for item in cart.items)
                ~~~~~^^^^^^^^^^
KeyError: 'SKU-20931'
"#;

    const CHAINED: &str = r#"Traceback (most recent call last):
  File "/app/billing/client.py", line 23, in fetch_invoice
    resp = self.session.get(url, timeout=5)
  File "/usr/local/lib/python3.12/site-packages/requests/sessions.py", line 602, in get
    return self.request("GET", url, **kwargs)
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='billing.internal', port=443): Max retries exceeded

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/app/billing/worker.py", line 61, in run
    invoice = client.fetch_invoice(job.invoice_id)
  File "/app/billing/client.py", line 27, in fetch_invoice
    raise BillingUnavailable(f"invoice {invoice_id} unavailable") from exc
billing.errors.BillingUnavailable: invoice 99812 unavailable
"#;

    #[test]
    fn detects_and_parses_a_django_traceback() {
        let t = parse_stacktrace(
            DJANGO_KEYERROR,
            LanguageHint::default(),
            &InAppRules::default(),
        )
        .expect("parses");
        assert_eq!(t.language, Language::Python);
        assert_eq!(t.exceptions.len(), 1);
        let e = &t.exceptions[0];
        assert_eq!(e.type_name.as_deref(), Some("KeyError"));
        assert_eq!(e.message.as_deref(), Some("'SKU-20931'"));
        let names: Vec<_> = e
            .frames
            .iter()
            .map(|f| (f.module.as_str(), f.function.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("pricing.py", "<genexpr>"),
                ("pricing.py", "compute_total"),
                ("views.py", "checkout"),
                ("base.py", "_get_response"),
                ("exception.py", "inner"),
            ]
        );
        assert_eq!(e.frames[1].line, Some(41));
        let in_app: Vec<_> = e.frames.iter().map(|f| f.in_app).collect();
        assert_eq!(in_app, [true, true, true, false, false]);
        assert_eq!(t.culprit().map(|f| f.function.as_str()), Some("<genexpr>"));
    }

    const TASK_GROUP: &str = r#"  + Exception Group Traceback (most recent call last):
  |   File "/app/sync/main.py", line 31, in run
  |     async with asyncio.TaskGroup() as tg:
  |   File "/usr/lib/python3.12/asyncio/taskgroups.py", line 145, in __aexit__
  |     raise me from None
  | ExceptionGroup: unhandled errors in a TaskGroup (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/app/sync/fetch.py", line 12, in fetch_user
    |     raise LookupError(f"user {uid} not found")
    | LookupError: user 42 not found
    +---------------- 2 ----------------
    | Traceback (most recent call last):
    |   File "/app/sync/fetch.py", line 20, in fetch_orders
    |     resp.raise_for_status()
    |   File "/app/.venv/lib/python3.12/site-packages/httpx/_models.py", line 761, in raise_for_status
    |     raise HTTPStatusError(message, request=request, response=self)
    | httpx.HTTPStatusError: Server error '503 Service Unavailable'
    +------------------------------------
"#;

    #[test]
    fn exception_groups_read_each_box() {
        let t = parse_stacktrace(TASK_GROUP, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.language, Language::Python);
        let types: Vec<_> = t
            .exceptions
            .iter()
            .map(|e| e.type_name.as_deref())
            .collect();
        assert_eq!(
            types,
            [
                Some("ExceptionGroup"),
                Some("LookupError"),
                Some("httpx.HTTPStatusError")
            ]
        );
        assert_eq!(t.exceptions[0].frames[1].function, "run");
        assert_eq!(t.exceptions[1].frames[0].function, "fetch_user");
        assert_eq!(
            t.exceptions[1].message.as_deref(),
            Some("user 42 not found")
        );
        assert_eq!(t.exceptions[2].frames[1].function, "fetch_orders");
        assert!(!t.exceptions[2].frames[0].in_app);
    }

    #[test]
    fn chained_tracebacks_put_the_reported_exception_first() {
        let t = parse_stacktrace(CHAINED, LanguageHint::default(), &InAppRules::default())
            .expect("parses");
        assert_eq!(t.exceptions.len(), 2);
        assert_eq!(
            t.exceptions[0].type_name.as_deref(),
            Some("billing.errors.BillingUnavailable")
        );
        assert_eq!(
            t.exceptions[0].message.as_deref(),
            Some("invoice 99812 unavailable")
        );
        assert_eq!(t.exceptions[0].frames[0].function, "fetch_invoice");
        let frozen = t.exceptions[0].frames.last().expect("frames");
        assert_eq!(frozen.module, "<frozen runpy>");
        assert!(!frozen.in_app);
        assert_eq!(
            t.exceptions[1].type_name.as_deref(),
            Some("requests.exceptions.ConnectionError")
        );
        assert!(
            !t.exceptions[1].frames[0].in_app,
            "site-packages is a dependency"
        );
    }
}
