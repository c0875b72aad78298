#!/usr/bin/env bash
# Why this exists: the Dockerfile names the official images (rust, node,
# debian, python from Docker Hub), but machines without a reachable image
# registry (CI sandboxes, this project's build box) cannot pull them. This
# script builds local stand-ins under the exact same names from Debian
# bookworm (mmdebstrap) plus this machine's own Rust and Node toolchains, and
# adds this machine's CA certificates so cargo/npm/pip inside a build can
# reach their registries through a TLS-intercepting proxy. The Dockerfile
# itself stays the one a Docker Hub user runs; only these bases adapt it.
#
# Usage: tests/docker/build-base-images.sh [--force] [IMAGE...]
#   IMAGE is one of: debian rust node python (default: all; existing images
#   are kept unless --force).
# The hooks' "$1" (the new root) is expanded by mmdebstrap, not here.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

# The names the Dockerfiles' FROM lines resolve to.
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
RUST_IMAGE=docker.io/library/rust:1.95-bookworm
NODE_IMAGE=docker.io/library/node:20-bookworm-slim
PYTHON_IMAGE=docker.io/library/python:3.11-slim

RUST_TOOLCHAIN_SRC=${RUST_TOOLCHAIN_SRC:-$HOME/.rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu}
RUSTUP_BIN=${RUSTUP_BIN:-$HOME/.cargo/bin/rustup}
NODE_BIN=${NODE_BIN:-$(command -v node)}
NPM_DIR=${NPM_DIR:-$(dirname "$(readlink -f "$(command -v npm)")")/..}

force=0
wanted=()
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        debian | rust | node | python) wanted+=("$arg") ;;
        *) echo "unknown argument: $arg (expected --force, debian, rust, node, python)" >&2; exit 2 ;;
    esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(debian rust node python)

workdir=$(mktemp -d /var/tmp/qyl-base.XXXXXX)
trap 'rm -rf "$workdir"' EXIT

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

image_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# The hooks every base gets: the host's CA bundle (the whole file, so a
# proxy's CA is trusted even where the ca-certificates package is absent)
# and its extra CAs in /usr/local/share/ca-certificates, so an
# `apt-get install ca-certificates` inside a build regenerates a bundle that
# still trusts them.
ca_hooks=(
    --customize-hook='mkdir -p "$1/etc/ssl/certs" "$1/usr/local/share/ca-certificates"'
    --customize-hook='cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"'
    --customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true'
)
# What Debian's docker images leave out of the slim variants.
slim_opts=(
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
)
sources=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)

# rootfs NAME [mmdebstrap options...]: a bookworm root file system tarball.
rootfs() {
    local name=$1
    shift
    log "mmdebstrap $name"
    mmdebstrap --quiet --variant=minbase --format=tar "${ca_hooks[@]}" "$@" \
        bookworm "$workdir/$name.tar" "${sources[@]}"
}

# commit CONTAINER IMAGE: store the container as IMAGE, replacing an older one.
commit() {
    buildah commit --quiet --rm "$1" "$2" >/dev/null
    log "built $2 ($(buildah images --format '{{.Size}}' "$2"))"
}

# from_rootfs NAME: a working container holding the tarball's files.
from_rootfs() {
    local ctr
    ctr=$(buildah from --quiet scratch)
    buildah add --quiet "$ctr" "$workdir/$1.tar" / >/dev/null
    echo "$ctr"
}

build_debian() {
    rootfs debian "${slim_opts[@]}"
    local ctr
    ctr=$(from_rootfs debian)
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd bash "$ctr"
    commit "$ctr" "$DEBIAN_IMAGE"
}

# rust:*-bookworm is buildpack-deps (compilers, git, curl, headers) plus
# rustup in /usr/local/{rustup,cargo}; here rustup's toolchain comes from
# this machine (without its 800 MB of HTML docs).
build_rust() {
    [ -x "$RUST_TOOLCHAIN_SRC/bin/rustc" ] || { echo "no Rust toolchain at $RUST_TOOLCHAIN_SRC" >&2; exit 1; }
    rootfs rust --include=ca-certificates,gcc,g++,libc6-dev,make,pkg-config,git,curl,xz-utils,file,patch,libssl-dev,procps \
        --customize-hook='mkdir -p "$1/usr/local/rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu" "$1/usr/local/cargo/bin"' \
        --customize-hook="cp -a $RUST_TOOLCHAIN_SRC/bin $RUST_TOOLCHAIN_SRC/lib $RUST_TOOLCHAIN_SRC/libexec $RUST_TOOLCHAIN_SRC/etc \"\$1/usr/local/rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu/\"" \
        --customize-hook="cp $RUSTUP_BIN \"\$1/usr/local/cargo/bin/rustup\"" \
        --customize-hook='for t in cargo rustc rustdoc cargo-clippy clippy-driver cargo-fmt rustfmt rust-gdb rust-lldb; do ln -s rustup "$1/usr/local/cargo/bin/$t"; done' \
        --customize-hook='printf "version = \"12\"\ndefault_toolchain = \"1.95.0-x86_64-unknown-linux-gnu\"\nprofile = \"minimal\"\n" > "$1/usr/local/rustup/settings.toml"' \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null'
    local ctr
    ctr=$(from_rootfs rust)
    buildah config \
        --env RUSTUP_HOME=/usr/local/rustup \
        --env CARGO_HOME=/usr/local/cargo \
        --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env RUST_VERSION=1.95.0 \
        --cmd bash "$ctr"
    buildah run --isolation chroot "$ctr" -- sh -c 'rustc --version && cargo --version'
    commit "$ctr" "$RUST_IMAGE"
}

# node:*-bookworm-slim has node and npm in /usr/local; node trusts only its
# own CA list, so NODE_EXTRA_CA_CERTS points it at the copied bundle.
build_node() {
    rootfs node "${slim_opts[@]}" \
        --customize-hook='mkdir -p "$1/usr/local/bin" "$1/usr/local/lib/node_modules"' \
        --customize-hook="cp $NODE_BIN \"\$1/usr/local/bin/node\"" \
        --customize-hook="cp -a $NPM_DIR \"\$1/usr/local/lib/node_modules/npm\"" \
        --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"; ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"'
    local ctr
    ctr=$(from_rootfs node)
    buildah config \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env NODE_VERSION="$("$NODE_BIN" --version | tr -d v)" \
        --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
        --cmd node "$ctr"
    buildah run --isolation chroot "$ctr" -- sh -c 'node --version && npm --version'
    commit "$ctr" "$NODE_IMAGE"
}

# python:3.11-slim has python and pip on PATH and lets pip install into the
# system interpreter; bookworm's python3 is 3.11, so Debian's package stands
# in (without the PEP 668 marker that would refuse `pip install`).
build_python() {
    rootfs python "${slim_opts[@]}" --include=ca-certificates,python3,python3-pip \
        --customize-hook='rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED' \
        --customize-hook='ln -s /usr/bin/python3 "$1/usr/local/bin/python"; ln -s /usr/bin/pip3 "$1/usr/local/bin/pip"' \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null'
    local ctr
    ctr=$(from_rootfs python)
    buildah config \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 \
        --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        --env REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
        --cmd python3 "$ctr"
    buildah run --isolation chroot "$ctr" -- sh -c 'python --version && pip --version'
    commit "$ctr" "$PYTHON_IMAGE"
}

for which in "${wanted[@]}"; do
    var=$(echo "$which" | tr '[:lower:]' '[:upper:]')_IMAGE
    if [ $force = 0 ] && image_exists "${!var}"; then
        log "${!var} exists (--force rebuilds it)"
        continue
    fi
    "build_$which"
done
