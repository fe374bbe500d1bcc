# Sourced by start.sh and test.sh: make (or reuse) .venv and install Keyworker into it.
# KEYWORKER_VENV overrides the folder. Extras to install are passed as $1 (e.g. "[test]").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KEYWORKER_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Keyworker needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1)." >&2
  exit 2
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install --quiet -e "$ROOT${1:-}"
