#!/usr/bin/env bash
# Prepare a Debian/Ubuntu host for tsrun: system packages, npm dependencies
# and (unless --no-build) the build. Run as root; safe to run again.
# Usage: scripts/setup.sh [--no-build]
set -euo pipefail

die() { echo "setup: $*" >&2; exit 1; }

build=1
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    -h|--help) echo "usage: $0 [--no-build]"; exit 0 ;;
    *) die "unknown option: $arg (usage: $0 [--no-build])" ;;
  esac
done

[[ $(id -u) -eq 0 ]] || die "must run as root"
command -v apt-get >/dev/null || die "apt-get not found: only Debian/Ubuntu hosts are supported"

command -v node >/dev/null || die "node not found: install Node.js >= 20 first"
node_major=$(node -p 'process.versions.node.split(".")[0]')
(( node_major >= 20 )) || die "Node.js >= 20 required, found $(node --version)"

# Needed by the build and the tests (skopeo and umoci make and check images as
# independent tools, podman with runc loads and runs the images tsrun saves;
# docker-registry is the registry the pull and push tests start,
# apache2-utils its htpasswd, openssl the token test's certificate;
# containernetworking-plugins and iptables give containers their bridge
# network, tmux is the terminal the -it test types into; podman and
# containerd's ctr also run containers with tsrun-oci as their runtime;
# the static libc and libstdc++ of build-essential link tsrun-monitor); the
# peers are only for benchmarks.
required=(busybox-static build-essential g++ make python3 iproute2 util-linux zstd xz-utils bzip2 skopeo umoci podman runc containerd docker-registry apache2-utils openssl containernetworking-plugins iptables tmux)
peers=(crun hyperfine mmdebstrap)

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }

missing=()
for pkg in "${required[@]}" "${peers[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if (( ${#missing[@]} )); then
  export DEBIAN_FRONTEND=noninteractive
  echo "setup: installing: ${missing[*]}"
  apt-get update
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    # A peer may be absent from the distribution (e.g. Ubuntu without
    # universe); the benchmark reports it as n/a, so do not fail for it.
    req_missing=()
    for pkg in "${required[@]}"; do installed "$pkg" || req_missing+=("$pkg"); done
    if (( ${#req_missing[@]} )); then
      apt-get install -y --no-install-recommends "${req_missing[@]}" ||
        die "could not install: ${req_missing[*]}"
    fi
    for pkg in "${peers[@]}"; do
      installed "$pkg" || apt-get install -y --no-install-recommends "$pkg" ||
        echo "setup: warning: could not install $pkg; benchmarks will show it as n/a" >&2
    done
  fi
else
  echo "setup: system packages already installed: ${required[*]} ${peers[*]}"
fi

command -v npm >/dev/null || die "npm not found: install npm (it ships with Node.js)"
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

# `npm run build` below builds the addon; the install script would build it twice.
if [[ -f node_modules/.package-lock.json && node_modules/.package-lock.json -nt package-lock.json ]]; then
  echo "setup: npm dependencies are up to date"
else
  # Not `npm ci`: the registry here carries only this platform's builds of
  # packages such as @swc/core, so the lock file cannot list the others and
  # `npm ci` refuses it as out of sync. `npm install` installs what the lock
  # file pins and leaves it unchanged.
  echo "setup: npm install"
  npm install --ignore-scripts --no-audit --no-fund
fi
if (( build )); then
  echo "setup: npm run build"
  npm run build
fi
