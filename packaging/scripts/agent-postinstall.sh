#!/bin/sh
# bulwark-agent post-install: Debian postinst (configure [old-version]) and
# RPM %post (1 on install, 2 or more on upgrade). It never starts, enables or
# restarts bulwark-agent.service, on a host, in a container or in a chroot:
# the service needs a configuration first, and restarting a running
# daemon of an HA cluster is the operator's call.
set -e

case "$1" in
  configure) first=yes; [ -z "$2" ] || first=no ;;
  1) first=yes ;;
  [2-9]|[1-9][0-9]*) first=no ;;
  *) exit 0 ;; # abort-upgrade, abort-remove...: nothing to undo
esac

# systemd is managing this machine (not a container without it, not a chroot).
systemd_running() {
  [ -d /run/systemd/system ] || return 1
  if command -v systemd-detect-virt >/dev/null 2>&1; then
    if systemd-detect-virt --quiet --chroot 2>/dev/null; then return 1; fi
    return 0
  else
    [ "$(stat -c %d:%i / 2>/dev/null)" = "$(stat -c %d:%i /proc/1/root/. 2>/dev/null)" ]
  fi
}

# /usr/bin/bulwarkd for the operator; bulwark-server and bulwark-agent each
# ship the same binary under /usr/lib/bulwark-*/ and their units use it there.
if command -v update-alternatives >/dev/null 2>&1; then
  update-alternatives --install /usr/bin/bulwarkd bulwarkd /usr/lib/bulwark-agent/bulwarkd 50 >/dev/null
fi

if systemd_running; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi

if [ "$first" = yes ]; then
  echo "bulwark-agent: installed, not started. Edit /etc/bulwark/agent.yaml, check it with"
  echo "  bulwarkd config check /etc/bulwark/agent.yaml"
  echo "then: systemctl enable --now bulwark-agent"
else
  echo "bulwark-agent: upgraded; a running bulwark-agent keeps the old version until"
  echo "  systemctl restart bulwark-agent"
fi
exit 0
