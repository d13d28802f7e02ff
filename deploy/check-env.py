#!/usr/bin/env python3
"""Checks that docker-compose.yml gives each service only APP_* variables its code reads.

For every service of the compose file, each APP_* variable of its `environment:` (map or list
syntax, YAML anchors and merge keys resolved) must appear as a string literal "APP_..." in the
Rust sources of the service's crate or of the shared crates every service may use
(libs/kit, libs/kafka, libs/lookup, libs/worker, libs/providers). A variable that no source names is
a typo or a setting the code does not have: it would be silently ignored at run time, so it is
reported, naming the service and the variable, and the exit status is 1.

A service whose crate does not exist yet is skipped with a notice (not a failure), so the
compose file may describe services that are still being written.

  python3 deploy/check-env.py                 check ./docker-compose.yml of this repo
  python3 deploy/check-env.py --compose F --repo-root D
  python3 deploy/check-env.py --self-test     prove on a made-up compose file and made-up
                                              sources that a misspelt variable is reported

Standard library plus a YAML parser: PyYAML, or ruamel.yaml (the check-jsonschema venv made by
deploy/check-compose.sh ships it; without either, the script re-runs itself with that venv's
python).
"""

import argparse
import contextlib
import glob
import io
import os
import re
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# compose service → its crate (relative to the repo root).
SERVICE_CRATES = {
    "gateway": "gateway",
    "outbox-relay": "outbox-relay",
    "user-svc": "user-svc",
    "template-svc": "template-svc",
    "email-worker": "email-worker",
    "push-worker": "push-worker",
    "status-projector": "status-projector",
    "ingest": "ingest",
    "register-schemas": "schemas",
    "notifyctl": "tools/notifyctl",
}
# Crates any service may take settings from (those that do not exist are ignored).
SHARED_CRATES = ["libs/kit", "libs/kafka", "libs/lookup", "libs/worker", "libs/providers"]

LITERAL = re.compile(r'"(APP_[A-Z0-9_]+)"')


# --------------------------------------------------------------------------- YAML
def _reexec_with_venv_python():
    if os.environ.get("NOTIFY_REEXEC"):
        return
    cache = os.environ.get("NOTIFY_CACHE", os.path.expanduser("~/.cache/notify-platform"))
    pythons = sorted(glob.glob(os.path.join(cache, "tools", "venv-check-jsonschema-*", "bin", "python")))
    if pythons:
        os.environ["NOTIFY_REEXEC"] = "1"
        os.execv(pythons[-1], [pythons[-1]] + sys.argv)


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml  # PyYAML: safe_load resolves anchors and `<<` merge keys

        return yaml.safe_load(text)
    except ImportError:
        pass
    try:
        from ruamel.yaml import YAML

        return YAML(typ="safe", pure=True).load(text)
    except ImportError:
        pass
    _reexec_with_venv_python()
    sys.exit("check-env: no YAML parser (PyYAML or ruamel.yaml); run deploy/check-compose.sh first, it installs one")


# --------------------------------------------------------------------------- the check
def app_variables(service):
    """APP_* names of a service's `environment:` (map or list of KEY[=VALUE])."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        names = env.keys()
    else:
        names = [str(item).split("=", 1)[0] for item in env]
    return sorted({str(n).strip() for n in names if str(n).strip().startswith("APP_")})


def literals_in(repo_root, crate):
    """Every "APP_..." string literal of the .rs files under <crate>/src."""
    found = set()
    for path in glob.glob(os.path.join(repo_root, crate, "src", "**", "*.rs"), recursive=True):
        with open(path, encoding="utf-8", errors="replace") as f:
            found.update(LITERAL.findall(f.read()))
    return found


INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)


def undocumented_interpolations(compose_path, env_example):
    """${VARIABLES} of the compose file that .env.example does not assign."""
    with open(compose_path, encoding="utf-8") as f:
        used = set(INTERPOLATION.findall(f.read()))
    if not os.path.exists(env_example):
        return sorted(used)
    with open(env_example, encoding="utf-8") as f:
        documented = set(ASSIGNMENT.findall(f.read()))
    return sorted(used - documented)


def check(compose_path, repo_root):
    """Returns (errors, notices): lists of messages."""
    compose = load_yaml(compose_path) or {}
    services = compose.get("services") or {}
    errors, notices = [], []
    env_example = os.path.join(os.path.dirname(os.path.abspath(compose_path)), ".env.example")
    for var in undocumented_interpolations(compose_path, env_example):
        errors.append(
            f"${{{var}}} is used in {os.path.basename(compose_path)} but .env.example does not document it "
            f"(add `{var}=<default>` with a comment)"
        )
    shared = [c for c in SHARED_CRATES if os.path.isdir(os.path.join(repo_root, c))]
    shared_literals = set()
    for c in shared:
        shared_literals |= literals_in(repo_root, c)
    for name in sorted(services):
        variables = app_variables(services[name] or {})
        if not variables:
            continue
        crate = SERVICE_CRATES.get(name)
        if crate is None:
            errors.append(
                f"service '{name}' is given {', '.join(variables)} but has no crate mapping: "
                f"add it to SERVICE_CRATES in deploy/check-env.py"
            )
            continue
        if not os.path.isdir(os.path.join(repo_root, crate)):
            notices.append(f"service '{name}': {crate} does not exist yet, skipped ({len(variables)} APP_* variables unchecked)")
            continue
        known = literals_in(repo_root, crate) | shared_literals
        searched = ", ".join(f"{c}/src" for c in [crate] + shared)
        for var in variables:
            if var not in known:
                errors.append(
                    f"service '{name}': {var} is set in {os.path.basename(compose_path)} but no "
                    f'"{var}" literal appears in {searched} (a typo, or a setting this service does not read)'
                )
    return errors, notices


def report(errors, notices, compose_path):
    for n in notices:
        print(f"[check-env] NOTICE: {n}")
    for e in errors:
        print(f"[check-env] ERROR: {e}", file=sys.stderr)
    if errors:
        print(f"[check-env] {len(errors)} problem(s) in {compose_path}", file=sys.stderr)
        return 1
    print(f"[check-env] every APP_* variable of {compose_path} is read by its service")
    return 0


# --------------------------------------------------------------------------- self-test
FAKE_COMPOSE = """
x-common: &common
  APP_HOST: 0.0.0.0
  APP_LOG_FORMAT: json
services:
  gateway:
    environment:
      <<: *common
      APP_PORT: "8080"
      APP_IDEMPOTENCY_TTL_SECS: "60"
  outbox-relay:
    environment:
      - APP_HOST=0.0.0.0
      - APP_KAFKA_BOOTSTRAP=kafka:9092
      - APP_RELAY_BATCH_SIZE=10
  email-worker:
    environment:
      APP_SMTP_HOST: mailpit
  postgres:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: not-an-app-variable
"""

FAKE_SOURCES = {
    "gateway/src/settings.rs": 'let h = settings::string("APP_HOST", "127.0.0.1");\n'
    'let p = settings::parse("APP_PORT", 8080)?;\n'
    'let t = settings::parse("APP_IDEMPOTENCY_TTL_SECS", 86_400)?;\n',
    "outbox-relay/src/settings.rs": 'settings::string("APP_HOST", "x");\n'
    'settings::parse("APP_RELAY_BATCH_SIZE", 1000)?;\n',
    "libs/kit/src/telemetry.rs": 'std::env::var("APP_LOG_FORMAT")\n',
    "libs/kafka/src/lib.rs": '/// `APP_KAFKA_BOOTSTRAP` (default 127.0.0.1:9092)\nsettings::string("APP_KAFKA_BOOTSTRAP", "")\n',
}


def self_test():
    with tempfile.TemporaryDirectory(prefix="check-env-") as root:
        for rel, text in FAKE_SOURCES.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(text)
        compose = os.path.join(root, "docker-compose.yml")

        def run(text):
            with open(compose, "w", encoding="utf-8") as f:
                f.write(text)
            return check(compose, root)

        # 1. The correct file passes; the service without a crate is skipped, not failed.
        errors, notices = run(FAKE_COMPOSE)
        assert errors == [], f"a correct compose file was rejected: {errors}"
        assert any("email-worker" in n and "skipped" in n for n in notices), notices

        # 2. Misspelt variables are reported with their service, in map and list syntax.
        typos = FAKE_COMPOSE.replace("APP_IDEMPOTENCY_TTL_SECS:", "APP_IDEMPOTENCY_TTL_SEC:").replace(
            "APP_RELAY_BATCH_SIZE=", "APP_RELAY_BACTH_SIZE="
        )
        errors, _ = run(typos)
        assert len(errors) == 2, errors
        assert any("'gateway'" in e and "APP_IDEMPOTENCY_TTL_SEC " in e for e in errors), errors
        assert any("'outbox-relay'" in e and "APP_RELAY_BACTH_SIZE" in e for e in errors), errors

        # 3. A variable read by ANOTHER service's crate does not count for this one.
        errors, _ = run(FAKE_COMPOSE.replace('APP_PORT: "8080"', 'APP_PORT: "8080"\n      APP_RELAY_BATCH_SIZE: "5"'))
        assert len(errors) == 1 and "'gateway'" in errors[0] and "APP_RELAY_BATCH_SIZE" in errors[0], errors

        # 4. A variable inherited through a YAML merge key is checked too (kit has no APP_HOST).
        errors, _ = run(FAKE_COMPOSE.replace("APP_LOG_FORMAT: json", "APP_LOG_FROMAT: json"))
        assert len(errors) == 1 and "'gateway'" in errors[0] and "APP_LOG_FROMAT" in errors[0], errors

        # 5. A service of ours with APP_* variables but no crate mapping is an error.
        errors, _ = run(FAKE_COMPOSE + "  mystery-svc:\n    environment:\n      APP_PORT: '1'\n")
        assert len(errors) == 1 and "mystery-svc" in errors[0] and "SERVICE_CRATES" in errors[0], errors

        # 6. Every ${VARIABLE} the compose file interpolates must be documented in .env.example.
        with open(os.path.join(root, ".env.example"), "w", encoding="utf-8") as f:
            f.write("# the port\nGATEWAY_PORT=8080\n")
        errors, _ = run(FAKE_COMPOSE.replace('"8080"', '"${GATEWAY_PORT:-8080}"').replace("json", "${LOG_FMT}"))
        assert len(errors) == 1 and "${LOG_FMT}" in errors[0] and ".env.example" in errors[0], errors
        errors, _ = run(FAKE_COMPOSE.replace("json", "$${NOT_INTERPOLATED}"))
        assert errors == [], errors

        # 7. The exit status reflects the errors, and the report names service and variable.
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = report(*run(typos), compose)
        assert status == 1, status
        assert "service 'gateway': APP_IDEMPOTENCY_TTL_SEC is set" in err.getvalue(), err.getvalue()
        assert "email-worker" in out.getvalue(), out.getvalue()
    print("[check-env] self-test passed: misspelt variables are reported with their service")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compose", default=os.path.join(REPO_ROOT, "docker-compose.yml"))
    parser.add_argument("--repo-root", default=REPO_ROOT)
    parser.add_argument("--self-test", action="store_true", help="run the built-in test and exit")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    errors, notices = check(args.compose, args.repo_root)
    return report(errors, notices, os.path.relpath(args.compose, args.repo_root))


if __name__ == "__main__":
    sys.exit(main())
