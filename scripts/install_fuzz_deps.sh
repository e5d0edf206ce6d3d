#!/usr/bin/env bash
# Installs what fuzz/run_fuzz.sh needs on Debian: clang, its libFuzzer and
# sanitizer runtimes (libclang-rt-<ver>-dev) and the LLVM OpenMP runtime
# (libomp-<ver>-dev, for -fopenmp with clang). Idempotent; exits non-zero
# when they cannot be installed.
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
install() {
  local missing=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  echo "installing:$missing"
  [ -n "${APT_UPDATED:-}" ] || { $SUDO apt-get update -qq; APT_UPDATED=1; }
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
}
install clang
ver=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
[ -n "$ver" ] || { echo "install_fuzz_deps.sh: cannot tell the clang version" >&2; exit 1; }
install "libclang-rt-$ver-dev" "libomp-$ver-dev"
