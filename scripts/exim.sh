#!/bin/sh
# A real Exim for the tests, beside the system's Postfix: Debian's exim4
# and postfix packages exclude each other, so Exim's packages are unpacked
# (dpkg-deb -x, not installed) into .cache/exim, with the one library the
# machine lacks; its compiled-in user Debian-exim is created if missing.
# The tests run it with a configuration of their own (exim -C).
set -eu
dir=.cache/exim
if [ -x "$dir/root/usr/sbin/exim4" ]; then
  exit 0
fi
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
id Debian-exim >/dev/null 2>&1 || $sudo useradd --system --no-create-home --shell /usr/sbin/nologin Debian-exim
rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/debs"
(cd "$dir.tmp/debs" && apt-get download exim4-daemon-light exim4-base libidn12 2>/dev/null) || {
  $sudo apt-get update -q
  (cd "$dir.tmp/debs" && apt-get download exim4-daemon-light exim4-base libidn12)
}
for deb in "$dir.tmp"/debs/*.deb; do
  dpkg-deb -x "$deb" "$dir.tmp/root"
done
rm -rf "$dir" && mv "$dir.tmp" "$dir"
echo "exim: $(ls "$dir"/debs) unpacked in $dir"
