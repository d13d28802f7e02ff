#!/usr/bin/env bash
# Installs cargo-deny (pinned) and an offline copy of the RustSec advisory database into the
# versioned cache outside the clone; `make lint` runs it before `cargo deny`. Idempotent: a
# pinned version already present is never rebuilt (the first build takes ~5 min on 2 cores).
#
# The advisory database comes from the read-only snapshot beside the clone
# (../shared/advisory-db, see its SNAPSHOT.md; ADVISORY_DB_SRC overrides). cargo-deny wants a
# git repository named after its default database URL under `db-path` (deny.toml), so the
# snapshot is copied there and committed once; it is copied again when the snapshot changes.
# Prints the path of the cargo-deny binary on stdout; progress goes to stderr.
set -euo pipefail
source "$(dirname "$0")/env.sh"

CARGO_DENY_VERSION="0.20.2"
DENY_ROOT="$TOOLS_DIR/cargo-deny-$CARGO_DENY_VERSION"
DENY_BIN="$DENY_ROOT/bin/cargo-deny"
# cargo-deny 0.20's folder name for the default database (https://github.com/rustsec/advisory-db).
DB_PARENT="$TOOLS_DIR/advisory-db"
DB_DIR="$DB_PARENT/advisory-db-3157b0e258782691"
ADVISORY_DB_SRC="${ADVISORY_DB_SRC:-$REPO_ROOT/../shared/advisory-db}"

log() { echo "[install-cargo-deny] $*" >&2; }

# One install at a time: .ci/run starts this in the background while `make lint` may call it
# too; the second waits for the first instead of building again.
mkdir -p "$TOOLS_DIR"
exec 9>"$TOOLS_DIR/.install-cargo-deny.lock"
flock 9

if [ -x "$DENY_BIN" ] && [ -f "$DENY_ROOT/.installed-$CARGO_DENY_VERSION" ]; then
  log "cargo-deny $CARGO_DENY_VERSION already installed at $DENY_BIN"
else
  log "building cargo-deny $CARGO_DENY_VERSION (first run on this machine)"
  mkdir -p "$TOOLS_DIR"
  build_log="$TOOLS_DIR/cargo-deny-$CARGO_DENY_VERSION.build.log"
  # Its own target dir: never contends with the workspace build's lock.
  if ! CARGO_TARGET_DIR="$TOOLS_DIR/build-cargo-deny" cargo install cargo-deny --locked \
      --version "$CARGO_DENY_VERSION" --root "$DENY_ROOT" >"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    log "FAILED to build cargo-deny; see $build_log"
    exit 1
  fi
  touch "$DENY_ROOT/.installed-$CARGO_DENY_VERSION"
  rm -rf "$TOOLS_DIR/build-cargo-deny"
  for old in "$TOOLS_DIR"/cargo-deny-*/; do
    [ "${old%/}" = "$DENY_ROOT" ] || rm -rf "$old"
  done
fi

if [ "${ADVISORY_DB_FETCH:-0}" = 1 ]; then
  # `make deny` fetches the database into db-path itself (a runner with network, no snapshot).
  log "ADVISORY_DB_FETCH=1: the advisory database is fetched, not copied"
  echo "$DENY_BIN"
  exit 0
fi
if [ ! -f "$ADVISORY_DB_SRC/SNAPSHOT.md" ]; then
  log "no advisory database snapshot at $ADVISORY_DB_SRC (set ADVISORY_DB_SRC, or ADVISORY_DB_FETCH=1 to fetch it)"
  exit 1
fi
snapshot=$(sha256sum "$ADVISORY_DB_SRC/SNAPSHOT.md" | cut -c1-16)
if [ -f "$DB_PARENT/.snapshot-$snapshot" ] && [ -d "$DB_DIR/.git" ]; then
  log "advisory database snapshot $snapshot already at $DB_DIR"
else
  log "copying the advisory database snapshot into $DB_DIR"
  rm -rf "$DB_DIR"
  mkdir -p "$DB_PARENT"
  cp -r "$ADVISORY_DB_SRC" "$DB_DIR"
  git -C "$DB_DIR" init -q
  git -C "$DB_DIR" add -A
  git -C "$DB_DIR" -c user.name=notify-platform -c user.email=ci@notify.invalid \
    commit -q -m "advisory-db snapshot $snapshot"
  rm -f "$DB_PARENT"/.snapshot-*
  touch "$DB_PARENT/.snapshot-$snapshot"
fi
echo "$DENY_BIN"
