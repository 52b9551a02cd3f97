#!/usr/bin/env bash
# The version matrix (noxfile.py) as CI runs it: the sessions that the main job's own
# install does not already cover. The main job's `pip install -e '.[test]'` is the
# `latest` session's environment and runs the whole suite, so CI runs the others here:
# the oldest allowed versions, the newest released OpenTelemetry SDK forced past the
# pins, and every shortcut on its public path; each on the focused tests (unit tests
# with the private-surface contract, metrics and export, the span pipeline).
# Measured on the shared 2-core machine (2026-12-04, load average 11-15 from other
# jobs): 10 min 27 s wall for the three sessions, 2 min 48 s of CPU (installs included).
#
# Usage: scripts/version-matrix.sh [session ...]   (default: oldest newest_sdk public_paths)
# Needs the services of scripts/test-services.sh and nox (in the test extra).
set -Eeuo pipefail
cd "$(dirname "$0")/.."

sessions=("$@")
if [ ${#sessions[@]} -eq 0 ]; then
  sessions=(oldest newest_sdk public_paths)
fi
printf '\n=== Version matrix (noxfile.py): %s\n' "${sessions[*]}"
start=$SECONDS
# A clean clone has no .nox; a developer's stale one must not decide what is tested.
python -m nox --no-reuse-existing-virtualenvs --sessions "${sessions[@]}"
echo "version matrix (${sessions[*]}): $((SECONDS - start)) s"
