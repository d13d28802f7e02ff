#!/usr/bin/env bash
# Installs the broker (tansu) and the schema registry (rivven-schema) into a
# versioned cache outside the clone. Idempotent: a pinned version already
# present is never rebuilt. The first run compiles both (~20+ min on 2 cores).
set -euo pipefail
source "$(dirname "$0")/env.sh"
mkdir -p "$TOOLS_DIR"

install_one() { # name version root bin features...
  local name=$1 version=$2 root=$3 bin=$4; shift 4
  if [ -x "$bin" ] && [ -f "$root/.installed-$version" ]; then
    echo "[install-tools] $name $version already installed at $bin"
    return 0
  fi
  echo "[install-tools] building $name $version (first run on this machine: this takes a while; progress below)"
  local log="$TOOLS_DIR/$name-$version.build.log"
  # A separate target dir per tool so concurrent builds don't fight over locks.
  CARGO_TARGET_DIR="$TOOLS_DIR/build-$name" cargo install "$name" --version "$version" --locked \
    --root "$root" "$@" 2>&1 | tee "$log" | grep --line-buffered -E "Compiling|Installing|Finished|error" || true
  if [ ! -x "$bin" ]; then
    echo "[install-tools] FAILED to build $name; see $log" >&2
    return 1
  fi
  touch "$root/.installed-$version"
  rm -rf "$TOOLS_DIR/build-$name"
}

install_one tansu "$TANSU_VERSION" "$TANSU_ROOT" "$TANSU_BIN" --features libsql
install_one rivven-schema "$RIVVEN_SCHEMA_VERSION" "$RIVVEN_ROOT" "$RIVVEN_BIN"
