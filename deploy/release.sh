#!/usr/bin/env bash
# Build release artifacts: static binaries and .deb packages.
#
#   deploy/release.sh VERSION
#
# writes into dist/ (or $DIST):
#   esp32gw_VERSION_linux_amd64, esp32gw_VERSION_linux_arm64,
#   esp32gw_VERSION_linux_armv6 (GOARM=6: every Raspberry Pi, 32-bit OS too),
#   esp32gw_VERSION_amd64.deb, esp32gw_VERSION_arm64.deb,
#   esp32gw_VERSION_armhf.deb (with the armv6 binary),
#   config.yaml (the packaged config).
#
# VERSION is a Debian version without epoch: 1.2.3, 1.2.3~rc1 (sorts before
# 1.2.3), 0.0.0-ci. Environment:
#   DIST=DIR          output directory (default dist)
#   ARCHES="..."      a subset of "amd64 arm64 armv6"
#   DEBS=no           binaries and config only (deploy/install.sh)
#   DEB_MAINTAINER    the package's Maintainer field
# Needs Go; nfpm is built from the Go module proxy (pinned below).
set -euo pipefail

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

usage() { echo "usage: $0 VERSION   (e.g. $0 1.2.3)" >&2; exit 2; }
[ $# -eq 1 ] || usage
version=$1

# Debian version rules (deb-version(7)), without an epoch (a colon has no
# place in a file name): upstream starts with a digit and holds
# [A-Za-z0-9.+~-]; a hyphen splits off the revision, [A-Za-z0-9.+~]+.
if [[ $version == *:* ]]; then
	echo "release: version \"$version\": no epoch (N:) please; use a plain Debian version like 1.2.3" >&2
	exit 2
fi
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || [[ $version == *- ]] ||
	{ [[ $version == *-* ]] && ! [[ ${version##*-} =~ ^[A-Za-z0-9.+~]+$ ]]; }; then
	echo "release: version \"$version\" is not a Debian version: it must start with a digit and use only" >&2
	echo "  letters, digits and . + ~ - (not ending in -), e.g. 1.2.3, 1.2.3~rc1, 0.0.0-ci" >&2
	exit 2
fi

cd "$(dirname "$0")/.."
dist=${DIST:-dist}
arches=${ARCHES:-amd64 arm64 armv6}
debs=${DEBS:-yes}
export DEB_MAINTAINER=${DEB_MAINTAINER:-esp32gw maintainers <esp32gw@users.noreply.github.com>}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The packaged config: the repository's default config, with state in
# /var/lib/esp32gw and mDNS on. Fails loudly if config.yaml changes shape.
grep -q '^state_dir:' config.yaml || { echo "release: config.yaml has no top-level state_dir line" >&2; exit 1; }
grep -q '^mdns:' config.yaml && { echo "release: config.yaml already sets mdns; update deploy/release.sh" >&2; exit 1; }
sed -e 's|^state_dir: .*|state_dir: "/var/lib/esp32gw"   # the login token, history and devices.yaml live here\
# Advertise this gateway on the LAN (_esp32gw._tcp) and list boards that\
# advertise themselves (_esp32gw-board._tcp).\
mdns: {enabled: true}|' config.yaml >"$stage/config.yaml"
cp "$stage/config.yaml" "$dist/config.yaml"
echo "release: $dist/config.yaml"

for arch in $arches; do
	case $arch in
	amd64) goarch=amd64 goarm= ;;
	arm64) goarch=arm64 goarm= ;;
	armv6) goarch=arm goarm=6 ;;
	*) echo "release: unknown arch \"$arch\" (want amd64, arm64, armv6)" >&2; exit 2 ;;
	esac
	out="$dist/esp32gw_${version}_linux_${arch}"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
		go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/esp32gw
	echo "release: $out ($(wc -c <"$out") bytes)"
done

[ "$debs" = no ] && exit 0

# nfpm once per run, into the stage (go install caches the build).
GOBIN="$stage" GOFLAGS= go install "$NFPM"

# Package docs: lintian wants a copyright file and a changelog.
first=$(git log --reverse --format=%cd --date=format:%Y 2>/dev/null | sed -n 1p || true)
last=$(git log -1 --format=%cd --date=format:%Y 2>/dev/null || date +%Y)
years=${first:-$last}; [ "$years" = "$last" ] || years="$years-$last"
cat >"$stage/copyright" <<COPYRIGHT
esp32gw: a gateway between ESP32 boards, browsers and MQTT.
Source: https://github.com/esp32gw/esp32gw

Copyright (C) $years the esp32gw authors.
The license is the one stated in the source repository named above.
COPYRIGHT
# Intended, so said to lintian: a Go binary is static (no cgo), and the
# config holds secrets (tokens, the MQTT password), hence 0640.
cat >"$stage/lintian-overrides" <<'OVERRIDES'
esp32gw: statically-linked-binary [usr/bin/esp32gw]
esp32gw: non-standard-file-perm 0640 != 0644 [etc/esp32gw/config.yaml]
OVERRIDES
# A version with a Debian revision (0.0.0-ci) is a non-native package.
changelog=changelog.gz
[[ $version == *-* ]] && changelog=changelog.Debian.gz
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
{
	echo "esp32gw ($version) stable; urgency=medium"
	echo
	echo "  * Release $version; see https://github.com/esp32gw/esp32gw for changes."
	echo
	echo " -- $DEB_MAINTAINER  $date"
} | gzip -9n >"$stage/changelog.gz"

export VERSION=$version STAGE=$stage CHANGELOG=$changelog
for arch in $arches; do
	case $arch in
	armv6) deb_arch=armhf ;;
	*) deb_arch=$arch ;;
	esac
	out="$dist/esp32gw_${version}_${deb_arch}.deb"
	DEB_ARCH=$deb_arch BINARY="$dist/esp32gw_${version}_linux_${arch}" \
		"$stage/nfpm" pkg --packager deb --config deploy/nfpm.yaml --target "$out" >/dev/null
	echo "release: $out ($(wc -c <"$out") bytes)"
done
