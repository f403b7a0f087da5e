#!/usr/bin/env bash
# Tests the six packages in dist/ (scripts/packages.sh, `make packages`):
#
#   .rpm  rpm -qp: name, version, release, arch, requires and recommends,
#         file list, modes, config files marked %config(noreplace), digests,
#         and the scriptlets (identical to packaging/scripts/*).
#   .deb  dpkg-deb: fields, dependencies, file list, conffiles; then dpkg -i
#         on this machine: binaries answer --version with the version, commit
#         and date the Makefile stamped in; units and configs are in place;
#         systemd-analyze verify is clean; the packaged configs pass
#         `bulwarkd config check` (the server's as user bulwark); the bulwark
#         system user exists; nothing was started or enabled; a changed
#         config file survives a reinstall; dpkg -r removes binaries and
#         units but keeps the configs, dpkg -P removes those too.
#   scripts  every maintainer script with every argument dpkg and rpm pass
#         it, with systemd "running" (a private /run in a mount namespace and
#         a fake systemctl that logs its calls): only daemon-reload on
#         install, disable + stop on removal, nothing on upgrade, never start,
#         enable or restart; and nothing at all where systemd does not run.
#
# Needs root (it installs the .deb files and removes them again) and the
# packages' dependencies (scripts/deps.sh test installs them). What cannot
# run here is skipped LOUDLY with the reason. Prints "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
start=$(date +%s)

pass=0 fail=0 skip=0
ok() { echo "ok    $*"; pass=$((pass + 1)); }
bad() { echo "FAIL  $*"; fail=$((fail + 1)); }
skipped() { echo "SKIP  $*" >&2; echo "SKIP  $*"; skip=$((skip + 1)); }
finish() {
  echo "test-packages: $(($(date +%s) - start)) s"
  if [ "$skip" -gt 0 ]; then
    echo "packages: $pass passed, $fail failed, $skip skipped"
  else
    echo "packages: $pass passed, $fail failed"
  fi
  [ "$fail" = 0 ]
  exit
}
# check DESCRIPTION COMMAND...: the command must succeed.
check() {
  local desc=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$desc"; else bad "$desc"; printf '%s\n' "$out" | sed 's/^/      /' | head -40; fi
}
# same DESCRIPTION GOT WANT
same() {
  if [ "$2" = "$3" ]; then ok "$1"; else
    bad "$1"
    diff <(printf '%s\n' "$3") <(printf '%s\n' "$2") | sed 's/^/      /' | head -40
  fi
}
contains() { # DESCRIPTION HAYSTACK NEEDLE...
  local desc=$1 hay=$2 n missing=""
  shift 2
  for n in "$@"; do [[ $hay == *"$n"* ]] || missing+=" [$n]"; done
  if [ -z "$missing" ]; then ok "$desc"; else bad "$desc: lacks$missing"; printf '%s\n' "$hay" | sed 's/^/      /' | head -40; fi
}

pkgs=(bulwark-server bulwark-agent bulwarkctl)
declare -A deb rpm
for p in "${pkgs[@]}"; do
  d=(dist/"$p"_*.deb) r=(dist/"$p"-[0-9]*.rpm)
  if [ ${#d[@]} != 1 ] || [ ! -f "${d[0]}" ] || [ ${#r[@]} != 1 ] || [ ! -f "${r[0]}" ]; then
    bad "dist/ holds one .deb and one .rpm of $p (run make packages): ${d[*]} ${r[*]}"
    finish
  fi
  deb[$p]=${d[0]} rpm[$p]=${r[0]}
done
ok "dist/ holds six packages"
version=$(dpkg-deb -f "${deb[bulwarkctl]}" Version)

# Files each package ships (directories only where rpm must own them).
files_server="/etc/bulwark
/etc/bulwark/server.yaml
/usr/lib/bulwark-server
/usr/lib/bulwark-server/bulwarkd
/usr/lib/systemd/system/bulwark-server.service
/usr/share/doc/bulwark-server
/usr/share/doc/bulwark-server/examples
/usr/share/doc/bulwark-server/examples/server.yaml"
files_agent="/etc/bulwark
/etc/bulwark/agent.yaml
/usr/lib/bulwark-agent
/usr/lib/bulwark-agent/bulwarkd
/usr/lib/systemd/system/bulwark-agent.service
/usr/share/doc/bulwark-agent
/usr/share/doc/bulwark-agent/examples
/usr/share/doc/bulwark-agent/examples/agent-host-1.yaml
/usr/share/doc/bulwark-agent/examples/agent-host-2.yaml
/usr/share/doc/bulwark-agent/examples/agent-host-3.yaml"
files_ctl="/usr/bin/bulwarkctl"
declare -A files=([bulwark-server]=$files_server [bulwark-agent]=$files_agent [bulwarkctl]=$files_ctl)
declare -A conf=([bulwark-server]=/etc/bulwark/server.yaml [bulwark-agent]=/etc/bulwark/agent.yaml [bulwarkctl]="")
declare -A binary=([bulwark-server]=/usr/lib/bulwark-server/bulwarkd [bulwark-agent]=/usr/lib/bulwark-agent/bulwarkd [bulwarkctl]=/usr/bin/bulwarkctl)
declare -A deb_deps=([bulwark-server]="libc6, libvirt0, passwd" [bulwark-agent]="libc6, libvirt0, iptables" [bulwarkctl]="libc6")
declare -A deb_recs=([bulwark-server]="" [bulwark-agent]="libvirt-daemon-system, containerd" [bulwarkctl]="")
declare -A rpm_reqs=([bulwark-server]="glibc libvirt-libs shadow-utils" [bulwark-agent]="glibc iptables libvirt-libs" [bulwarkctl]="glibc")
declare -A rpm_recs=([bulwark-server]="" [bulwark-agent]="containerd libvirt-daemon" [bulwarkctl]="")
declare -A short=([bulwark-server]=server [bulwark-agent]=agent [bulwarkctl]="")

sorted() { tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//'; }

echo "== .rpm files (rpm -qp)"
if ! command -v rpm >/dev/null; then
  skipped "rpm checks: no rpm here (Debian package rpm; scripts/deps.sh test installs it)"
else
  rpm_version=${version%-*} rpm_release=${version##*-}
  for p in "${pkgs[@]}"; do
    f=${rpm[$p]}
    same "$p.rpm: name version release arch" "$(rpm -qp --qf '%{NAME} %{VERSION} %{RELEASE} %{ARCH}' "$f" 2>/dev/null)" "$p $rpm_version $rpm_release x86_64"
    contains "$p.rpm: summary, description, URL (rpm -qip)" "$(rpm -qip "$f" 2>/dev/null)" "Name        : $p" "URL         : https://github.com/bulwarkhq/bulwark" "Description :"
    same "$p.rpm: requires" "$(rpm -qp --requires "$f" 2>/dev/null | grep -v '^rpmlib(' | sorted)" "${rpm_reqs[$p]}"
    same "$p.rpm: recommends" "$(rpm -qp --recommends "$f" 2>/dev/null | sorted)" "${rpm_recs[$p]}"
    same "$p.rpm: file list (rpm -qlp)" "$(rpm -qlp "$f" 2>/dev/null | sort)" "$(sort <<<"${files[$p]}")"
    same "$p.rpm: config files, %config(noreplace)" "$(rpm -qp --qf '[%{FILEFLAGS:fflags}|%{FILENAMES}\n]' "$f" 2>/dev/null | awk -F'|' '$1 ~ /c/')" \
      "$([ -n "${conf[$p]}" ] && echo "cn|${conf[$p]}")"
    same "$p.rpm: $(basename "${binary[$p]}") is root-owned 0755" \
      "$(rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]' "$f" 2>/dev/null | grep " ${binary[$p]}$")" \
      "-rwxr-xr-x root root ${binary[$p]}"
    check "$p.rpm: digests (rpm -K)" rpm -K --nosignature "$f"
    if [ -n "${short[$p]}" ]; then
      s=${short[$p]}
      same "$p.rpm: %post is packaging/scripts/$s-postinstall.sh" "$(rpm -qp --qf '%{POSTIN}' "$f" 2>/dev/null)" "$(cat "packaging/scripts/$s-postinstall.sh")"
      same "$p.rpm: %preun is packaging/scripts/$s-preremove.sh" "$(rpm -qp --qf '%{PREUN}' "$f" 2>/dev/null)" "$(cat "packaging/scripts/$s-preremove.sh")"
      same "$p.rpm: %postun is packaging/scripts/$s-postremove.sh" "$(rpm -qp --qf '%{POSTUN}' "$f" 2>/dev/null)" "$(cat "packaging/scripts/$s-postremove.sh")"
      same "$p.rpm: no %pre" "$(rpm -qp --qf '%{PREIN}' "$f" 2>/dev/null)" "(none)"
    else
      same "$p.rpm: no scriptlets" "$(rpm -qp --scripts "$f" 2>/dev/null)" ""
    fi
  done
fi

echo "== .deb files (dpkg-deb)"
for p in "${pkgs[@]}"; do
  f=${deb[$p]}
  same "$p.deb: package version architecture" "$(dpkg-deb -f "$f" Package Version Architecture | tr '\n' ' ')" "Package: $p Version: $version Architecture: amd64 "
  same "$p.deb: depends" "$(dpkg-deb -f "$f" Depends)" "${deb_deps[$p]}"
  same "$p.deb: recommends" "$(dpkg-deb -f "$f" Recommends)" "${deb_recs[$p]}"
  same "$p.deb: files" "$(dpkg-deb --fsys-tarfile "$f" | tar -t | sed 's|^\./|/|; s|/$||' | grep -v '^$' | sort)" \
    "$( (echo "${files[$p]}"; echo "${files[$p]}" | while read -r x; do dir=$x; while dir=$(dirname "$dir"); [ "$dir" != / ]; do echo "$dir"; done; done) | sort -u)"
  ctrl=$(mktemp -d)
  dpkg-deb -e "$f" "$ctrl"
  same "$p.deb: conffiles" "$(cat "$ctrl/conffiles" 2>/dev/null)" "${conf[$p]}"
  if [ -n "${short[$p]}" ]; then
    s=${short[$p]}
    same "$p.deb: postinst prerm postrm, as in packaging/scripts" \
      "$(cat "$ctrl/postinst" "$ctrl/prerm" "$ctrl/postrm")" \
      "$(cat "packaging/scripts/$s-postinstall.sh" "packaging/scripts/$s-preremove.sh" "packaging/scripts/$s-postremove.sh")"
  fi
  rm -rf "$ctrl"
done

echo "== maintainer scripts under a (fake) running systemd, and without one"
scripts_test() {
  local p=$1 s=${short[$1]} ctrl fake log arg out
  ctrl=$(mktemp -d) fake=$(mktemp -d)
  dpkg-deb -e "${deb[$p]}" "$ctrl"
  log=$fake/calls
  for tool in systemctl update-alternatives useradd groupadd; do
    printf '#!/bin/sh\necho "%s $*" >>%s\n' "$tool" "$log" >"$fake/$tool"
    chmod +x "$fake/$tool"
  done
  # run SCRIPT ARGS...: with systemd "running" (private /run), fake tools first in PATH.
  run() { : >"$log"; unshare -m sh -c 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"' sh env PATH="$fake:$PATH" sh "$@" >/dev/null 2>&1; grep '^systemctl' "$log" | sed 's/^systemctl //' | tr '\n' ';'; }
  for arg in "configure" "configure 0.0.1-1" 1 2; do
    same "$p: postinst $arg with systemd: only daemon-reload" "$(run "$ctrl/postinst" $arg)" "daemon-reload;"
  done
  for arg in "abort-upgrade 0.0.1-1" "abort-remove"; do
    same "$p: postinst $arg: nothing" "$(run "$ctrl/postinst" $arg)" ""
  done
  for arg in remove 0; do
    same "$p: prerm $arg with systemd: disable, stop" "$(run "$ctrl/prerm" $arg)" "--no-reload disable bulwark-$s.service;stop bulwark-$s.service;"
  done
  for arg in "upgrade 9.9.9-1" 1 "failed-upgrade 0.0.1-1"; do
    same "$p: prerm $arg: nothing" "$(run "$ctrl/prerm" $arg)" ""
  done
  for arg in remove purge 0; do
    same "$p: postrm $arg with systemd: daemon-reload" "$(run "$ctrl/postrm" $arg)" "daemon-reload;"
  done
  for arg in "upgrade 9.9.9-1" 1; do
    same "$p: postrm $arg: nothing" "$(run "$ctrl/postrm" $arg)" ""
  done
  : >"$log"
  out=$(PATH="$fake:$PATH" sh "$ctrl/postinst" configure 2>&1)
  contains "$p: postinst says it did not start the service" "$out" "installed, not started" "systemctl enable --now bulwark-$s"
  out=$(PATH="$fake:$PATH" sh "$ctrl/postinst" 2 2>&1)
  contains "$p: postinst on upgrade says how to restart" "$out" "upgraded" "systemctl restart bulwark-$s"
  PATH="$fake:$PATH" sh "$ctrl/prerm" remove >/dev/null 2>&1
  PATH="$fake:$PATH" sh "$ctrl/postrm" purge >/dev/null 2>&1
  if [ -d /run/systemd/system ]; then
    skipped "$p: scripts without systemd: systemd runs on this machine"
  else
    same "$p: without systemd (container, chroot) the scripts never call systemctl" "$(grep '^systemctl' "$log")" ""
  fi
  contains "$p: postinst registers the bulwarkd alternative" "$(cat "$log")" "update-alternatives --install /usr/bin/bulwarkd bulwarkd /usr/lib/bulwark-$s/bulwarkd 50"
  contains "$p: prerm removes the bulwarkd alternative" "$(cat "$log")" "update-alternatives --remove bulwarkd /usr/lib/bulwark-$s/bulwarkd"
  rm -rf "$ctrl" "$fake"
}
if [ "$(id -u)" != 0 ]; then
  skipped "maintainer scripts: need root (mount namespace, and the scripts read /etc)"
elif ! unshare -m true 2>/dev/null; then
  skipped "maintainer scripts with systemd running: unshare -m is not permitted here"
else
  scripts_test bulwark-server
  scripts_test bulwark-agent
fi

echo "== dpkg -i, then dpkg -r and dpkg -P"
# dpkg may be busy (another apt run): wait for its lock a while.
dpkg_() {
  local out
  for _ in $(seq 60); do
    if out=$(dpkg "$@" </dev/null 2>&1); then printf '%s\n' "$out"; return 0; fi
    if [[ $out == *"lock"* ]]; then sleep 1; continue; fi
    printf '%s\n' "$out"
    return 1
  done
  printf '%s\n' "$out"
  return 1
}
installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | cut -c1-2; }

if [ "$(id -u)" != 0 ]; then
  skipped "dpkg -i: not root; run as root (CI does) to install the .deb files and remove them again"
  finish
fi
for p in "${pkgs[@]}"; do
  if [ -n "$(installed "$p")" ] && [ "$(installed "$p")" != "un" ]; then
    skipped "dpkg -i: $p is already known to dpkg here (status $(installed "$p")); not touching this machine's installation"
    finish
  fi
done
if [ -e /etc/bulwark/server.yaml ] || [ -e /etc/bulwark/agent.yaml ]; then
  skipped "dpkg -i: /etc/bulwark already holds configs that no package owns; not touching them"
  finish
fi
missing=()
for d in libvirt0 iptables passwd; do
  [ "$(installed "$d")" = ii ] || missing+=("$d")
done
if [ ${#missing[@]} -gt 0 ]; then
  bad "dpkg -i: dependencies missing: ${missing[*]} (scripts/deps.sh test installs them)"
  finish
fi
had_user=no
getent passwd bulwark >/dev/null && had_user=yes
cleanup() {
  dpkg -P "${pkgs[@]}" </dev/null >/dev/null 2>&1
  if [ "$had_user" = no ] && getent passwd bulwark >/dev/null; then
    userdel bulwark >/dev/null 2>&1
    getent group bulwark >/dev/null && groupdel bulwark >/dev/null 2>&1
  fi
  rmdir /etc/bulwark 2>/dev/null
  return 0
}
trap cleanup EXIT

if out=$(dpkg_ -i "${deb[@]}"); then ok "dpkg -i of the three .deb files"; else bad "dpkg -i"; echo "$out" | sed 's/^/      /'; finish; fi
contains "postinst output says the services were not started" "$out" "bulwark-server: installed, not started" "bulwark-agent: installed, not started"
for p in "${pkgs[@]}"; do
  same "$p is installed" "$(installed "$p")" "ii"
done

want_d=$(bin/bulwarkd --version) want_c=$(bin/bulwarkctl --version)
same "bulwarkd --version (installed) matches bin/bulwarkd" "$(/usr/bin/bulwarkd --version 2>&1)" "$want_d"
same "bulwarkctl --version (installed) matches bin/bulwarkctl" "$(/usr/bin/bulwarkctl --version 2>&1)" "$want_c"
for b in /usr/lib/bulwark-server/bulwarkd /usr/lib/bulwark-agent/bulwarkd; do
  same "$b --version" "$($b --version 2>&1)" "$want_d"
done
# "bulwarkd version V (commit C, built D)": what the Makefile stamps in, not the defaults.
re='^bulwark(d|ctl) version ([^ ]+) \(commit ([0-9a-f]{7,}), built ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z)\)$'
for v in "$want_d" "$want_c"; do
  if [[ $v =~ $re ]] && [ "${BASH_REMATCH[2]}" != dev ]; then
    ok "version, commit and build date are stamped: $v"
    if git cat-file -e "${BASH_REMATCH[3]}^{commit}" 2>/dev/null; then ok "commit ${BASH_REMATCH[3]} is a commit of this repository"; else bad "commit ${BASH_REMATCH[3]} is not a commit here"; fi
  else
    bad "version line $v: want version, commit and date set by the Makefile's -ldflags"
  fi
done
same "/usr/bin/bulwarkd is the bulwarkd alternative" "$(readlink -f /usr/bin/bulwarkd | grep -E '^/usr/lib/bulwark-(server|agent)/bulwarkd$')" "$(readlink -f /usr/bin/bulwarkd)"

for u in bulwark-server bulwark-agent; do
  f=/usr/lib/systemd/system/$u.service
  check "$u.service installed" test -f "$f"
  contains "$u.service: Type=notify, restart policy, its binary, its config" "$(cat "$f")" "Type=notify" "Restart=always" "RestartPreventExitStatus=78" "ExecStart=/usr/lib/$u/bulwarkd ${u#bulwark-} --config /etc/bulwark/${u#bulwark-}.yaml"
done
contains "bulwark-server.service runs as user bulwark, hardened" "$(cat /usr/lib/systemd/system/bulwark-server.service)" "User=bulwark" "NoNewPrivileges=yes" "ProtectSystem=strict" "CapabilityBoundingSet=
"
contains "bulwark-agent.service wants libvirtd and containerd" "$(cat /usr/lib/systemd/system/bulwark-agent.service)" "Wants=network-online.target libvirtd.service containerd.service" "After=network-online.target libvirtd.service virtqemud.service containerd.service"
if ! command -v systemd-analyze >/dev/null; then
  skipped "systemd-analyze verify: systemd-analyze is missing (Debian package systemd; scripts/deps.sh test installs it)"
else
  out=$(systemd-analyze verify /usr/lib/systemd/system/bulwark-server.service /usr/lib/systemd/system/bulwark-agent.service 2>&1)
  rc=$?
  if [ $rc = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify: clean"; else bad "systemd-analyze verify (exit $rc)"; echo "$out" | sed 's/^/      /'; fi
fi
if [ -e /etc/systemd/system/multi-user.target.wants/bulwark-server.service ] || [ -e /etc/systemd/system/multi-user.target.wants/bulwark-agent.service ]; then
  bad "a unit was enabled on install"
else
  ok "no unit enabled on install"
fi
running=$(for p in /proc/[0-9]*; do readlink "$p/exe" 2>/dev/null; done | grep -c '^/usr/lib/bulwark-' || true)
same "no bulwarkd started on install" "$running" "0"

for c in server agent; do
  same "/etc/bulwark/$c.yaml: root:root 0644" "$(stat -c '%U:%G %a' /etc/bulwark/$c.yaml)" "root:root 644"
done
same "dpkg knows the conffiles" "$(dpkg-query -W -f='${Conffiles}\n' bulwark-server bulwark-agent | awk 'NF {print $1}' | sort)" "$(printf '/etc/bulwark/agent.yaml\n/etc/bulwark/server.yaml')"
check "bulwarkd config check: the installed configs" /usr/bin/bulwarkd config check /etc/bulwark/server.yaml /etc/bulwark/agent.yaml
check "bulwarkd config check: the installed examples (--skip-files)" /usr/bin/bulwarkd config check --skip-files \
  /usr/share/doc/bulwark-server/examples/server.yaml /usr/share/doc/bulwark-agent/examples/agent-host-{1,2,3}.yaml

pw=$(getent passwd bulwark)
if [[ $pw =~ ^bulwark:x:([0-9]+):([0-9]+):[^:]*:/nonexistent:/usr/sbin/nologin$ ]] && [ "${BASH_REMATCH[1]}" -lt 1000 ]; then
  ok "system user bulwark: $pw"
else
  bad "system user bulwark: '$pw', want a system uid, home /nonexistent, shell nologin"
fi
same "group bulwark" "$(id -gn bulwark 2>/dev/null)" "bulwark"
check "the server's user can read its config (runuser -u bulwark -- bulwarkd config check)" runuser -u bulwark -- /usr/lib/bulwark-server/bulwarkd config check /etc/bulwark/server.yaml
out=$(/usr/lib/bulwark-server/bulwarkd server --session-ttl 0s 2>&1)
same "an invalid setting stops the installed server with exit status 78" "$?" "78"
contains "... and says why" "$out" "invalid configuration" "--session-ttl: 0s is out of range"

echo "# local edit" >>/etc/bulwark/agent.yaml
if out=$(dpkg_ -i "${deb[bulwark-agent]}"); then ok "dpkg -i again (upgrade path) over an edited config"; else bad "dpkg -i again"; echo "$out" | sed 's/^/      /'; fi
same "the edited /etc/bulwark/agent.yaml is kept" "$(tail -n1 /etc/bulwark/agent.yaml)" "# local edit"
contains "postinst on reinstall says how to restart" "$out" "bulwark-agent: upgraded"

if out=$(dpkg_ -r bulwark-server); then ok "dpkg -r bulwark-server"; else bad "dpkg -r bulwark-server"; echo "$out" | sed 's/^/      /'; fi
check "bulwark-server: binary gone" test ! -e /usr/lib/bulwark-server
check "bulwark-server: unit gone" test ! -e /usr/lib/systemd/system/bulwark-server.service
check "bulwark-server: config kept until purge" test -f /etc/bulwark/server.yaml
same "/usr/bin/bulwarkd now runs the agent package's binary" "$(readlink -f /usr/bin/bulwarkd)" "/usr/lib/bulwark-agent/bulwarkd"
same "bulwarkd --version still works" "$(/usr/bin/bulwarkd --version 2>&1)" "$want_d"

if out=$(dpkg_ -r bulwark-agent bulwarkctl); then ok "dpkg -r bulwark-agent bulwarkctl"; else bad "dpkg -r bulwark-agent bulwarkctl"; echo "$out" | sed 's/^/      /'; fi
for f in /usr/bin/bulwarkd /usr/bin/bulwarkctl /usr/lib/bulwark-agent /usr/lib/systemd/system/bulwark-agent.service /usr/share/doc/bulwark-agent /usr/share/doc/bulwark-server; do
  check "removed: $f" test ! -e "$f" -a ! -L "$f"
done
check "no bulwarkd alternative left" sh -c '! update-alternatives --list bulwarkd >/dev/null 2>&1'
for p in bulwark-server bulwark-agent; do
  same "$p: only its config files are left (rc)" "$(installed "$p")" "rc"
done
if out=$(dpkg_ -P "${pkgs[@]}"); then ok "dpkg -P"; else bad "dpkg -P"; echo "$out" | sed 's/^/      /'; fi
check "purged: /etc/bulwark is gone" test ! -e /etc/bulwark
for p in "${pkgs[@]}"; do
  st=$(installed "$p")
  if [ -z "$st" ] || [ "$st" = un ]; then ok "$p: unknown to dpkg after purge"; else bad "$p: dpkg status $st after purge"; fi
done
finish
