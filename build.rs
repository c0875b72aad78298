// Why this exists: without the `bundled` feature qyl links the prebuilt
// libduckdb.so fetched by `make duckdb`. This script records where that library
// is (an rpath), so `cargo run` and `cargo test` find it without
// LD_LIBRARY_PATH, and fails early with a useful message when it is missing.
//
// It also picks what the binary serves at `/`: the built dashboard
// (`dashboard/dist`, made by `make dashboard`) or, when it has not been built,
// a page saying which command builds it, so a plain `cargo build` never
// serves a blank page.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    dashboard();
    if std::env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    let Some(dir) = std::env::var_os("DUCKDB_LIB_DIR").map(PathBuf::from) else {
        panic!("DUCKDB_LIB_DIR is not set: run `make duckdb`, or build with `--features bundled`");
    };
    if !dir.join("libduckdb.so").exists() {
        panic!(
            "{} has no libduckdb.so: run `make duckdb` to fetch DuckDB 1.5.6, or build with `--features bundled`",
            dir.display()
        );
    }
    let dir = dir.canonicalize().unwrap_or(dir);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}

/// Sets QYL_DASHBOARD_DIR (the folder rust-embed embeds) and
/// QYL_DASHBOARD_STAMP (changes whenever the built files do, so a release
/// build re-embeds a rebuilt dashboard).
fn dashboard() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = manifest.join("dashboard/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let dir = if dist.join("index.html").is_file() {
        dist
    } else {
        println!(
            "cargo:warning=dashboard/dist is missing: this qyl serves a page saying so at /. Run `make dashboard` (npm ci + vite build) before building, or use `make run`."
        );
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
        let missing = out.join("dashboard-not-built");
        std::fs::create_dir_all(&missing).expect("creating OUT_DIR/dashboard-not-built");
        std::fs::write(missing.join("index.html"), NOT_BUILT).expect("writing the not-built page");
        missing
    };
    let mut stamp = 0u64;
    walk(&dir, &mut |p, len, modified| {
        for b in p.to_string_lossy().bytes() {
            stamp = stamp.wrapping_mul(31).wrapping_add(u64::from(b));
        }
        stamp = stamp
            .wrapping_mul(31)
            .wrapping_add(len)
            .wrapping_add(modified);
    });
    println!("cargo:rustc-env=QYL_DASHBOARD_DIR={}", dir.display());
    println!("cargo:rustc-env=QYL_DASHBOARD_STAMP={stamp:x}");
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path, u64, u64)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            walk(&path, f);
        } else {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            f(&path, meta.len(), modified);
        }
    }
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qyl: dashboard not built</title>
<meta name="color-scheme" content="light dark">
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:640px;margin:12vh auto;padding:0 20px}code,pre{font-family:ui-monospace,monospace}pre{background:rgba(127,127,127,.15);padding:10px 12px;border-radius:6px}</style>
</head><body>
<h1>The dashboard was not built into this qyl</h1>
<p>This binary was compiled before <code>dashboard/dist</code> existed. Build the dashboard, then qyl:</p>
<pre>make dashboard    # npm ci + vite build in dashboard/
cargo build --release</pre>
<p>or simply <code>make run</code>, which does both. The REST API (<a href="/api/v1/openapi.json">/api/v1/openapi.json</a>), OTLP ingest and the live stream work without it.</p>
</body></html>
"#;
