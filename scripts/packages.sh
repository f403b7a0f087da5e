#!/usr/bin/env bash
# Builds the six packages into dist/: bulwark-server, bulwark-agent and
# bulwarkctl, each as .deb and .rpm, with nfpm v2.45.2 (pinned in
# tools/nfpm/go.mod, a module of its own so that nfpm's dependencies never
# mix with bulwark's). No rpmbuild or dpkg-deb is needed.
#
# `make packages` runs it after `make build`, which stamps the version into
# bin/bulwarkd and bin/bulwarkctl. Environment:
#   VERSION         git describe output the binaries were built with (the Makefile passes it)
#   PKG_VERSION     package version; default: derived from VERSION (see pkg_version)
#   PKG_ARCH        Go architecture name; default: go env GOARCH
#   PKG_MAINTAINER  the packages' Maintainer/Packager field
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
PATH=$PATH:/usr/local/go/bin

for b in bin/bulwarkd bin/bulwarkctl; do
  if [ ! -x "$b" ]; then
    echo "packages: $b is missing; run make build (or make packages) first" >&2
    exit 1
  fi
done

# A release tag vX.Y.Z[-pre] gives X.Y.Z[-pre] (nfpm writes X.Y.Z~pre, which
# sorts before X.Y.Z); commits after a tag give X.Y.Z+git.N.gHASH (after it);
# no tag gives 0.0.0-git<commit time>.gHASH (before any release, ordered by
# commit time). A dirty tree adds .dirty.
pkg_version() {
  local v=$1 dirty="" t
  if [[ $v == *-dirty ]]; then dirty=.dirty; v=${v%-dirty}; fi
  if [[ $v =~ ^v?([0-9]+\.[0-9]+\.[0-9]+)(-[0-9A-Za-z.]+)?-([0-9]+)-g([0-9a-f]+)$ ]]; then
    echo "${BASH_REMATCH[1]}${BASH_REMATCH[2]}+git.${BASH_REMATCH[3]}.g${BASH_REMATCH[4]}$dirty"
  elif [[ $v =~ ^v?([0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?)$ ]]; then
    if [ -n "$dirty" ]; then
      if [ -n "${BASH_REMATCH[2]}" ]; then echo "${BASH_REMATCH[1]}.dirty"; else echo "${BASH_REMATCH[1]}+dirty"; fi
    else
      echo "${BASH_REMATCH[1]}"
    fi
  else
    t=$(git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || echo 0)
    echo "0.0.0-git$t.g$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty"
  fi
}

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export PKG_VERSION=${PKG_VERSION:-$(TZ=UTC pkg_version "$VERSION")}
export PKG_ARCH=${PKG_ARCH:-$(go env GOARCH)}
export PKG_MAINTAINER=${PKG_MAINTAINER:-Bulwark maintainers <maintainers@bulwark.invalid>}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Cached by Go's build cache: ~40 s the first time on a cold cache, <1 s after.
go build -C tools/nfpm -o "$tmp/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm

mkdir -p dist
rm -f dist/bulwark-server[_-]* dist/bulwark-agent[_-]* dist/bulwarkctl[_-]*
pids=()
for pkg in bulwark-server bulwark-agent bulwarkctl; do
  for fmt in deb rpm; do
    "$tmp/nfpm" package --config "packaging/nfpm/$pkg.yaml" --packager "$fmt" --target dist/ >"$tmp/$pkg.$fmt.log" 2>&1 &
    pids+=("$!:$pkg.$fmt")
  done
done
failed=0
for p in "${pids[@]}"; do
  if ! wait "${p%%:*}"; then
    echo "packages: nfpm failed for ${p#*:}:" >&2
    cat "$tmp/${p#*:}.log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1

echo "packages: version $PKG_VERSION ($VERSION), in dist/:"
n=0
for f in dist/bulwark-server[_-]* dist/bulwark-agent[_-]* dist/bulwarkctl[_-]*; do
  [ -f "$f" ] || continue
  n=$((n + 1))
  printf '  %-60s %6s KiB\n' "$f" "$(( $(stat -c %s "$f") / 1024 ))"
done
if [ "$n" != 6 ]; then
  echo "packages: $n packages in dist/, want 6" >&2
  exit 1
fi
