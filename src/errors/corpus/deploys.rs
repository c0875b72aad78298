//! Deploy-path cases for the grouping corpus: the same bug as each runtime
//! prints it after the code moved on disk. Release directories, deploy
//! roots, virtualenvs and package-manager stores, container layers, bundle
//! and proxy hashes, module versions: none of that is the bug. Beside them,
//! near-miss bugs that share all of that but fail in other code, which must
//! stay apart.
//!
//! `{@kind:rel}` places `rel` under the deploy layout `kind` of the
//! release: release `r` uses layout `r - 1` modulo how many there are, so
//! every frame of one rendering comes from one consistent deploy. A layout
//! with backslashes turns `rel`'s slashes into backslashes.

use super::Bug;

/// Where each runtime's files end up, one layout per deploy. `$` stands for
/// the file's path inside it. The ordinary placeholders (`{H}`, `{N}`…)
/// still vary per release inside a layout.
pub(super) const LAYOUTS: &[(&str, &[&str])] = &[
    // Python application code.
    (
        "pyapp",
        &[
            "/srv/app/$",
            "/app/$",
            "/home/deploy/shop/releases/20241203141233/$",
            "/srv/releases/20241203-1412/$",
            "/var/lib/docker/overlay2/{H}{H}{H}{H}/diff/app/$",
            "/opt/shop-1.4.{N}/$",
            r"C:\deploy\shop\$",
        ],
    ),
    // Third-party Python packages.
    (
        "pylib",
        &[
            "/srv/app/.venv/lib/python3.11/site-packages/$",
            "/usr/local/lib/python3.12/site-packages/$",
            "/home/deploy/.cache/pypoetry/virtualenvs/shop-Xk3nR2_p-py3.11/lib/python3.11/site-packages/$",
            "/opt/conda/envs/shop/lib/python3.11/site-packages/$",
            "/root/.pyenv/versions/3.11.{N}/lib/python3.11/site-packages/$",
            "/usr/lib/python3/dist-packages/$",
            r"C:\Python311\Lib\site-packages\$",
        ],
    ),
    // The Python standard library.
    (
        "pystd",
        &[
            "/usr/lib/python3.11/$",
            "/usr/local/lib/python3.12/$",
            "/nix/store/{H}{H}-python3-3.11.{N}/lib/python3.11/$",
            "/opt/conda/lib/python3.11/$",
            "/root/.pyenv/versions/3.11.{N}/lib/python3.11/$",
            "/usr/lib/python3.12/$",
            r"C:\Python311\Lib\$",
        ],
    ),
    // Node.js application code.
    (
        "nodeapp",
        &[
            "/srv/api/$",
            "/app/$",
            "/usr/src/app/$",
            "/home/deploy/api/releases/20241203141233/$",
            "/var/task/$",
            r"C:\inetpub\wwwroot\api\$",
            "file:///srv/api/$",
        ],
    ),
    // npm packages, as npm, pnpm and Yarn (PnP cache, unplugged) lay them out.
    (
        "nodemod",
        &[
            "/srv/api/node_modules/$",
            "/app/node_modules/.pnpm/express@4.18.{N}/node_modules/$",
            "/home/deploy/api/.yarn/cache/express-npm-4.18.{N}-{A}-{A}.zip/node_modules/$",
            "/var/task/node_modules/$",
            r"C:\inetpub\wwwroot\api\node_modules\$",
            "/usr/src/app/node_modules/$",
            "/app/.yarn/unplugged/express-npm-4.18.{N}-{A}/node_modules/$",
        ],
    ),
    // Browser bundles: `$` is the entry name; webpack (hex), Vite and
    // Rollup (base64url), esbuild (base32), Next.js build folders.
    (
        "bundle",
        &[
            "https://shop.acme.io/static/js/$.{B}.chunk.js",
            "https://shop.acme.io/assets/$-{V}.js",
            "https://shop.acme.io/assets/$-{E}.js",
            "https://cdn.acme.io/shop/1.4.{N}/assets/$-{V}.js",
            "https://shop.acme.io/_next/static/chunks/$-{B}{B}.js",
            "https://shop.acme.io/assets/$.{B}.js",
            "https://shop.acme.io/assets/$-{V}.mjs",
        ],
    ),
    // Webpack's numbered lazy chunks: the number moves when modules do.
    (
        "chunk",
        &[
            "https://shop.acme.io/_next/static/chunks/{ID}-{B}.js",
            "https://shop.acme.io/static/js/{ID}.{B}.chunk.js",
            "https://shop.acme.io/static/js/{ID}.{B}.js",
            "https://shop.acme.io/_next/static/chunks/{ID}.{B}{B}.js",
        ],
    ),
    // Next.js server output: the chunk number moves with every build.
    (
        "nextchunk",
        &[
            "/app/.next/server/chunks/{ID}.js",
            "/srv/web/.next/server/chunks/{ID}.js",
            "/var/task/.next/server/chunks/{ID}.js",
        ],
    ),
    // JVM frames: module and class-loader prefixes, packaging suffixes.
    (
        "jmod",
        &[
            "$",
            "app//$",
            "com.acme.shop@1.4.{N}/$",
            "shop-loader/com.acme.shop@1.4.{N}/$",
        ],
    ),
    (
        "jar",
        &[
            "",
            " ~[shop-1.4.{N}.jar:1.4.{N}]",
            " ~[classes!/:1.4.{N}]",
            " [shop.jar:na]",
            " ~[?:?]",
        ],
    ),
    // .NET source paths as the PDB recorded them on each build machine.
    (
        "netsrc",
        &[
            "/src/Acme.Shop/$",
            "/app/$",
            r"C:\agent\_work\{N}\s\src\Acme.Shop\$",
            "/home/vsts/work/{N}/s/src/Acme.Shop/$",
            r"D:\a\shop\shop\src\Acme.Shop\$",
            "/app/bin/Release/net8.0/$",
        ],
    ),
    // Go: the application's files (GOPATH, CI workspace, -trimpath).
    (
        "goapp",
        &[
            "/home/ci/work/shop/$",
            "/go/src/github.com/acme/shop/$",
            "github.com/acme/shop/$",
            "/build/$",
            "/src/$",
        ],
    ),
    // lib/pq in the module cache, with -trimpath, and vendored.
    (
        "gopq",
        &[
            "/root/go/pkg/mod/github.com/lib/pq@v1.10.{N}/$",
            "/home/ci/go/pkg/mod/github.com/lib/pq@v1.10.{N}/$",
            "github.com/lib/pq@v1.10.{N}/$",
            "/go/pkg/mod/github.com/lib/pq@v1.10.{N}/$",
            "/build/vendor/github.com/lib/pq/$",
        ],
    ),
    // GOROOT per toolchain install, and -trimpath's bare paths.
    (
        "goroot",
        &[
            "/usr/local/go/src/$",
            "/opt/hostedtoolcache/go/1.22.{N}/x64/src/$",
            "$",
            "/nix/store/{H}{H}-go-1.22.{N}/share/go/src/$",
            "/home/ci/sdk/go1.22.{N}/src/$",
        ],
    ),
    // Cargo's registry wherever CARGO_HOME is, and `cargo vendor`.
    (
        "cargo",
        &[
            "/root/.cargo/registry/src/index.crates.io-6f17d22bba15001f/$",
            "/usr/local/cargo/registry/src/index.crates.io-6f17d22bba15001f/$",
            "/home/runner/.cargo/registry/src/github.com-1ecc6299db9ec823/$",
            "/build/vendor/$",
            r"C:\Users\ci\.cargo\registry\src\index.crates.io-6f17d22bba15001f\$",
            "/cargo/registry/src/index.crates.io-6f17d22bba15001f/$",
        ],
    ),
    (
        "rustapp",
        &[
            "./src/$",
            "/build/shop/src/$",
            "/home/runner/work/shop/shop/src/$",
            "src/$",
            "/usr/src/shop/src/$",
        ],
    ),
    // What a dependency upgrade that came with the move renamed inside
    // the library (the application's code is unchanged).
    (
        "actixfn",
        &[
            "actix_web::handler::handler_service::{{closure}}::{{closure}}",
            "<actix_web::handler::HandlerServiceFuture<F,T,R> as core::future::future::Future>::poll",
        ],
    ),
    (
        "pqfn",
        &["(*conn).query", "(*conn).simpleQuery", "(*conn).sendSimpleMessage"],
    ),
];

pub(super) const BUGS: &[Bug] = &[
    Bug {
        label: "py-deploy-refund",
        sdk: "python",
        message: "refund amount {ID} exceeds charge",
        trace: "Traceback (most recent call last):
  File \"{@pylib:gunicorn/workers/sync.py}\", line {L}, in handle_request
  File \"{@pylib:flask/app.py}\", line {L}, in wsgi_app
  File \"{@pylib:flask/app.py}\", line {L}, in full_dispatch_request
  File \"{@pyapp:shop/refunds/views.py}\", line {L}, in create_refund
  File \"{@pyapp:shop/refunds/service.py}\", line {L}, in refund
  File \"{@pystd:decimal.py}\", line {L}, in __new__
ValueError: refund amount {ID} exceeds charge
",
    },
    Bug {
        label: "py-deploy-worker",
        sdk: "python",
        message: "'NoneType' object has no attribute 'email'",
        trace: "Traceback (most recent call last):
  File \"{@pystd:concurrent/futures/thread.py}\", line {L}, in run
  File \"{@pylib:celery/app/trace.py}\", line {L}, in __protected_call__
  File \"{@pyapp:shop/tasks/mail.py}\", line {L}, in send_receipt
  File \"{@pyapp:shop/mail/render.py}\", line {L}, in render_receipt
AttributeError: 'NoneType' object has no attribute 'email'
",
    },
    // Two application factories fail alike: same file name, same
    // function, different packages.
    Bug {
        label: "py-init-shop",
        sdk: "python",
        message: "'DATABASE_URL'",
        trace: "Traceback (most recent call last):
  File \"{@pyapp:manage.py}\", line {L}, in main
  File \"{@pyapp:shop/__init__.py}\", line {L}, in create_app
  File \"{@pystd:os.py}\", line {L}, in __getitem__
KeyError: 'DATABASE_URL'
",
    },
    Bug {
        label: "py-init-billing",
        sdk: "python",
        message: "'DATABASE_URL'",
        trace: "Traceback (most recent call last):
  File \"{@pyapp:manage.py}\", line {L}, in main
  File \"{@pyapp:billing/__init__.py}\", line {L}, in create_app
  File \"{@pystd:os.py}\", line {L}, in __getitem__
KeyError: 'DATABASE_URL'
",
    },
    Bug {
        label: "node-deploy-total",
        sdk: "nodejs",
        message: "Cannot read properties of null (reading 'items')",
        trace: "TypeError: Cannot read properties of null (reading 'items')
    at calculateTotal ({@nodeapp:src/orders/total.js}:{L}:{N})
    at OrderController.create ({@nodeapp:src/orders/controller.js}:{L}:{N})
    at Layer.handle [as handle_request] ({@nodemod:express/lib/router/layer.js}:{L}:{N})
    at next ({@nodemod:express/lib/router/route.js}:{L}:{N})
    at process.processTicksAndRejections (node:internal/process/task_queues:{L}:{N})
",
    },
    // Route modules named `index.js` in different folders.
    Bug {
        label: "node-index-users",
        sdk: "nodejs",
        message: "Cannot read properties of undefined (reading 'id')",
        trace: "TypeError: Cannot read properties of undefined (reading 'id')
    at handler ({@nodeapp:src/users/index.js}:{L}:{N})
    at Layer.handle [as handle_request] ({@nodemod:express/lib/router/layer.js}:{L}:{N})
",
    },
    Bug {
        label: "node-index-orders",
        sdk: "nodejs",
        message: "Cannot read properties of undefined (reading 'id')",
        trace: "TypeError: Cannot read properties of undefined (reading 'id')
    at handler ({@nodeapp:src/orders/index.js}:{L}:{N})
    at Layer.handle [as handle_request] ({@nodemod:express/lib/router/layer.js}:{L}:{N})
",
    },
    Bug {
        label: "next-server-products",
        sdk: "nodejs",
        message: "fetch failed",
        trace: "TypeError: fetch failed
    at node:internal/deps/undici/undici:{L}:{N}
    at async loadProducts ({@nextchunk:}:1:{ID})
    at async ProductsPage ({@nodeapp:.next/server/app/products/page.js}:1:{ID})
",
    },
    Bug {
        label: "browser-deploy-cart",
        sdk: "webjs",
        message: "Cannot read properties of undefined (reading 'price')",
        trace: "TypeError: Cannot read properties of undefined (reading 'price')
    at renderCart ({@bundle:index}:1:{ID})
    at updateCart ({@bundle:index}:1:{ID})
    at HTMLButtonElement.onClick ({@bundle:vendor}:1:{ID})
",
    },
    Bug {
        label: "browser-chunk-orders",
        sdk: "webjs",
        message: "orders.map is not a function",
        trace: "TypeError: orders.map is not a function
OrderList@{@chunk:}:1:{ID}
renderWithHooks@{@bundle:vendor}:1:{ID}
",
    },
    Bug {
        label: "browser-chunk-invoices",
        sdk: "webjs",
        message: "invoices.map is not a function",
        trace: "TypeError: invoices.map is not a function
InvoiceList@{@chunk:}:1:{ID}
renderWithHooks@{@bundle:vendor}:1:{ID}
",
    },
    Bug {
        label: "java-deploy-proxies",
        sdk: "java",
        message: "Customer {ID} has no billing address",
        trace: "java.lang.IllegalStateException: Customer {ID} has no billing address
\tat {@jmod:com.acme.shop.billing.InvoiceService.issue}(InvoiceService.java:{L}){@jar:}
\tat {@jmod:com.acme.shop.customers.Customer$HibernateProxy${R}.getBillingAddress}(Unknown Source){@jar:}
\tat {@jmod:com.acme.shop.billing.InvoiceService$$SpringCGLIB$${N}.issue}(<generated>){@jar:}
\tat jdk.proxy{N}/jdk.proxy{N}.$Proxy{ID}.issue(Unknown Source)
\tat {@jmod:com.acme.shop.orders.OrderController.checkout}(OrderController.java:{L}){@jar:}
\tat org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:{L}) ~[spring-web-6.1.{N}.jar:6.1.{N}]
",
    },
    Bug {
        label: "java-deploy-refund",
        sdk: "java",
        message: "Refund {ID} exceeds the charge",
        trace: "java.lang.IllegalArgumentException: Refund {ID} exceeds the charge
\tat {@jmod:com.acme.shop.billing.RefundService.refund}(RefundService.java:{L}){@jar:}
\tat {@jmod:com.acme.shop.billing.RefundService$$SpringCGLIB$${N}.refund}(<generated>){@jar:}
\tat jdk.proxy{N}/jdk.proxy{N}.$Proxy{ID}.refund(Unknown Source)
\tat {@jmod:com.acme.shop.orders.OrderController.checkout}(OrderController.java:{L}){@jar:}
\tat org.springframework.web.method.support.InvocableHandlerMethod.doInvoke(InvocableHandlerMethod.java:{L}) ~[spring-web-6.1.{N}.jar:6.1.{N}]
",
    },
    Bug {
        label: "dotnet-deploy-invoice",
        sdk: "dotnet",
        message: "Object reference not set to an instance of an object.",
        trace: "System.NullReferenceException: Object reference not set to an instance of an object.
   at Acme.Shop.Billing.InvoiceService.Issue(Order order) in {@netsrc:Billing/InvoiceService.cs}:line {L}
   at Acme.Shop.Api.InvoicesController.<Post>d__{N}.MoveNext() in {@netsrc:Api/InvoicesController.cs}:line {L}
--- End of stack trace from previous location ---
   at lambda_method{ID}(Closure , Object )
   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.TaskOfIActionResultExecutor.Execute(ActionContext context)
",
    },
    Bug {
        label: "dotnet-deploy-export",
        sdk: "dotnet",
        message: "Object reference not set to an instance of an object.",
        trace: "System.NullReferenceException: Object reference not set to an instance of an object.
   at Acme.Shop.Billing.InvoiceExporter.Export(Invoice invoice) in {@netsrc:Billing/InvoiceExporter.cs}:line {L}
   at Acme.Shop.Api.InvoicesController.<Post>d__{N}.MoveNext() in {@netsrc:Api/InvoicesController.cs}:line {L}
--- End of stack trace from previous location ---
   at lambda_method{ID}(Closure , Object )
   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.TaskOfIActionResultExecutor.Execute(ActionContext context)
",
    },
    Bug {
        label: "go-deploy-pq",
        sdk: "go",
        message: "pq: canceling statement due to statement timeout",
        trace: "panic: pq: canceling statement due to statement timeout

goroutine {ID} [running]:
github.com/lib/pq.(*conn).errRecover(0xc000{A}, 0xc000{A})
\t{@gopq:error.go}:{L} +0x{A}
panic({0x7f3c40?, 0xc000{A}?})
\t{@goroot:runtime/panic.go}:{L} +0x132
github.com/lib/pq.{@pqfn:}(0xc000{A}, {0xc000{A}, 0x2a})
\t{@gopq:conn.go}:{L} +0x{A}
github.com/acme/shop/orders.(*Repo).List(0xc000{A}, {0x7f3c40, 0xc000{A}})
\t{@goapp:orders/repo.go}:{L} +0x{A}
github.com/acme/shop/orders.Handler.func{N}({0x7f3c40, 0xc000{A}}, 0xc0001b2100)
\t{@goapp:orders/http.go}:{L} +0x{A}
net/http.HandlerFunc.ServeHTTP(...)
\t{@goroot:net/http/server.go}:{L}
",
    },
    Bug {
        label: "go-deploy-pq-billing",
        sdk: "go",
        message: "pq: canceling statement due to statement timeout",
        trace: "panic: pq: canceling statement due to statement timeout

goroutine {ID} [running]:
github.com/lib/pq.(*conn).errRecover(0xc000{A}, 0xc000{A})
\t{@gopq:error.go}:{L} +0x{A}
panic({0x7f3c40?, 0xc000{A}?})
\t{@goroot:runtime/panic.go}:{L} +0x132
github.com/lib/pq.{@pqfn:}(0xc000{A}, {0xc000{A}, 0x2a})
\t{@gopq:conn.go}:{L} +0x{A}
github.com/acme/shop/billing.(*Repo).List(0xc000{A}, {0x7f3c40, 0xc000{A}})
\t{@goapp:billing/repo.go}:{L} +0x{A}
github.com/acme/shop/billing.Handler.func{N}({0x7f3c40, 0xc000{A}}, 0xc0001b2100)
\t{@goapp:billing/http.go}:{L} +0x{A}
net/http.HandlerFunc.ServeHTTP(...)
\t{@goroot:net/http/server.go}:{L}
",
    },
    Bug {
        label: "rust-deploy-actix",
        sdk: "rust",
        message: "called `Result::unwrap()` on an `Err` value: PoolTimedOut",
        trace: "thread 'actix-rt|system:0|arbiter:{N}' panicked at {@rustapp:api/orders.rs}:{L}:{N}:
called `Result::unwrap()` on an `Err` value: PoolTimedOut
stack backtrace:
   0: rust_begin_unwind
             at /rustc/{H}{H}/library/std/src/panicking.rs:{L}:5
   1: core::result::unwrap_failed
             at /rustc/{H}{H}/library/core/src/result.rs:{L}:5
   2: shop::api::orders::list::{{closure}}
             at {@rustapp:api/orders.rs}:{L}:{N}
   3: {@actixfn:}
             at {@cargo:actix-web-4.{N}.0/src/handler.rs}:{L}:{N}
   4: <actix_web::resource::Resource<T> as actix_service::ServiceFactory<actix_web::service::ServiceRequest>>::new_service::{{closure}}::{{closure}}
             at {@cargo:actix-web-4.{N}.0/src/resource.rs}:{L}:{N}
   5: tokio::runtime::task::core::Core<T,S>::poll
             at {@cargo:tokio-1.3{N}.0/src/runtime/task/core.rs}:{L}:{N}
",
    },
    Bug {
        label: "rust-deploy-actix-users",
        sdk: "rust",
        message: "called `Result::unwrap()` on an `Err` value: PoolTimedOut",
        trace: "thread 'actix-rt|system:0|arbiter:{N}' panicked at {@rustapp:api/users.rs}:{L}:{N}:
called `Result::unwrap()` on an `Err` value: PoolTimedOut
stack backtrace:
   0: rust_begin_unwind
             at /rustc/{H}{H}/library/std/src/panicking.rs:{L}:5
   1: core::result::unwrap_failed
             at /rustc/{H}{H}/library/core/src/result.rs:{L}:5
   2: shop::api::users::list::{{closure}}
             at {@rustapp:api/users.rs}:{L}:{N}
   3: {@actixfn:}
             at {@cargo:actix-web-4.{N}.0/src/handler.rs}:{L}:{N}
   4: <actix_web::resource::Resource<T> as actix_service::ServiceFactory<actix_web::service::ServiceRequest>>::new_service::{{closure}}::{{closure}}
             at {@cargo:actix-web-4.{N}.0/src/resource.rs}:{L}:{N}
   5: tokio::runtime::task::core::Core<T,S>::poll
             at {@cargo:tokio-1.3{N}.0/src/runtime/task/core.rs}:{L}:{N}
",
    },
];
