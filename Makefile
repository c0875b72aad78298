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
# Where cargo puts binaries; the browser tests run the `qyl` that `cargo test`
# built there.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
DASHBOARD_DEPS := dashboard/node_modules/.package-lock.json

.PHONY: run test test-dashboard dashboard duckdb venv bench bench-dashboard lint docker-test

run: $(DUCKDB_LIB) dashboard
	cargo run --release -- serve

test: $(DUCKDB_LIB) $(VENV_PYTHON) dashboard
	cargo test
	$(MAKE) test-dashboard

# The browser tests (dashboard/tests, node's test runner): real qyl, the
# OpenTelemetry Python SDK, Debian's Chromium through playwright-core.
test-dashboard: $(VENV_PYTHON) $(DASHBOARD_DEPS)
	cd dashboard && QYL_BIN=$(abspath $(TARGET_DIR))/debug/qyl node --test --test-concurrency=1 tests/*.test.mjs

# The web UI that qyl embeds: `npm ci` when the lock file changed, then a
# type check and a Vite build into dashboard/dist (seconds; always rerun so
# an edited page is never served stale).
dashboard: $(DASHBOARD_DEPS)
	cd dashboard && npm run --silent build

$(DASHBOARD_DEPS): dashboard/package-lock.json dashboard/package.json
	cd dashboard && npm ci --no-audit --no-fund
	touch $(DASHBOARD_DEPS)

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

# Dashboard figures: bundle size, 10k-span waterfall, live page memory.
bench-dashboard: $(DUCKDB_LIB) dashboard
	cargo build --release
	cd dashboard && for b in bench/*.mjs; do QYL_BIN=$(abspath $(TARGET_DIR))/release/qyl node $$b || exit 1; done

lint: $(DUCKDB_LIB)
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# The container image: builds the Dockerfile with buildah (no Docker daemon
# needed) and runs it as a user would: the token, OTLP ingest, `qyl
# healthcheck`, a script reload through the mounted /scripts, non-root, SIGTERM
# under load. Needs root, buildah and mmdebstrap; where no image registry is
# reachable it first builds local stand-ins for the base images
# (tests/docker/build-base-images.sh). Not part of `make test`: a cold build
# takes 10-20 min on 2 cores.
docker-test: $(VENV_PYTHON)
	tests/docker/test.sh
