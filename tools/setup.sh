#!/usr/bin/env bash
# Installs what Berth needs on a Debian 12 machine, and only what is missing: the Debian packages
# (containerd for the stock ctr and the reference daemon, runc, docker-registry for registry
# tests, strace for the tests that check which thread syncs, containernetworking-plugins and
# iptables for pod networking through CNI, catatonit for the CRI tests' pause image) and the npm
# dependencies; with --with-reference-tools also ctr and containerd 2.4.2, prom2json, crictl and
# critest 1.37.0, and Debian's dynamic busybox (unpacked, for critest's look-alike images).
# Safe to run again: it does nothing when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(containerd runc attr zstd busybox-static docker-registry apache2-utils openssl strace containernetworking-plugins iptables tmux catatonit)

missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  # The package starts a system containerd; Berth never uses it, and tests run their own.
fi

# npm dependencies: install when node_modules is absent or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

# The containerd 2.x reference tools (ctr, containerd) that tests compare with, built once per
# machine outside the repo; only the test command asks for them (berthd itself never needs Go).
if [ "${1:-}" = "--with-reference-tools" ]; then
  bash tools/reference-tools.sh >&2
fi
