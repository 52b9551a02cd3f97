#!/usr/bin/env bash
# The version matrix (noxfile.py) as CI runs it: the sessions that the main job's own
# install does not already cover. The main job's `pip install -e '.[test]'` is the
# `latest` session's environment and runs the whole suite, so CI runs the others here:
# - oldest: every requirement at its pyproject.toml floor; the whole suite;
# - public_paths: every private-surface shortcut on its public path; the whole suite;
# - newest_sdk: the newest released OpenTelemetry SDK forced past the pins; the focused
#   tests (private-surface contract, metrics and export, span pipeline): it differs from
#   `latest` only in the OpenTelemetry core distributions those tests exercise, and a
#   third whole-suite run would cost ~8 min of CI per submission (noxfile.py says why).
# Measured (2026-12-04, 2-core machine shared with four other jobs, load average 6-8),
# each session from a new virtualenv, install included: oldest (whole suite) 12 min
# 45 s wall / 4 min 30 s CPU; public_paths (whole suite) 11 min 35 s / 4 min 54 s;
# newest_sdk (focused, 626 tests) 58 s / 46 s (whole suite: 13 min 6 s / 4 min 27 s).
# So 25 min 18 s wall on that loaded machine. On a machine of its own the whole suite
# takes ~7.5 min (the main job), so this step is about 18 min there.
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
