# qyl's container image, built from source by `docker build -t qyl .` on a
# clean checkout: the dashboard and the prebuilt DuckDB library come from npm
# (Node stages), qyl is compiled against them (Rust stage), and only the
# binary and libduckdb.so go into a small Debian runtime that runs as a
# non-root user with its database on the /data volume.
#
#   docker run -d -p 5100:5100 -p 4317:4317 -p 4318:4318 \
#       -e QYL_AUTH_TOKEN=... -v qyl-data:/data -v "$PWD/scripts:/scripts:ro" qyl
#
# See the README's Docker section for the volumes, ports and the token.

# The DuckDB release the `duckdb` crate in Cargo.lock was written for, as
# DuckDB publishes it prebuilt for its Node bindings (the Makefile's
# `make duckdb` uses the same package). Compiling DuckDB from source
# (`--features bundled`) would take most of an hour.
ARG DUCKDB_NPM_VERSION=1.5.6-r.1

# ---- libduckdb.so ---------------------------------------------------------
FROM node:20-bookworm-slim AS duckdb
ARG DUCKDB_NPM_VERSION
# Set by BuildKit; `uname -m` stands in where a builder leaves it empty
# (the legacy builder, older buildah).
ARG TARGETARCH
WORKDIR /fetch
RUN set -eu; \
    arch="${TARGETARCH:-$(uname -m)}"; \
    case "$arch" in \
        amd64 | x86_64) npm_arch=x64 ;; \
        arm64 | aarch64) npm_arch=arm64 ;; \
        *) echo "DuckDB publishes no prebuilt libduckdb.so for $arch" >&2; exit 1 ;; \
    esac; \
    npm pack --silent "@duckdb/node-bindings-linux-$npm_arch@$DUCKDB_NPM_VERSION" >/dev/null; \
    tar -xzf ./*.tgz; \
    mkdir -p /out; \
    cp package/libduckdb.so /out/libduckdb.so; \
    rm -rf /fetch/*

# ---- the dashboard (dashboard/dist) ---------------------------------------
FROM node:20-bookworm-slim AS dashboard
WORKDIR /src/dashboard
# Dependencies in their own layer: editing a page does not reinstall them.
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY dashboard/ ./
RUN npm run build

# ---- qyl ------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
# build.rs bakes this directory into the binary as its rpath; the runtime
# stage puts libduckdb.so at the same path, so nothing else finds it.
ENV DUCKDB_LIB_DIR=/usr/local/lib/qyl
COPY --from=duckdb /out/libduckdb.so /usr/local/lib/qyl/libduckdb.so
WORKDIR /src

# Dependencies first, in a layer of their own, by building the manifest with
# empty sources (the bench files Cargo.toml names included): editing qyl's
# code then recompiles qyl alone, not its ~400 crates. This needs no extra
# tool, unlike cargo-chef, whose own install would cost minutes per cold build
# for what a few lines do here.
COPY Cargo.toml Cargo.lock build.rs ./
RUN set -eu; \
    mkdir -p src benches; \
    echo 'fn main() {}' > src/main.rs; \
    : > src/lib.rs; \
    for bench in $(awk '/^\[/ { b = ($0 == "[[bench]]") } b && /^name *=/ { gsub(/^[^"]*"|"[^"]*$/, ""); print }' Cargo.toml); do \
        echo 'fn main() {}' > "benches/$bench.rs"; \
    done; \
    cargo build --release --locked; \
    rm -rf src benches

COPY qyl.toml ./
COPY lua-stdlib lua-stdlib
# Cargo.toml names the benches, so cargo wants their files to exist.
COPY benches benches
COPY src src
COPY --from=dashboard /src/dashboard/dist dashboard/dist
# The copied sources may be older than the placeholder build above; touching
# the crate roots makes cargo rebuild qyl itself. The release profile's line
# tables are 140 of the binary's 160 MB: the image keeps the symbols (panics
# and profilers still name functions) but not the file:line tables.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && objcopy --strip-debug target/release/qyl /usr/local/bin/qyl \
    && qyl version

# ---- runtime --------------------------------------------------------------
FROM debian:bookworm-slim
# A fixed numeric uid, so bind-mounted folders can be chowned to it
# (`chown 10001 ./data`) and runAsNonRoot policies can check it.
RUN groupadd --system --gid 10001 qyl \
    && useradd --system --uid 10001 --gid qyl --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin qyl \
    && mkdir -p /data /scripts /etc/qyl \
    && chown qyl:qyl /data /scripts
# The repository's example functions, for reference (list them with
# `docker run --rm --entrypoint ls qyl /usr/share/qyl/examples/scripts`):
# /scripts itself starts empty, as a function runs only when you put it there.
COPY scripts /usr/share/qyl/examples/scripts
# The library first: a rebuilt qyl changes only the last layer.
COPY --from=build /usr/local/lib/qyl/libduckdb.so /usr/local/lib/qyl/libduckdb.so
COPY --from=build /usr/local/bin/qyl /usr/local/bin/qyl

# Listen on every interface (qyl then requires a token: set QYL_AUTH_TOKEN,
# or it generates one per start and logs it), keep the database on the
# volume and read functions from /scripts. These override the same keys of a
# mounted qyl.toml (environment beats file); change them with -e instead.
ENV QYL_SERVER_BIND=0.0.0.0 \
    QYL_STORAGE_PATH=/data/qyl.duckdb \
    QYL_FUNCTIONS_DIR=/scripts
# qyl reads ./qyl.toml when it exists: mount your file at /etc/qyl/qyl.toml.
WORKDIR /etc/qyl
VOLUME /data
# 5100: dashboard, REST API, live stream, OTLP/HTTP; 4317: OTLP/gRPC;
# 4318: OTLP/HTTP.
EXPOSE 5100 4317 4318
USER 10001:10001
# qyl commits what it accepted and stops on SIGTERM; give it the default
# 10 s (docker stop -t) or more.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["qyl", "healthcheck"]
ENTRYPOINT ["qyl"]
CMD ["serve"]
