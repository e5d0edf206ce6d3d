#!/usr/bin/env bash
# The test command: builds (if needed) and runs the whole CTest suite.
# Usage: scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
scripts/build.sh "$dir" "$@"
cd "$dir"
# A per-test limit, so one hung test fails the run instead of stalling it.
ctest --output-on-failure --timeout 900 -j"$(nproc)"
