#!/usr/bin/env bash
# Build the stelselnode container image from Debian's packages only (no registry is
# pulled from): a minbase root file system made by mmdebstrap with libxml2,
# ca-certificates and curl, this build's binary and an unprivileged user added, imported
# with `podman import` under the same USER/ENV/VOLUME/ENTRYPOINT/CMD as the Dockerfile.
# Then smoke-test it: start it with the demo registry, GET /health over https with the
# development CA until 200, SIGTERM, expect exit 0; print the image size and the time
# from start to the first 200.
#
# The smoke test runs the image with `podman run` when the machine allows containers;
# where it does not (a container without cgroup and rlimit rights), it runs the image's own
# file system (`podman image mount`, else the imported tarball unpacked) under chroot, as
# the image's user, with the image's environment, and says so.
#
# Usage: deploy/image.sh   (as root; env SUITE=bookworm TAG=localhost/stelselnode:latest
# OUT=target/image BIN=target/release/stelselnode PORT=18443). Installs mmdebstrap and
# podman when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=${SUITE:-bookworm}
TAG=${TAG:-localhost/stelselnode:latest}
OUT=${OUT:-target/image}
BIN=${BIN:-target/release/stelselnode}
PORT=${PORT:-18443}
[ -x "$BIN" ] || cargo build --release --locked
BIN=$(realpath "$BIN")
need() { # command package
  command -v "$1" >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  }
}
need mmdebstrap mmdebstrap
need podman podman
mkdir -p "$OUT"
OUT=$(realpath "$OUT")

echo "== root file system ($SUITE, minbase) =="
t0=$(date +%s.%N)
mmdebstrap --quiet --variant=minbase --include=libxml2,ca-certificates,curl \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook="copy-in $BIN /usr/local/bin" \
  --customize-hook='chroot "$1" useradd --system --home-dir /var/lib/stelselnode --create-home stelselnode' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$SUITE" "$OUT/rootfs.tar"
t1=$(date +%s.%N)
echo "rootfs.tar: $(du -h "$OUT/rootfs.tar" | cut -f1) in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b-a}') s"

echo "== image =="
ENVS=(STELSELNODE_DATA=/var/lib/stelselnode/data)
podman rmi -f "$TAG" >/dev/null 2>&1 || true
podman import \
  --change 'USER stelselnode' \
  --change "ENV ${ENVS[0]}" \
  --change 'VOLUME /var/lib/stelselnode' \
  --change 'EXPOSE 8080' \
  --change 'STOPSIGNAL SIGTERM' \
  --change 'ENTRYPOINT ["stelselnode"]' \
  --change 'CMD ["serve", "--listen", "0.0.0.0:8080"]' \
  "$OUT/rootfs.tar" "$TAG" >/dev/null
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$TAG"

echo "== smoke test =="
W=$(mktemp -d)
CHILD=""
MOUNTED=""
cleanup() {
  [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null || true
  podman rm -f stelselnode-smoke >/dev/null 2>&1 || true
  podman volume rm -f stelselnode-smoke >/dev/null 2>&1 || true
  if [ -n "$MOUNTED" ]; then umount "$MOUNTED/proc" 2>/dev/null || true; fi
  podman image unmount "$TAG" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

wait_health() { # ca-file → seconds until /health answered 200
  local ca=$1 start=$2
  for _ in $(seq 300); do
    if [ -f "$ca" ] && curl -sf --cacert "$ca" "https://localhost:$PORT/health" >/dev/null 2>&1; then
      awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b-a}'
      return 0
    fi
    sleep 0.1
  done
  return 1
}

start=$(date +%s.%N)
# A named volume takes the ownership of the image's directory (the user stelselnode).
if podman run -d --name stelselnode-smoke --network host -v stelselnode-smoke:/var/lib/stelselnode \
     "$TAG" serve --demo --listen "127.0.0.1:$PORT" >/dev/null 2>"$W/run.err"; then
  echo "podman run: started"
  VOL=$(podman volume inspect --format '{{.Mountpoint}}' stelselnode-smoke)
  ready=$(wait_health "$VOL/data/dev-tls-ca.pem" "$start") || { podman logs stelselnode-smoke; exit 1; }
  podman stop --time 30 stelselnode-smoke >/dev/null
  code=$(podman inspect --format '{{.State.ExitCode}}' stelselnode-smoke)
  how="podman run"
else
  echo "podman run is not possible here: $(head -c 300 "$W/run.err")"
  ROOT=$(podman image mount "$TAG" 2>/dev/null) || ROOT=""
  if [ -n "$ROOT" ] && [ -x "$ROOT/usr/local/bin/stelselnode" ]; then
    how="the image's file system (podman image mount) under chroot"
    # The image's layer is read-only here; the volume is a directory of its own.
    mkdir -p "$W/root"
    cp -a "$ROOT/." "$W/root/"
    podman image unmount "$TAG" >/dev/null
  else
    how="the imported tarball unpacked under chroot"
    mkdir -p "$W/root"
    tar -C "$W/root" -xf "$OUT/rootfs.tar"
  fi
  MOUNTED="$W/root"
  mount -t proc proc "$W/root/proc"
  uid=$(awk -F: '$1=="stelselnode" {print $3}' "$W/root/etc/passwd")
  gid=$(awk -F: '$1=="stelselnode" {print $4}' "$W/root/etc/passwd")
  start=$(date +%s.%N)
  chroot --userspec="$uid:$gid" "$W/root" /usr/bin/env -i HOME=/var/lib/stelselnode \
    PATH=/usr/local/bin:/usr/bin:/bin "${ENVS[@]}" \
    stelselnode serve --demo --listen "127.0.0.1:$PORT" >"$W/out" 2>"$W/err" &
  CHILD=$!
  ready=$(wait_health "$W/root/var/lib/stelselnode/data/dev-tls-ca.pem" "$start") \
    || { cat "$W/err"; exit 1; }
  kill -TERM "$CHILD"
  code=0
  wait "$CHILD" || code=$?
  CHILD=""
fi
echo "smoke test ($how): /health 200 over https with the development CA after ${ready} s; exit code after SIGTERM: $code"
[ "$code" = 0 ]
