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
  # etcd-server: /usr/bin/etcd (3.4.23), which the etcd-auth tests run as processes of their own
  # (clusterstore/etcd/etcdtest); its own etcd.service is kept from starting (below).
  pkgs+=(libvirt-clients libxml2-utils iproute2 procps fence-agents rpm systemd iptables chromium etcd-server)
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
  # etcd-server's postinst enables etcd.service and starts it (a member on 127.0.0.1:2379,
  # data in /var/lib/etcd). Where no policy-rc.d exists, a temporary one denies that start
  # (invoke-rc.d and deb-systemd-invoke ask it; exit 101: do not run); afterwards the unit is
  # disabled and stopped, where systemd runs.
  etcd_new=false policy=/usr/sbin/policy-rc.d own_policy=false
  [[ " ${missing[*]} " == *" etcd-server "* ]] && etcd_new=true
  if $etcd_new && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/deps.sh: keep etcd-server from starting etcd on install.\ncase "$1" in etcd|etcd.service) exit 101;; esac\nexit 0\n' |
      $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"
    own_policy=true
    trap '$sudo rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if $own_policy; then
    $sudo rm -f "$policy"
    trap - EXIT
  fi
  if $etcd_new && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now etcd.service >/dev/null 2>&1 || true
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    echo "deps: Go is at /usr/local/go/bin; add it to PATH" >&2
  else
    echo "deps: Go 1.21 or newer is needed (the Makefile then fetches go1.27.3 through the module proxy); install it from https://go.dev/dl or Debian backports" >&2
  fi
  exit 1
fi
