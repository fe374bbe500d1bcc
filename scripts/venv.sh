# Sourced by start.sh and test.sh: make (or reuse) .venv and install Keyworker into it.
# KEYWORKER_VENV overrides the folder. Extras to install are passed as $1 (e.g. "[test]").
#
# The install runs once, and again only when pyproject.toml changes (the package itself is
# installed editable, so code changes need nothing): a keyworker starting the app in a
# kitchen with no signal must not wait on, or fail at, a package index.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KEYWORKER_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Keyworker needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1)." >&2
  exit 2
fi
EXTRAS="${1:-}"
# What was installed: pyproject.toml's hash, per set of extras ("[test]" includes the base).
WANT="$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$ROOT/pyproject.toml")"
installed() {
  [ -x "$VENV/bin/python" ] || return 1
  local stamps=("$VENV/.keyworker-installed$EXTRAS") stamp
  if [ -z "$EXTRAS" ]; then
    stamps+=("$VENV/.keyworker-installed[test]")   # an install with extras includes the base
  fi
  for stamp in "${stamps[@]}"; do
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$WANT" ]; then
      return 0
    fi
  done
  return 1
}
if ! installed; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT$EXTRAS"
  echo "$WANT" > "$VENV/.keyworker-installed$EXTRAS"
fi
