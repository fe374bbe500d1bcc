#!/usr/bin/env bash
# README command 1: set up and start Keyworker. Arguments go to keyworker-app, e.g.
#   bash scripts/start.sh demo --participants 200     (a profile with a synthetic caseload)
source "$(dirname "$0")/venv.sh" ""
exec "$VENV/bin/keyworker-app" "$@"
