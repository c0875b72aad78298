// Why this exists: without the `bundled` feature qyl links the prebuilt
// libduckdb.so fetched by `make duckdb`. This script records where that library
// is (an rpath), so `cargo run` and `cargo test` find it without
// LD_LIBRARY_PATH, and fails early with a useful message when it is missing.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
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
