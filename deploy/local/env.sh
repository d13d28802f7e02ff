# Shared locations for the local stack; sourced by the other scripts.
# Tools and build artefacts live OUTSIDE the clone so fresh clones (CI) reuse them.
NOTIFY_CACHE="${NOTIFY_CACHE:-$HOME/.cache/notify-platform}"
TANSU_VERSION="0.6.0"
RIVVEN_SCHEMA_VERSION="0.0.22"
TOOLS_DIR="$NOTIFY_CACHE/tools"
TANSU_ROOT="$TOOLS_DIR/tansu-$TANSU_VERSION"
RIVVEN_ROOT="$TOOLS_DIR/rivven-schema-$RIVVEN_SCHEMA_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"
RIVVEN_BIN="$RIVVEN_ROOT/bin/rivven-schema"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$NOTIFY_CACHE/target}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${NOTIFY_RUN_DIR:-$REPO_ROOT/.run}"
# A stack is named so that the test suite can run its own (fresh, on other ports) beside
# the one `make run` keeps.
STACK_NAME="${STACK_NAME:-dev}"
BROKER_PORT="${BROKER_PORT:-9092}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
KAFKA_BOOTSTRAP="127.0.0.1:$BROKER_PORT"
SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
SMTP_PORT="${SMTP_PORT:-2525}"
