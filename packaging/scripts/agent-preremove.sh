#!/bin/sh
# bulwark-agent pre-remove: Debian prerm (remove, upgrade, ...) and RPM %preun
# (0 on erase, 1 on upgrade). On removal (not on upgrade) it stops and
# disables the service where systemd runs, and drops the bulwarkd alternative.
set -e

case "$1" in
  remove|deconfigure|0) ;;
  *) exit 0 ;;
esac

systemd_running() {
  [ -d /run/systemd/system ] || return 1
  if command -v systemd-detect-virt >/dev/null 2>&1; then
    if systemd-detect-virt --quiet --chroot 2>/dev/null; then return 1; fi
    return 0
  else
    [ "$(stat -c %d:%i / 2>/dev/null)" = "$(stat -c %d:%i /proc/1/root/. 2>/dev/null)" ]
  fi
}

if systemd_running; then
  systemctl --no-reload disable bulwark-agent.service >/dev/null 2>&1 || true
  systemctl stop bulwark-agent.service >/dev/null 2>&1 || true
fi
if command -v update-alternatives >/dev/null 2>&1; then
  update-alternatives --remove bulwarkd /usr/lib/bulwark-agent/bulwarkd >/dev/null 2>&1 || true
fi
exit 0
