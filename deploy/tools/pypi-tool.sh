#!/usr/bin/env bash
# Installs one pinned PyPI checker into its own venv cached OUTSIDE the clone
# ($HOME/.cache/notify-platform/tools/venv-<package>-<version>), reused by every clone and by CI,
# reinstalled only when the pin changes (older pins of the same package are removed then).
# Prints the venv's bin directory on stdout; progress goes to stderr.
#
#   bin=$(bash deploy/tools/pypi-tool.sh check-jsonschema 0.39.0)
#   "$bin/check-jsonschema" ...
#
# The deployment checks pin their tools where they use them; this is the one installer.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <pypi-package> <version>" >&2
  exit 2
fi
package=$1
version=$2
NOTIFY_CACHE="${NOTIFY_CACHE:-$HOME/.cache/notify-platform}"
venv="$NOTIFY_CACHE/tools/venv-$package-$version"

if [ -f "$venv/.installed" ]; then
  echo "[pypi-tool] $package $version already installed at $venv" >&2
else
  echo "[pypi-tool] installing $package $version into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$package==$version" >&2
  touch "$venv/.installed"
  # An older pin of this package is dead weight once the pin moves (a name that merely starts
  # with this one, e.g. foo-bar for foo, is another package: its suffix is not a version).
  for old in "$NOTIFY_CACHE/tools/venv-$package-"*; do
    [ "$old" = "$venv" ] && continue
    suffix=${old#"$NOTIFY_CACHE/tools/venv-$package-"}
    [[ $suffix =~ ^[0-9][0-9A-Za-z.]*$ ]] && rm -rf "$old"
  done
fi
echo "$venv/bin"
