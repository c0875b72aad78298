//! File paths as stack frames print them, read for what survives a
//! redeploy. Where code lives on disk changes with every release directory,
//! deploy root, container layer, virtualenv or package-manager store, and
//! bundlers put a content hash in every file name; grouping must see none
//! of that. Two questions are answered here: is a path someone else's code
//! (a package manager put it there), and which name identifies a file that
//! grouping keys on by name (Python and JavaScript, whose frames carry no
//! module).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// The path with `/` separators, without a URL's scheme, host, query and
/// fragment, a `file://` prefix or a Windows drive letter.
pub fn normalize(path: &str) -> Cow<'_, str> {
    let mut p: Cow<'_, str> = if path.contains('\\') {
        Cow::Owned(path.replace('\\', "/"))
    } else {
        Cow::Borrowed(path)
    };
    if let Some(i) = p.find(['?', '#']) {
        p = Cow::Owned(p[..i].to_string());
    }
    if let Some(i) = p.find("://") {
        let scheme = &p[..i];
        if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            let rest = &p[i + 3..];
            // `file:///srv/x.js` has no host; `https://cdn/x.js` has one,
            // and `webpack-internal:///(rsc)/./src/x.js` names a bundle.
            let rest = if scheme == "file" || rest.starts_with('/') {
                rest
            } else {
                rest.find('/').map_or("", |j| &rest[j..])
            };
            p = Cow::Owned(rest.to_string());
        }
    }
    let bytes = p.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        p = Cow::Owned(p[2..].to_string());
    }
    p
}

/// Path fragments of package managers and toolchains: what is under them
/// was installed, not written by the application.
const DEPENDENCY_PARTS: &[&str] = &[
    "/site-packages/",
    "/dist-packages/",
    ".whl/",
    ".egg/",
    "/node_modules/",
    "/.yarn/cache/",
    "/.yarn/unplugged/",
    "/.bun/install/",
    "/.cargo/registry/",
    "/.cargo/git/",
    "/cargo/registry/",
    "/cargo/git/checkouts/",
    "/rustc/",
    "/vendor/",
    "/pkg/mod/",
    "/.m2/repository/",
    "/.gradle/caches/",
    "/usr/local/go/src/",
    "/usr/lib/go/src/",
    "/usr/lib/golang/src/",
];

/// Hosts that serve packages to browsers and Deno.
const PACKAGE_HOSTS: &[&str] = &[
    "deno.land/",
    "jsr.io/",
    "esm.sh/",
    "cdn.jsdelivr.net/",
    "unpkg.com/",
    "cdnjs.cloudflare.com/",
];

/// A Go module version in a path: `pq@v1.10.9/` (the module cache, and
/// what `-trimpath` leaves of it).
static GO_MODULE_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"@v\d+\.\d+\.\d+[^/]*/").expect("go version pattern compiles"));

/// Whether `path` (as printed) is inside a package manager's store or a
/// toolchain's library, wherever that store is on this machine.
pub fn is_dependency(path: &str) -> bool {
    let raw = path.replace('\\', "/");
    let with_root = if raw.starts_with('/') {
        Cow::Borrowed(raw.as_str())
    } else {
        Cow::Owned(format!("/{raw}"))
    };
    DEPENDENCY_PARTS.iter().any(|d| with_root.contains(d))
        || PACKAGE_HOSTS.iter().any(|h| raw.contains(h))
        || GO_MODULE_VERSION.is_match(&raw)
}

/// File-name endings of JavaScript and its compile-to-JS dialects: the same
/// code runs as `users.ts` under ts-node and as `users.js` once compiled.
const JS_EXTENSIONS: &[&str] = &[".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx"];

/// What bundlers add to a file name besides a hash.
const BUILD_MARKERS: &[&str] = &[".chunk", ".bundle", ".min", ".prod", ".production"];

/// File names that say nothing without their folder: every package has an
/// `index.js`, every Next.js route a `page.js`, every Python package an
/// `__init__.py`.
const FOLDER_NAMED: &[&str] = &[
    "index", "page", "layout", "route", "__init__", "__main__", "mod",
];

/// Folder names that usually are a deploy root rather than part of the
/// code: an index file directly inside one of them is named alone.
const ROOT_LIKE: &[&str] = &[
    "app",
    "api",
    "srv",
    "server",
    "task",
    "current",
    "www",
    "wwwroot",
    "html",
    "public",
    "static",
    "dist",
    "build",
    "out",
    "src",
    "lib",
    "web",
    "site",
    "code",
    "workspace",
    "project",
    "assets",
    "js",
    "chunks",
    "opt",
    "home",
    "usr",
    "var",
    "tmp",
    "deploy",
    "release",
    "releases",
    "diff",
    "root",
];

/// Names a JavaScript frame's file by: the file name without bundle
/// hashes, build markers and extension; a numbered chunk is `<chunk>`; an
/// index-like file carries its folder.
pub fn js_module(path: &str) -> String {
    let path = normalize(path);
    let (parent, file) = split_file(&path);
    let Some(stem) = JS_EXTENSIONS.iter().find_map(|e| file.strip_suffix(e)) else {
        // Not a script file (`App.vue`, `<anonymous>`): as printed.
        return file.to_string();
    };
    let stem = strip_build_suffixes(stem);
    let stem = if !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()) {
        "<chunk>"
    } else {
        stem
    };
    with_folder(parent, stem, stem)
}

/// Names a Python frame's file by: its file name, and a package's
/// `__init__.py` by its package.
pub fn python_module(path: &str) -> String {
    let path = normalize(path);
    let (parent, file) = split_file(&path);
    let stem = file.strip_suffix(".py").unwrap_or(file);
    with_folder(parent, file, stem)
}

/// `name` prefixed with its folder when `stem` is folder-named and the
/// folder is part of the code rather than a deploy root.
fn with_folder(parent: &str, name: &str, stem: &str) -> String {
    if !FOLDER_NAMED.contains(&stem) {
        return name.to_string();
    }
    let folder = parent.rsplit('/').next().unwrap_or("");
    if folder.is_empty()
        || folder.starts_with('.')
        || ROOT_LIKE.contains(&folder.to_ascii_lowercase().as_str())
        || is_variable_segment(folder)
    {
        return name.to_string();
    }
    format!("{folder}/{name}")
}

fn split_file(path: &str) -> (&str, &str) {
    let path = path.trim_end_matches('/');
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// A content hash as bundlers write it after `-` or `.`: hex (webpack,
/// Parcel, Next.js), base64url (Vite, Rollup) or base32 (esbuild).
static HASH_SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[.\-~_](?P<hash>[0-9a-fA-F]{6,}|[A-Za-z0-9_\-]{8})$")
        .expect("bundle hash pattern compiles")
});

/// `main.3f9a1c2b.chunk` → `main`; `index-BfK3x9Zq` → `index`.
fn strip_build_suffixes(mut stem: &str) -> &str {
    loop {
        let before = stem;
        if let Some(m) = BUILD_MARKERS.iter().find(|m| stem.ends_with(*m)) {
            stem = &stem[..stem.len() - m.len()];
        }
        if let Some(c) = HASH_SUFFIX.captures(stem) {
            let hash = c.name("hash").map_or("", |h| h.as_str());
            let start = c.get(0).map_or(stem.len(), |m| m.start());
            if start > 0 && looks_like_hash(hash) {
                stem = &stem[..start];
            }
        }
        if stem == before {
            return stem;
        }
    }
}

/// Whether a file-name segment is a generated hash rather than a word.
/// Hex counts when it has a digit (`facade` is a word) or is long; other
/// hashes are exactly eight characters and read as noise: they mix digits,
/// `_` or `-` in, or change case more often than camel case does, or are
/// all capitals (esbuild's base32).
fn looks_like_hash(s: &str) -> bool {
    let hex = s.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if hex && (digits > 0 || s.len() >= 16) {
        return true;
    }
    if s.len() != 8 {
        return false;
    }
    let letters = s.bytes().filter(u8::is_ascii_alphabetic).count();
    if letters == 0 {
        return false;
    }
    if digits > 0 || s.contains(['_', '-']) {
        return true;
    }
    if s.bytes().all(|b| b.is_ascii_uppercase()) {
        return true;
    }
    let switches = s
        .as_bytes()
        .windows(2)
        .filter(|w| w[0].is_ascii_uppercase() != w[1].is_ascii_uppercase())
        .count();
    switches >= 4
}

static VARIABLE_SEGMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)^(?:
            \d[\d\-_T.]{5,}                      # timestamps, dated release folders
          | .*\d+\.\d+(?:\.\d+)?(?:[-+.].*)?     # something-1.4.2
          | v\d+.*                               # v2, v1.4
          | [0-9a-f]{12,}                        # hashes, layer ids
          | [0-9a-f]{8}-[0-9a-f]{4}-.*           # uuids
        )$",
    )
    .expect("variable segment pattern compiles")
});

/// A folder name that differs between deploys: dated release folders,
/// versions, hashes.
pub fn is_variable_segment(segment: &str) -> bool {
    VARIABLE_SEGMENT.is_match(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_what_is_not_the_path() {
        assert_eq!(
            normalize(r"C:\inetpub\wwwroot\api\x.js"),
            "/inetpub/wwwroot/api/x.js"
        );
        assert_eq!(normalize("file:///srv/api/x.mjs"), "/srv/api/x.mjs");
        assert_eq!(
            normalize("https://shop.acme.io/assets/index-Bf3x9Zq1.js?v=3#x"),
            "/assets/index-Bf3x9Zq1.js"
        );
        assert_eq!(
            normalize("webpack-internal:///(rsc)/./src/app/page.tsx"),
            "/(rsc)/./src/app/page.tsx"
        );
        assert_eq!(
            normalize("node:internal/process/task_queues"),
            "node:internal/process/task_queues"
        );
        assert_eq!(normalize("/srv/app/x.py"), "/srv/app/x.py");
    }

    #[test]
    fn dependencies_wherever_the_store_is() {
        for p in [
            "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py",
            r"C:\Python311\Lib\site-packages\flask\app.py",
            "/usr/lib/python3/dist-packages/requests/api.py",
            "/tmp/pex/.deps/requests-2.31.0-py3-none-any.whl/requests/api.py",
            "/app/node_modules/.pnpm/express@4.18.2/node_modules/express/lib/router/layer.js",
            "/home/d/.yarn/cache/express-npm-4.18.2-1a2b-3c4d.zip/node_modules/express/index.js",
            "/usr/local/cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.35.0/src/lib.rs",
            "/cargo/registry/src/index.crates.io-6f17d22bba15001f/sqlx-0.7.3/src/lib.rs",
            r"C:\Users\ci\.cargo\registry\src\index.crates.io-6f17d22bba15001f\x-1.0.0\src\lib.rs",
            "/root/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go",
            "github.com/lib/pq@v1.10.9/conn.go",
            "/build/vendor/github.com/lib/pq/conn.go",
            "/root/.m2/repository/org/x/x.jar",
            "https://deno.land/x/oak@v12.6.1/router.ts",
            "https://cdn.jsdelivr.net/npm/lodash@4.17.21/lodash.min.js",
        ] {
            assert!(is_dependency(p), "{p}");
        }
        for p in [
            "/srv/app/shop/views.py",
            "/srv/releases/20241203-1412/shop/views.py",
            "github.com/acme/shop/orders/repo.go",
            "./src/orders/service.rs",
            "/srv/vendors/app.py",
            "https://shop.acme.io/assets/index-Bf3x9Zq1.js",
        ] {
            assert!(!is_dependency(p), "{p}");
        }
    }

    #[test]
    fn bundle_hashes_and_build_markers_go() {
        for (path, module) in [
            ("https://x/static/js/main.3f9a1c2b.chunk.js", "main"),
            ("https://x/assets/index-BfK3x9Zq.js", "index"),
            ("https://x/assets/index-Bf-3x_9Z.js", "index"),
            ("https://x/assets/index-CxKqYwZb.js", "index"),
            ("https://x/assets/vendor-7XKJ3N2Q.js", "vendor"),
            ("https://x/assets/vendor-QWERTYUI.js", "vendor"),
            (
                "https://x/_next/static/chunks/framework-3a8b9c1d2e3f4a5b.js",
                "framework",
            ),
            ("https://x/_next/static/chunks/8592-3a8b9c1d.js", "<chunk>"),
            ("https://x/static/js/123.4f5e6d7c.chunk.js", "<chunk>"),
            ("/app/.next/server/chunks/8592.js", "<chunk>"),
            ("https://x/assets/index.1a2b3c4d.js", "index"),
            ("/srv/api/src/users/service.ts", "service"),
            ("/srv/api/dist/users/service.js", "service"),
            ("/srv/api/src/user-settings.js", "user-settings"),
            ("/srv/api/src/order-form-settings.js", "order-form-settings"),
            ("/srv/api/src/DataGrid-UserList.tsx", "DataGrid-UserList"),
            ("/srv/api/src/user-facade.js", "user-facade"),
            ("/srv/api/src/users/index.js", "users/index"),
            ("/app/index.js", "index"),
            ("/usr/src/app/index.js", "index"),
            ("/home/deploy/api/releases/20241203141233/index.js", "index"),
            (
                "https://x/_next/static/chunks/app/products/page-3a8b9c1d2e3f4a5b.js",
                "products/page",
            ),
            ("/app/.next/server/app/products/page.js", "products/page"),
            ("App.vue", "App.vue"),
        ] {
            assert_eq!(js_module(path), module, "{path}");
        }
    }

    #[test]
    fn python_packages_name_their_init() {
        assert_eq!(python_module("/srv/app/shop/views.py"), "views.py");
        assert_eq!(
            python_module("/srv/app/shop/__init__.py"),
            "shop/__init__.py"
        );
        assert_eq!(
            python_module(r"C:\deploy\shop\billing\__init__.py"),
            "billing/__init__.py"
        );
        assert_eq!(
            python_module("/srv/releases/20241203-1412/__init__.py"),
            "__init__.py"
        );
        assert_eq!(python_module("<frozen runpy>"), "<frozen runpy>");
    }

    #[test]
    fn variable_segments() {
        for s in [
            "20241203141233",
            "20241203-1412",
            "shop-1.4.2",
            "v2",
            "3f9a1c2b4e5d6f7a",
        ] {
            assert!(is_variable_segment(s), "{s}");
        }
        for s in ["shop", "users", "billing", "v", "api2"] {
            assert!(!is_variable_segment(s), "{s}");
        }
    }
}
