#!/usr/bin/env python3
"""Validates rendered Kubernetes objects against their schemas, offline.

Every object of the given multi-document YAML files (the output of `kubectl kustomize`) is
checked against:
  - the Kubernetes OpenAPI schemas of each version in --kubernetes-version, strictly (an
    unknown field is an error, as with kubectl's default strict field validation), with the
    schemas bundled in PyPI `kubernetes-validate`;
  - for the custom resources, the schemas in deploy/k8s/schemas/ (written for this repository
    from the KEDA and External Secrets documentation; see the $comment in each).
An object of any other kind (no schema known) is an error too: nothing goes unchecked.

  check-manifests.py FILE...              exit 1 and name object and field on any error
  check-manifests.py --self-test          every deploy/k8s/tests/invalid-*.yaml must fail, with
                                          the message its `# expect:` line names

Run with the python of the kubernetes-validate venv (deploy/check-k8s.sh does): it needs
kubernetes_validate, jsonschema and PyYAML.
"""

import argparse
import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

import fixtures

HERE = os.path.dirname(os.path.abspath(__file__))
# The oldest and the newest Kubernetes minor the manifests are meant for.
DEFAULT_VERSIONS = ["1.31.0", "1.35.0"]
# apiVersion/kind → schema file under schemas/.
CUSTOM = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("external-secrets.io/v1", "ExternalSecret"): "external-secrets-externalsecret.json",
}


def load_objects(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def custom_validator(api_version, kind):
    name = CUSTOM.get((api_version, kind))
    if name is None:
        return None
    with open(os.path.join(HERE, "schemas", name), encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def object_errors(obj, versions):
    """The schema errors of one object, as readable lines (empty when valid)."""
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        return ["not a Kubernetes object (no apiVersion/kind)"]
    api_version, kind = obj["apiVersion"], obj["kind"]
    validator = custom_validator(api_version, kind)
    if validator is not None:
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        ]
    if "." in api_version.split("/")[0] and not api_version.split("/")[0].endswith(".k8s.io"):
        return [f"no schema for the custom resource {api_version} {kind}: add one under deploy/k8s/schemas/"]
    errors = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"Kubernetes {version} has no {api_version} {kind}")
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            errors.append(f"Kubernetes {version}: {where}: {e.message}")
    return errors


def check_files(paths, versions):
    failures = 0
    count = 0
    for path in paths:
        for obj in load_objects(path):
            count += 1
            name = f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"
            for line in object_errors(obj, versions):
                failures += 1
                print(f"[check-manifests] {os.path.basename(path)}: {name}: {line}", file=sys.stderr)
    return count, failures


def self_test(versions):
    return fixtures.self_test(
        "check-manifests",
        os.path.join(HERE, "tests", "invalid-*.yaml"),
        lambda path: [line for obj in load_objects(path) for line in object_errors(obj, versions)],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--kubernetes-version", action="append", dest="versions")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    versions = args.versions or DEFAULT_VERSIONS
    if args.self_test:
        return self_test(versions)
    if not args.files:
        parser.error("no files given")
    count, failures = check_files(args.files, versions)
    if failures:
        print(f"[check-manifests] {failures} error(s) in {count} objects", file=sys.stderr)
        return 1
    print(f"[check-manifests] {count} objects valid (Kubernetes {', '.join(versions)}, strict; KEDA and "
          "External Secrets schemas from deploy/k8s/schemas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
