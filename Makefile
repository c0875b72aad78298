# Developer entry points. The README's two commands are `make run` and `make test`.
#
# Without the `bundled` feature, qyl links the official prebuilt libduckdb.so
# (DuckDB 1.5.6, the version the `duckdb` crate 1.10506.0 expects), taken from
# the npm package DuckDB publishes for its Node bindings. `make duckdb` puts it
# in .duckdb/lib, where .cargo/config.toml and build.rs point the build.

DUCKDB_NPM_VERSION := 1.5.6-r.1
ARCH := $(shell uname -m | sed -e 's/x86_64/x64/' -e 's/aarch64/arm64/')
DUCKDB_LIB := .duckdb/lib/libduckdb.so
VENV_PYTHON := .venv/bin/python

.PHONY: run test duckdb venv bench lint

run: $(DUCKDB_LIB)
	cargo run --release -- serve

test: $(DUCKDB_LIB) $(VENV_PYTHON)
	cargo test

duckdb: $(DUCKDB_LIB)

$(DUCKDB_LIB):
	rm -rf .duckdb/fetch && mkdir -p .duckdb/fetch .duckdb/lib
	cd .duckdb/fetch && npm pack --silent @duckdb/node-bindings-linux-$(ARCH)@$(DUCKDB_NPM_VERSION) >/dev/null
	tar -xzf .duckdb/fetch/*.tgz -C .duckdb/fetch
	cp .duckdb/fetch/package/libduckdb.so $(DUCKDB_LIB)
	rm -rf .duckdb/fetch

venv: $(VENV_PYTHON)

$(VENV_PYTHON): tests/requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $(VENV_PYTHON)

bench: $(DUCKDB_LIB)
	cargo bench --bench ingest

lint: $(DUCKDB_LIB)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
