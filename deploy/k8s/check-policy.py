#!/usr/bin/env python3
"""Policy check of rendered Kubernetes manifests: what the schemas cannot say.

For every container (and init container) of every workload (Deployment, StatefulSet,
DaemonSet, Job, CronJob):
  - resource requests and limits, both cpu and memory;
  - runAsNonRoot (the container's or its pod's), allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true;
  - long-running workloads (not Jobs): a readiness and a liveness probe, and the liveness probe
    must not be the readiness probe (liveness must not fail because a dependency is down: the
    services serve it on GET /health/live), and terminationGracePeriodSeconds set.
For the platform as a whole:
  - each Deployment/StatefulSet has a PodDisruptionBudget selecting its pods;
  - a workload an HPA or a KEDA ScaledObject scales sets no `replicas` (each apply would reset it);
  - every APP_* variable a service's container gets (env, and envFrom ConfigMaps) is one its
    code reads (the rule and the crate list of deploy/check-env.py, which checks the compose
    file the same way): a misspelt variable would be silently ignored;
  - no Secret object is rendered (secrets come from the ExternalSecret, never from the repo);
  - each ScaledObject's maxReplicaCount <= APP_KAFKA_PARTITIONS (ConfigMap notify-config), and
    its kafka triggers name the consumer groups the services use: `<APP_KAFKA_TOPIC_PREFIX>
    <service>` and, for the delivery workers, `<prefix><service>.priority` too.

  check-policy.py FILE...        exit 1 naming object, container and rule on any violation
  check-policy.py --released F   also: no image is a base placeholder (notify-platform/…): a
                                 release pins every one of ours by digest
  check-policy.py --self-test    every deploy/k8s/tests/policy-*.yaml must fail, with the message
                                 its `# expect:` line names

Standard library plus PyYAML (deploy/check-k8s.sh runs it with the kubernetes-validate venv).
"""

import argparse
import importlib.util
import os
import sys

import yaml

import fixtures

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))


def _check_env():
    spec = importlib.util.spec_from_file_location("check_env", os.path.join(REPO_ROOT, "deploy", "check-env.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK_ENV = _check_env()
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
# Workers that consume a priority topic in a second group `<group>.priority`.
PRIORITY_GROUP_SERVICES = {"email-worker", "push-worker"}


def load_objects(paths):
    objects = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            objects.extend(doc for doc in yaml.safe_load_all(f) if isinstance(doc, dict))
    return objects


def name_of(obj):
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def pod_spec(obj):
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def pod_labels(obj):
    spec = obj.get("spec") or {}
    return (((spec.get("template") or {}).get("metadata")) or {}).get("labels") or {}


def container_problems(obj, pod, container):
    kind = obj["kind"]
    problems = []
    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(section) or {}):
                problems.append(f"no {resource} in resources.{section}")
    sc = container.get("securityContext") or {}
    pod_sc = pod.get("securityContext") or {}
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        problems.append("runAsNonRoot is not true (container or pod securityContext)")
    if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
        problems.append("runAsUser is 0 (root)")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if kind in LONG_RUNNING and container in (pod.get("containers") or []):
        readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
        if not readiness:
            problems.append("no readinessProbe")
        if not liveness:
            problems.append("no livenessProbe")
        if readiness and liveness and readiness.get("httpGet") and readiness.get("httpGet") == liveness.get("httpGet"):
            problems.append("livenessProbe is the readinessProbe: a dependency outage would restart the pod")
    return problems


def selects(selector, labels):
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def config_value(objects, key):
    for obj in objects:
        name = (obj.get("metadata") or {}).get("name", "")
        if obj.get("kind") == "ConfigMap" and name.startswith("notify-config"):
            return (obj.get("data") or {}).get(key)
    return None


def config_maps(objects):
    return {(o.get("metadata") or {}).get("name"): (o.get("data") or {}) for o in objects if o.get("kind") == "ConfigMap"}


def variables_read_by(service, _cache={}):
    """The APP_* names the service's crate or the shared crates name, or None when unknown."""
    crate = CHECK_ENV.SERVICE_CRATES.get(service)
    if crate is None or not os.path.isdir(os.path.join(REPO_ROOT, crate)):
        return None
    if service not in _cache:
        names = CHECK_ENV.literals_in(REPO_ROOT, crate)
        for shared in CHECK_ENV.SHARED_CRATES:
            names |= CHECK_ENV.literals_in(REPO_ROOT, shared)
        _cache[service] = names
    return _cache[service]


def variable_problems(obj, container, maps):
    known = variables_read_by(container.get("name"))
    if known is None:
        return []
    given = {e["name"] for e in container.get("env") or [] if "name" in e}
    for source in container.get("envFrom") or []:
        ref = (source.get("configMapRef") or {}).get("name")
        given |= set(maps.get(ref, {}))
    return [f"{name} is not read by {container['name']}'s code (misspelt?)"
            for name in sorted(given) if name.startswith("APP_") and name not in known]


def platform_problems(objects):
    problems = []
    pdbs = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    scaled = set()
    for obj in objects:
        if obj.get("kind") == "HorizontalPodAutoscaler":
            ref = obj["spec"]["scaleTargetRef"]
            scaled.add((ref.get("kind"), ref.get("name")))
        elif obj.get("kind") == "ScaledObject":
            ref = obj["spec"]["scaleTargetRef"]
            scaled.add((ref.get("kind", "Deployment"), ref.get("name")))
    for obj in objects:
        kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name")
        if kind == "Secret":
            problems.append((name_of(obj), "a Secret is rendered: secrets come from the ExternalSecret, never from the repo"))
        if kind in ("Deployment", "StatefulSet"):
            labels = pod_labels(obj)
            if not any(selects(p["spec"].get("selector"), labels) for p in pdbs):
                problems.append((name_of(obj), "no PodDisruptionBudget selects its pods"))
            if (kind, name) in scaled and "replicas" in obj["spec"]:
                problems.append((name_of(obj), "sets replicas although an autoscaler owns them"))
    partitions = config_value(objects, "APP_KAFKA_PARTITIONS")
    prefix = config_value(objects, "APP_KAFKA_TOPIC_PREFIX") or ""
    for obj in objects:
        if obj.get("kind") != "ScaledObject":
            continue
        spec = obj["spec"]
        target = spec["scaleTargetRef"]["name"]
        if partitions is None:
            problems.append((name_of(obj), "no APP_KAFKA_PARTITIONS in ConfigMap notify-config to bound maxReplicaCount"))
        elif spec.get("maxReplicaCount", 100) > int(partitions):
            problems.append((name_of(obj), f"maxReplicaCount {spec.get('maxReplicaCount', 100)} > "
                                           f"APP_KAFKA_PARTITIONS {partitions}: the extra consumers would idle"))
        groups = {t["metadata"].get("consumerGroup") for t in spec.get("triggers", []) if t.get("type") == "kafka"}
        wanted = {prefix + target}
        if target in PRIORITY_GROUP_SERVICES:
            wanted.add(prefix + target + ".priority")
        for group in sorted(wanted - groups):
            problems.append((name_of(obj), f"no kafka trigger on consumer group '{group}'"))
        for group in sorted(groups - wanted):
            problems.append((name_of(obj), f"kafka trigger on '{group}', a group {target} does not use"))
    return problems


def check(objects, released=False):
    problems = []
    maps = config_maps(objects)
    for obj in objects:
        if obj.get("kind") not in WORKLOADS:
            continue
        pod = pod_spec(obj)
        if obj["kind"] in LONG_RUNNING and "terminationGracePeriodSeconds" not in pod:
            problems.append((name_of(obj), "no terminationGracePeriodSeconds (the default 30 s may cut a drain)"))
        for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            where = f"{name_of(obj)} container {container.get('name')}"
            for problem in container_problems(obj, pod, container) + variable_problems(obj, container, maps):
                problems.append((where, problem))
            image = container.get("image", "")
            if released and image.startswith("notify-platform/"):
                problems.append((where, f"image {image} is the base's placeholder, not a released digest"))
            elif released and image.startswith("ghcr.io/") and "@sha256:" not in image:
                problems.append((where, f"image {image} is not pinned by digest"))
    return problems + platform_problems(objects)


def self_test():
    return fixtures.self_test(
        "check-policy",
        os.path.join(HERE, "tests", "policy-*.yaml"),
        lambda path: [f"{where}: {what}" for where, what in check(load_objects([path]))],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--released", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not args.files:
        parser.error("no files given")
    objects = load_objects(args.files)
    problems = check(objects, released=args.released)
    for where, what in problems:
        print(f"[check-policy] {where}: {what}", file=sys.stderr)
    if problems:
        return 1
    workloads = sum(1 for o in objects if o.get("kind") in WORKLOADS)
    print(f"[check-policy] {workloads} workloads: limits, probes, non-root, read-only root, no escalation, "
          "APP_* names, disruption budgets, autoscaling bounds: all good")
    return 0


if __name__ == "__main__":
    sys.exit(main())
