#!/usr/bin/env bash
# Installs the Debian packages spqr needs to build and test. Idempotent.
set -euo pipefail
PKGS="build-essential cmake pkg-config libopenblas-dev libopenblas0-pthread liblapacke-dev libcjson-dev"
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
