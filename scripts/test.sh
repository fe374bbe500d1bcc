#!/usr/bin/env bash
# README command 2: set up and run every test. Starts a throwaway PostgreSQL cluster for the
# controller tests (installing it with apt when run as root and it is missing).
source "$(dirname "$0")/venv.sh" "[test]"
cd "$ROOT"
# System parts the tests use for real: GNOME Keyring over D-Bus (the OS credential store)
# and Xvfb. Installed only when missing and only as root; CI's .ci/run installs them first.
if [ "$(id -u)" = 0 ] && ! command -v gnome-keyring-daemon >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnome-keyring dbus >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnome-keyring dbus >/dev/null; }
fi
if [ -z "${KEYWORKER_TEST_PG_URL:-}" ] && [ -z "${KEYWORKER_SKIP_PG:-}" ] && [ -f .ci/start-postgres ]; then
  eval "$(bash .ci/start-postgres)"
fi
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
exec "$VENV/bin/python" -m pytest "$@"
