#!/bin/bash
# containerd runs a container with tsrun-oci as its runc binary.
#
#   sudo scripts/ctr-tsrun-oci.sh
#
# Starts a containerd of its own (temp root, state and socket, nothing of a
# system containerd is touched), imports a busybox image that tsrun itself
# saved, and has `ctr run --runc-binary bin/tsrun-oci` run it twice: once in
# the foreground (its output and exit code come back through the runc v2
# shim), once detached, to exec into, kill, and delete. Installs Debian's
# containerd when it is missing. Everything it made is removed on exit,
# whether it succeeded or not. Prints "ctr-tsrun-oci: ok" at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
oci="$repo/bin/tsrun-oci"
tsrun="$repo/bin/tsrun"

if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends containerd >/dev/null
fi

work=$(mktemp -d /tmp/tsrun-ctr-XXXXXX)
sock="$work/containerd.sock"
ns=tsrun-demo
containerd_pid=
cleanup() {
  set +e
  if [ -S "$sock" ]; then
    for task in $(ctr -a "$sock" -n "$ns" tasks ls -q 2>/dev/null); do ctr -a "$sock" -n "$ns" tasks kill -s SIGKILL "$task" >/dev/null 2>&1; ctr -a "$sock" -n "$ns" tasks delete -f "$task" >/dev/null 2>&1; done
    for c in $(ctr -a "$sock" -n "$ns" containers ls -q 2>/dev/null); do ctr -a "$sock" -n "$ns" containers delete "$c" >/dev/null 2>&1; done
  fi
  if [ -n "$containerd_pid" ]; then
    kill "$containerd_pid" 2>/dev/null
    wait "$containerd_pid" 2>/dev/null
  fi
  # The shims of our containerd, found by its socket on their command lines.
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock"); do kill "$pid" 2>/dev/null; done
  for dir in /sys/fs/cgroup/*/"$ns"; do [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# A containerd of our own, with the native snapshotter (no overlay needed on the store's filesystem).
cat > "$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable = true
EOF
containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
ctr="ctr -a $sock -n $ns"

# The image: a busybox root filesystem, imported into tsrun's store and saved by tsrun.
"$repo/scripts/make-busybox-rootfs.sh" "$work/rootfs" >/dev/null
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"$tsrun" --root "$work/store" import "$work/rootfs.tar" docker.io/library/busybox:tsrun >/dev/null
"$tsrun" --root "$work/store" save -o "$work/busybox.tar" docker.io/library/busybox:tsrun
$ctr images import --snapshotter native "$work/busybox.tar" >/dev/null

# Foreground: the output and the exit code come back through the shim.
out=$($ctr run --rm --snapshotter native --runc-binary "$oci" docker.io/library/busybox:tsrun hello sh -c 'echo hello from pid $$')
echo "$out"
[ "$out" = "hello from pid 1" ] || { echo "ctr-tsrun-oci: unexpected output: $out" >&2; exit 1; }
set +e
$ctr run --rm --snapshotter native --runc-binary "$oci" docker.io/library/busybox:tsrun coded sh -c 'exit 3'
code=$?
set -e
[ "$code" = 3 ] || { echo "ctr-tsrun-oci: expected exit code 3, got $code" >&2; exit 1; }

# Detached: exec into it, kill it, delete it.
$ctr run -d --snapshotter native --runc-binary "$oci" docker.io/library/busybox:tsrun ticker sh -c 'while true; do sleep 1; done' >/dev/null
$ctr tasks exec --exec-id probe ticker sh -c 'echo exec sees pid 1 as: $(cat /proc/1/cmdline | tr "\0" " ")'
$ctr tasks ls
$ctr tasks kill -s SIGKILL ticker
for _ in $(seq 50); do $ctr tasks ls | grep -q "ticker.*STOPPED" && break; sleep 0.1; done
$ctr tasks delete ticker >/dev/null
$ctr containers delete ticker
echo "ctr-tsrun-oci: ok"
