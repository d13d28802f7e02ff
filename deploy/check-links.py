#!/usr/bin/env python3
"""Checks that every relative link of the documentation resolves.

Reads README.md, every Markdown file under docs/ and every crate's README.md (a top-level
folder's, or one under libs/ or tools/). For each inline link `[text](target)` whose target is
not a URL (`http:`, `https:`, `mailto:`) the file must exist relative to the page, and an
anchor (`page.md#section`, or `#section` on the same page) must be the slug of a heading of
that page, as GitHub makes it (lower case, punctuation dropped, spaces to hyphens). Links in
fenced code blocks and inline code are not links. Prints each broken link as
`file:line: target: why` and exits 1 if there is one.

  python3 deploy/check-links.py              check this repository
  python3 deploy/check-links.py --root D     check the repository at D
  python3 deploy/check-links.py --self-test  prove on made-up pages that a missing file and a
                                             missing anchor are reported, and a good link is not
"""

import argparse
import glob
import os
import re
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def pages(root):
    found = [os.path.join(root, "README.md")]
    found += glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True)
    found += glob.glob(os.path.join(root, "*", "README.md"))
    found += glob.glob(os.path.join(root, "libs", "*", "README.md"))
    found += glob.glob(os.path.join(root, "tools", "*", "README.md"))
    return sorted({p for p in found if os.path.isfile(p)})


def prose_lines(text):
    """(line number, line) outside fenced code blocks, with inline code removed."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield n, re.sub(r"`[^`]*`", "", line)


def slug(heading):
    s = re.sub(r"`", "", heading).strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    seen = {}
    out = set()
    with open(path, encoding="utf-8") as f:
        for _, line in prose_lines(f.read()):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            k = seen.get(base, 0)
            seen[base] = k + 1
            out.add(base if k == 0 else f"{base}-{k}")
    return out


def check(root):
    problems = []
    for page in pages(root):
        with open(page, encoding="utf-8") as f:
            text = f.read()
        for n, line in prose_lines(text):
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                dest = page if not file_part else os.path.normpath(os.path.join(os.path.dirname(page), file_part))
                where = f"{os.path.relpath(page, root)}:{n}: {target}"
                if not os.path.exists(dest):
                    problems.append(f"{where}: no such file {os.path.relpath(dest, root)}")
                elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                    problems.append(f"{where}: no heading with anchor #{anchor} in {os.path.relpath(dest, root)}")
    return problems


def self_test():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "docs"))
        with open(os.path.join(d, "README.md"), "w") as f:
            f.write(
                "# Top\n[good](docs/a.md#the-a-page) [gone](docs/missing.md)\n"
                "[bad anchor](docs/a.md#nowhere) [url](https://example.org/x)\n"
                "```\n[in code](nowhere.md)\n```\n`[inline](nowhere.md)`\n"
            )
        with open(os.path.join(d, "docs", "a.md"), "w") as f:
            f.write("# The A page\n[back](../README.md#top) [self](#the-a-page)\n")
        found = check(d)
    expected = {"README.md:2: docs/missing.md", "README.md:3: docs/a.md#nowhere"}
    got = {p.rsplit(": ", 1)[0] for p in found}
    if got != expected:
        print(f"[check-links] self-test FAILED: expected {sorted(expected)}, got {found}", file=sys.stderr)
        return 1
    print("[check-links] self-test passed: a missing file and a missing anchor are reported, good links are not")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=REPO_ROOT)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    problems = check(args.root)
    for p in problems:
        print(f"[check-links] {p}", file=sys.stderr)
    if problems:
        print(f"[check-links] {len(problems)} broken link(s)", file=sys.stderr)
        return 1
    print(f"[check-links] every relative link of {len(pages(args.root))} pages resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
