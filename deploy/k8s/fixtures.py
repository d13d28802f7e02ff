"""The self-test both manifest checks share: each fixture must fail, with the message its
`# expect: <text>` line names (check-manifests.py and check-policy.py --self-test)."""

import glob
import os
import sys


def expect(path):
    """The text a fixture's `# expect:` line names, or None."""
    with open(path, encoding="utf-8") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("# expect:")), None)


def self_test(tag, pattern, problems_of):
    """Runs `problems_of(path)` (a list of messages) on every file matching `pattern`; 0 when
    each fails as its `# expect:` line says, 1 otherwise (and when there is no fixture)."""
    fixtures = sorted(glob.glob(pattern))
    if not fixtures:
        print(f"[{tag}] self-test: no fixtures match {pattern}", file=sys.stderr)
        return 1
    ok = True
    for path in fixtures:
        wanted, problems, name = expect(path), problems_of(path), os.path.basename(path)
        matching = [p for p in problems if not wanted or wanted in p]
        if not problems:
            print(f"[{tag}] self-test: {name} passed but must fail", file=sys.stderr)
            ok = False
        elif not matching:
            print(f"[{tag}] self-test: {name} failed, but not with '{wanted}': {problems}", file=sys.stderr)
            ok = False
        else:
            print(f"[{tag}] self-test: {name} rejected as expected ({matching[0]})")
    return 0 if ok else 1
