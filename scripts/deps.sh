#!/usr/bin/env bash
# Installs what building, the dev cluster and the tests need on Debian 12.
# Idempotent: packages already present are not fetched again.
#   scripts/deps.sh build   - compiler side (cgo libvirt binding)
#   scripts/deps.sh test    - build + what the test suite drives for real
set -euo pipefail
what=${1:-build}

pkgs=(gcc libc6-dev make git pkg-config libvirt-dev libvirt0 ca-certificates)
if [ "$what" = test ]; then
  # rpm: checks the .rpm files; systemd: systemd-analyze verify (no systemd needs to run);
  # iptables: a dependency of bulwark-agent, which the package tests install with dpkg -i.
  # chromium: the dashboard tests (ui, e2e) drive it headless through chromedp.
  pkgs+=(libvirt-clients libxml2-utils iproute2 procps fence-agents rpm systemd iptables chromium)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    echo "deps: Go is at /usr/local/go/bin; add it to PATH" >&2
  else
    echo "deps: Go 1.21 or newer is needed (the Makefile then fetches go1.27.3 through the module proxy); install it from https://go.dev/dl or Debian backports" >&2
  fi
  exit 1
fi
