#!/usr/bin/env bash
# Build a minimal root filesystem at DEST from Debian's static busybox.
# Usage: scripts/make-busybox-rootfs.sh DEST
# The tree is assembled in DEST.tmp and renamed into place, so an interrupted
# run never leaves a half-built DEST. Running it again rebuilds DEST.
set -euo pipefail

die() { echo "make-busybox-rootfs: $*" >&2; exit 1; }

[[ $# -eq 1 && -n $1 ]] || die "usage: $0 DEST"
[[ $(id -u) -eq 0 ]] || die "must run as root (chroot, chown)"

dest=$(realpath -m -- "$1")
[[ $dest != / ]] || die "refusing to use / as DEST"
tmp=$dest.tmp
parent=$(dirname -- "$dest")
mkdir -p -- "$parent"

busybox=/bin/busybox
if [[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true) != "install ok installed" ]]; then
  echo "make-busybox-rootfs: installing busybox-static" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends busybox-static >&2 ||
    { apt-get update >&2 && apt-get install -y --no-install-recommends busybox-static >&2; }
fi
[[ -x $busybox ]] || die "$busybox not found after installing busybox-static"
# The binary runs inside the rootfs with no libc there: it must be static.
if ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is dynamically linked (is the 'busybox' package installed instead of 'busybox-static'?)"
fi

# Refuse to delete anything that has a mount below it (a leftover bind mount
# of /dev or /sys would otherwise be emptied by rm -rf).
check_no_mounts() {
  local p=$1
  [[ -e $p ]] || return 0
  if awk -v p="$p" '{ m = $5; gsub(/\\040/, " ", m); if (m == p || index(m, p "/") == 1) { found = 1 } } END { exit !found }' /proc/self/mountinfo; then
    die "$p has mounts below it; unmount them first"
  fi
}

# Serialise concurrent builds in the same parent directory (parallel tests).
exec 9<"$parent"
flock 9

check_no_mounts "$tmp"
check_no_mounts "$dest"
rm -rf -- "$tmp"
trap 'rm -rf -- "$tmp"' EXIT

mkdir -m 0755 -- "$tmp"
mkdir -m 0755 -p -- "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,home}
mkdir -m 0700 -- "$tmp/root"
mkdir -m 1777 -- "$tmp/tmp"
install -m 0755 -- "$busybox" "$tmp/bin/busybox"

# /proc is not mounted in the chroot, so busybox cannot readlink
# /proc/self/exe and links every applet to its argv[0], /bin/busybox.
chroot "$tmp" /bin/busybox --install -s
[[ -L $tmp/bin/sh && -L $tmp/bin/true ]] || die "busybox --install did not create /bin/sh and /bin/true"

install -d -m 0755 -o 1000 -g 1000 -- "$tmp/home/tester"

cat >"$tmp/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$tmp/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
tty:x:5:
tester:x:1000:
extra:x:1500:tester
nogroup:x:65534:
GROUP
chmod 0644 -- "$tmp/etc/passwd" "$tmp/etc/group"

# rename(2) cannot replace a non-empty directory: move the old tree aside
# first, then swap in the new one and delete the old one.
if [[ -e $dest ]]; then
  old=$dest.old.$$
  mv -T -- "$dest" "$old"
  mv -T -- "$tmp" "$dest"
  rm -rf -- "$old"
else
  mv -T -- "$tmp" "$dest"
fi
trap - EXIT

echo "$dest"
