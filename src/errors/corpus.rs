//! A grouping corpus across all six languages: each bug is written once as
//! a template and rendered in several "releases" that move line numbers,
//! renumber lambdas and closures, change ids, addresses, symbol hashes and
//! bundle hashes, and (`deploys`) move the code on disk. Every rendering of
//! one bug must share a group and no two bugs may; pairwise precision and
//! recall are printed and must stay at or above 0.95, and no deploy-path
//! rendering may split from its bug.

use super::fingerprint::{fingerprint, ErrorSignature, Fingerprint};
use super::stacktrace::{parse_stacktrace, LanguageHint};
use super::InAppRules;

mod deploys;

struct Bug {
    label: &'static str,
    sdk: &'static str,
    message: &'static str,
    trace: &'static str,
}

/// Placeholders, each rendered differently per release:
/// `{L}` a line number, `{N}` a small counter (lambda/closure numbering),
/// `{ID}` an id, `{H}` 16 hex digits, `{A}` an address, `{B}` a bundle hash
/// (hex), `{V}` a Vite/Rollup hash (base64url), `{E}` an esbuild hash
/// (base32), `{R}` a ByteBuddy class suffix (alphanumeric).
const BUGS: &[Bug] = &[
    Bug {
        label: "py-pricing-keyerror",
        sdk: "python",
        message: "'SKU-{ID}'",
        trace: "Traceback (most recent call last):
  File \"/srv/app/.venv/lib/python3.11/site-packages/flask/app.py\", line {L}, in full_dispatch_request
  File \"/srv/app/shop/views.py\", line {L}, in checkout
  File \"/srv/app/shop/pricing.py\", line {L}, in compute_total
  File \"/srv/app/shop/pricing.py\", line {L}, in <listcomp>
KeyError: 'SKU-{ID}'
",
    },
    Bug {
        label: "py-discount-keyerror",
        sdk: "python",
        message: "'CODE{ID}'",
        trace: "Traceback (most recent call last):
  File \"/srv/app/.venv/lib/python3.11/site-packages/flask/app.py\", line {L}, in full_dispatch_request
  File \"/srv/app/shop/views.py\", line {L}, in checkout
  File \"/srv/app/shop/pricing.py\", line {L}, in apply_discount
KeyError: 'CODE{ID}'
",
    },
    Bug {
        label: "py-billing-timeout",
        sdk: "python",
        message: "HTTPSConnectionPool(host='10.0.{N}.7', port=443): Read timed out. (read timeout={N}0)",
        trace: "Traceback (most recent call last):
  File \"/app/billing/worker.py\", line {L}, in run
  File \"/app/billing/client.py\", line {L}, in fetch_invoice
  File \"/usr/local/lib/python3.12/site-packages/requests/sessions.py\", line {L}, in get
  File \"/usr/local/lib/python3.12/site-packages/requests/adapters.py\", line {L}, in send
requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='10.0.{N}.7', port=443): Read timed out.
",
    },
    Bug {
        label: "java-order-npe",
        sdk: "java",
        message: "Cannot invoke \"Order.getId()\" because \"order\" is null",
        trace: "java.lang.NullPointerException: Cannot invoke \"Order.getId()\" because \"order\" is null
\tat com.acme.shop.orders.OrderService.load(OrderService.java:{L})
\tat com.acme.shop.orders.OrderService.lambda$process${N}(OrderService.java:{L})
\tat com.acme.shop.orders.OrderService$$Lambda${ID}/0x0000{H}.apply(Unknown Source)
\tat java.base/java.util.Optional.map(Optional.java:{L})
\tat com.acme.shop.orders.OrderController.get(OrderController.kt:{L})
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{L})
",
    },
    Bug {
        label: "java-payment-npe",
        sdk: "java",
        message: "Cannot invoke \"Card.token()\" because \"card\" is null",
        trace: "java.lang.NullPointerException: Cannot invoke \"Card.token()\" because \"card\" is null
\tat com.acme.shop.payments.PaymentService.charge(PaymentService.java:{L})
\tat com.acme.shop.orders.OrderController.get(OrderController.kt:{L})
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{L})
",
    },
    Bug {
        label: "java-pool-timeout",
        sdk: "java",
        message: "Failed to load order {ID}",
        trace: "com.acme.shop.OrderLoadException: Failed to load order {ID}
\tat com.acme.shop.db.OrderRepository.find(OrderRepository.java:{L})
\tat com.acme.shop.orders.OrderService.load(OrderService.java:{L})
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{L})
Caused by: java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after {ID}ms.
\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:{L})
\tat com.acme.shop.db.OrderRepository.access$000(OrderRepository.java:{L})
\tat com.acme.shop.db.OrderRepository.find(OrderRepository.java:{L})
\t... {N} more
",
    },
    Bug {
        label: "dotnet-get-order",
        sdk: "dotnet",
        message: "Sequence contains no elements",
        trace: "System.InvalidOperationException: Sequence contains no elements
   at System.Linq.ThrowHelper.ThrowNoElementsException()
   at System.Linq.Enumerable.First[TSource](IEnumerable`1 source)
   at Acme.Shop.Orders.OrderService.<>c__DisplayClass{N}_0.<Process>b__{N}(Order o) in /src/Acme.Shop/Orders/OrderService.cs:line {L}
   at Acme.Shop.Orders.OrderService.GetOrder(Int32 id) in /src/Acme.Shop/Orders/OrderService.cs:line {L}
   at Acme.Shop.Api.OrdersController.<Get>d__{N}.MoveNext() in /src/Acme.Shop/Api/OrdersController.cs:line {L}
--- End of stack trace from previous location ---
   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.Execute(ActionContext context)
",
    },
    Bug {
        label: "dotnet-gateway-refused",
        sdk: "dotnet",
        message: "Payment gateway call failed for order {ID}",
        trace: "System.Net.Http.HttpRequestException: Payment gateway call failed for order {ID}
 ---> System.Net.Sockets.SocketException (111): Connection refused
   at System.Net.Sockets.Socket.ThrowException(SocketError error)
   at Acme.Payments.GatewayClient.ConnectAsync(Uri uri) in /build/Acme.Payments/GatewayClient.cs:line {L}
   --- End of inner exception stack trace ---
   at Acme.Payments.GatewayClient.ChargeAsync(Decimal amount) in /build/Acme.Payments/GatewayClient.cs:line {L}
   at Acme.Payments.CheckoutHandler.<Handle>d__{N}.MoveNext() in /build/Acme.Payments/CheckoutHandler.cs:line {L}
",
    },
    Bug {
        label: "node-getuser-typeerror",
        sdk: "nodejs",
        message: "Cannot read properties of undefined (reading 'email')",
        trace: "TypeError: Cannot read properties of undefined (reading 'email')
    at getUser (/srv/api/src/users/service.js:{L}:{N})
    at async Promise.all (index {N})
    at async handler (/srv/api/src/routes/users.ts:{L}:{N})
    at Layer.handle [as handle_request] (/srv/api/node_modules/express/lib/router/layer.js:{L}:{N})
    at processTicksAndRejections (node:internal/process/task_queues:{L}:{N})
",
    },
    Bug {
        label: "node-render-rangeerror",
        sdk: "nodejs",
        message: "Invalid time value",
        trace: "RangeError: Invalid time value
    at formatDate (/srv/api/src/util/dates.js:{L}:{N})
    at Object.<anonymous> (/srv/api/src/routes/users.ts:{L}:{N})
    at Layer.handle [as handle_request] (/srv/api/node_modules/express/lib/router/layer.js:{L}:{N})
",
    },
    Bug {
        label: "browser-profile-typeerror",
        sdk: "webjs",
        message: "user is undefined",
        trace: "TypeError: user is undefined
renderProfile@https://app.acme.io/static/js/main.{B}.chunk.js:1:{ID}
UserList/<@https://app.acme.io/static/js/main.{B}.chunk.js:1:{ID}
async*loadUsers@https://app.acme.io/static/js/main.{B}.chunk.js:1:{ID}
promiseReactionJob@[native code]
",
    },
    Bug {
        label: "go-load-nil",
        sdk: "go",
        message: "runtime error: invalid memory address or nil pointer dereference",
        trace: "panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x{A}]

goroutine {ID} [running]:
github.com/acme/shop/orders.(*Service).Load(0x0, {0xc000{A}, 0x24})
\t/home/ci/work/shop/orders/service.go:{L} +0x2c
github.com/acme/shop/orders.Handler.func{N}({0x7f3c40, 0xc000{A}}, 0xc0001b2100)
\t/home/ci/work/shop/orders/http.go:{L} +0x65
net/http.HandlerFunc.ServeHTTP(...)
\t/usr/local/go/src/net/http/server.go:{L}
created by net/http.(*Server).Serve in goroutine {N}
\t/usr/local/go/src/net/http/server.go:{L} +0x4b4
",
    },
    Bug {
        label: "go-index-range",
        sdk: "go",
        message: "runtime error: index out of range [{N}] with length {N}",
        trace: "panic: runtime error: index out of range [{N}] with length {N}

goroutine {ID} [running]:
github.com/acme/shop/cart.(*Cart).Item(...)
\t/home/ci/work/shop/cart/cart.go:{L}
github.com/acme/shop/orders.Handler.func{N}({0x7f3c40, 0xc000{A}}, 0xc0001b2100)
\t/home/ci/work/shop/orders/http.go:{L} +0x65
net/http.HandlerFunc.ServeHTTP(...)
\t/usr/local/go/src/net/http/server.go:{L}
",
    },
    Bug {
        label: "rust-load-unwrap",
        sdk: "rust",
        message: "called `Option::unwrap()` on a `None` value",
        trace: "thread 'tokio-runtime-worker' panicked at src/orders/service.rs:{L}:{N}:
called `Option::unwrap()` on a `None` value
stack backtrace:
   0:     0x55d0{A} - std::panicking::begin_panic_handler::h{H}
                               at /rustc/{H}/library/std/src/panicking.rs:{L}:5
   1:     0x55d0{A} - core::option::unwrap_failed::h{H}
   2:     0x55d0{A} - shop::orders::service::OrderService::load::h{H}
                               at ./src/orders/service.rs:{L}:{N}
   3:     0x55d0{A} - shop::orders::service::process::{{closure}}::h{H}
                               at ./src/orders/service.rs:{L}:{N}
   4:     0x55d0{A} - tokio::runtime::task::core::Core<T,S>::poll::h{H}
",
    },
    Bug {
        label: "rust-decode-index",
        sdk: "rust",
        message: "index out of bounds: the len is {N} but the index is {ID}",
        trace: "thread 'main' panicked at src/ingest/parse.rs:{L}:{N}:
index out of bounds: the len is {N} but the index is {ID}
stack backtrace:
   0: rust_begin_unwind
   1: core::panicking::panic_bounds_check
   2: ingest::parse::decode_batch
             at ./src/ingest/parse.rs:{L}:{N}
   3: ingest::run::{{closure}}
             at ./src/ingest/run.rs:{L}:{N}
",
    },
];

/// Replaces each `{@kind:rel}` with `rel` placed in release `r`'s layout
/// of `kind` (see [`deploys::LAYOUTS`]).
fn place(template: &str, r: u64) -> String {
    let mut out = String::with_capacity(template.len() + 128);
    let mut rest = template;
    while let Some(open) = rest.find("{@") {
        out.push_str(&rest[..open]);
        let body = &rest[open + 2..];
        let mut depth = 1usize;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let (kind, rel) = body[..end].split_once(':').unwrap_or((&body[..end], ""));
        let layouts = deploys::LAYOUTS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, l)| *l)
            .unwrap_or_else(|| panic!("no layout {kind}"));
        let layout = layouts[((r - 1) as usize) % layouts.len()];
        let rel = if layout.contains('\\') {
            rel.replace('/', "\\")
        } else {
            rel.to_string()
        };
        out.push_str(&layout.replace('$', &rel));
        rest = &body[(end + 1).min(body.len())..];
    }
    out.push_str(rest);
    out
}

/// Renders a bug as release `r`: layouts first, then every placeholder
/// occurrence gets a value that depends on the release and its position.
fn render(template: &str, r: u64) -> String {
    let template = place(template, r);
    let template = template.as_str();
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    let mut k = 0u64;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        let key = &rest[open + 1..close];
        let seed = r
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(k.wrapping_mul(0xbf58_476d_1ce4_e5b9));
        let value = match key {
            "L" => Some(format!("{}", 10 + (seed >> 7) % 900)),
            "N" => Some(format!("{}", (seed >> 11) % 9)),
            "ID" => Some(format!("{}", 100 + (seed >> 13) % 99_900)),
            "H" => Some(format!("{:016x}", seed)),
            "A" => Some(format!("{:08x}", (seed >> 17) as u32)),
            "B" => Some(format!("{:08x}", (seed >> 19) as u32)),
            "V" => Some(alphabet_hash(
                seed,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            )),
            "E" => Some(alphabet_hash(seed, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
            "R" => Some(alphabet_hash(
                seed,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            )),
            _ => None,
        };
        out.push_str(&rest[..open]);
        match value {
            Some(v) => {
                out.push_str(&v);
                rest = &rest[close + 1..];
            }
            // Not a placeholder (Rust's `{{closure}}`): copy the brace.
            None => {
                out.push('{');
                rest = &rest[open + 1..];
            }
        }
        k += 1;
    }
    out.push_str(rest);
    out
}

/// Eight characters of `alphabet` drawn from `seed`: the shape of a
/// bundler's content hash.
fn alphabet_hash(seed: u64, alphabet: &[u8]) -> String {
    let mut x = seed ^ 0x2545_f491_4f6c_dd1d;
    (0..8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

fn fingerprint_of(bug: &Bug, release: u64) -> Fingerprint {
    let text = render(bug.trace, release);
    let message = render(bug.message, release);
    let hint = LanguageHint {
        sdk_language: Some(bug.sdk),
        exception_type: None,
    };
    let trace = parse_stacktrace(&text, hint, &InAppRules::default());
    assert!(
        trace.is_some(),
        "{} release {release} did not parse:\n{text}",
        bug.label
    );
    fingerprint(&ErrorSignature {
        message: Some(&message),
        stacktrace: trace.as_ref(),
        ..Default::default()
    })
}

#[test]
fn render_varies_what_it_should() {
    let a = render("x {L} {{closure}} {H} {V}", 1);
    let b = render("x {L} {{closure}} {H} {V}", 2);
    assert_ne!(a, b);
    assert!(a.contains("{{closure}}"), "{a}");
    // One layout per release, for every file of the rendering.
    let t = "{@pyapp:shop/a.py} {@pyapp:shop/b.py} {@nodeapp:src/x.js}";
    assert_eq!(
        render(t, 1),
        "/srv/app/shop/a.py /srv/app/shop/b.py /srv/api/src/x.js"
    );
    assert_eq!(
        render(t, 7),
        r"C:\deploy\shop\shop\a.py C:\deploy\shop\shop\b.py file:///srv/api/src/x.js"
    );
    let nested = render("{@jmod:a.B$Proxy${V}.f}", 3);
    assert!(nested.starts_with("com.acme.shop@1.4."), "{nested}");
    assert!(!nested.contains('{'), "{nested}");
}

/// Pairwise counts over every two renderings.
#[derive(Default)]
struct Tally {
    tp: u32,
    fp: u32,
    fn_: u32,
    /// Same-bug pairs of deploy-path bugs, and how many of them split.
    deploy_pairs: u32,
    deploy_splits: u32,
    misses: Vec<String>,
}

/// Renders every bug in every release and compares all pairs: two
/// renderings are grouped when they share any hash a group is found by.
fn evaluate(releases: u64) -> Tally {
    let mut events: Vec<(&str, bool, Fingerprint)> = Vec::new();
    let all = BUGS
        .iter()
        .map(|b| (b, false))
        .chain(deploys::BUGS.iter().map(|b| (b, true)));
    for (bug, deploy) in all {
        for release in 1..=releases {
            events.push((bug.label, deploy, fingerprint_of(bug, release)));
        }
    }
    let joins = |a: &Fingerprint, b: &Fingerprint| a.hashes().any(|h| b.hashes().any(|g| g == h));
    let mut t = Tally::default();
    for i in 0..events.len() {
        for j in i + 1..events.len() {
            let (a, b) = (&events[i], &events[j]);
            let same_bug = a.0 == b.0;
            let grouped = joins(&a.2, &b.2);
            if same_bug && a.1 {
                t.deploy_pairs += 1;
                t.deploy_splits += u32::from(!grouped);
            }
            match (same_bug, grouped) {
                (true, true) => t.tp += 1,
                (false, true) => {
                    t.fp += 1;
                    t.misses.push(format!("merged {} with {}", a.0, b.0));
                }
                (true, false) => {
                    t.fn_ += 1;
                    t.misses.push(format!(
                        "split {} (releases {} and {}): {:?} vs {:?}",
                        a.0,
                        i % releases as usize + 1,
                        j % releases as usize + 1,
                        a.2.components,
                        b.2.components
                    ));
                }
                (false, false) => {}
            }
        }
    }
    t
}

#[test]
fn grouping_precision_and_recall() {
    // Enough releases that every deploy layout is used.
    let releases = deploys::LAYOUTS
        .iter()
        .map(|(_, l)| l.len() as u64)
        .max()
        .unwrap_or(4);
    let t = evaluate(releases);
    let precision = f64::from(t.tp) / f64::from((t.tp + t.fp).max(1));
    let recall = f64::from(t.tp) / f64::from((t.tp + t.fn_).max(1));
    let split_rate = f64::from(t.deploy_splits) / f64::from(t.deploy_pairs.max(1));
    println!(
        "grouping corpus: {} bugs x {releases} releases, precision {precision:.3}, recall {recall:.3}, \
         deploy-path split rate {split_rate:.3} ({} of {} pairs)",
        BUGS.len() + deploys::BUGS.len(),
        t.deploy_splits,
        t.deploy_pairs
    );
    for m in t.misses.iter().take(20) {
        println!("  {m}");
    }
    assert!(
        precision >= 0.95 && recall >= 0.95,
        "precision {precision:.3} recall {recall:.3}: {:#?}",
        t.misses
    );
    // The corpus is small enough that anything short of perfect is a bug.
    assert!(t.misses.is_empty(), "{:#?}", t.misses);
}
