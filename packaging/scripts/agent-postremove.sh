#!/bin/sh
# bulwark-agent post-remove: Debian postrm (remove, purge, upgrade, ...) and
# RPM %postun (0 on erase, 1 on upgrade). Tells systemd the unit is gone.
# Configuration files stay until a purge (dpkg -P), as dpkg and rpm do;
# the bulwark user stays too, as files may still belong to it.
set -e

case "$1" in
  remove|purge|0) ;;
  *) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
