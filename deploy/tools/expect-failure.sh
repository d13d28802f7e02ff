# Sourced by the deployment checks' self-tests (deploy/check-ci.sh, deploy/check-k8s.sh):
#   expect_failure <what> <expected text> <command...>
# succeeds only when the command fails AND its output names the expected text (a check that
# fails for another reason proves nothing). Uses the caller's `log`.
expect_failure() {
  local what=$1 expected=$2 output
  shift 2
  if output=$("$@" 2>&1); then
    log "self-test: $what passed but must fail" >&2
    return 1
  fi
  if ! grep -qF -- "$expected" <<<"$output"; then
    log "self-test: $what failed, but without '$expected':" >&2
    echo "$output" >&2
    return 1
  fi
  log "self-test: $what rejected as expected ($expected)"
}
