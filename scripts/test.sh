#!/usr/bin/env bash
# README command 2: set up and run every test. Starts a throwaway PostgreSQL cluster for the
# controller tests (installing it with apt when run as root and it is missing).
source "$(dirname "$0")/venv.sh" "[test]"
cd "$ROOT"
if [ -z "${KEYWORKER_TEST_PG_URL:-}" ] && [ -z "${KEYWORKER_SKIP_PG:-}" ] && [ -f .ci/start-postgres ]; then
  eval "$(bash .ci/start-postgres)"
fi
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
exec "$VENV/bin/python" -m pytest "$@"
