#!/usr/bin/env bash
# ferry save/load against docker save/load on a private daemon (root).
#   benches/docker.sh [SIZE_MB]      (default 1024)
# Prints seconds and peak RSS for: docker save -o + ferry add, ferry save,
# docker load -i, ferry load, and the ratios the targets are stated in.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install docker.io"; exit 1; }
cargo build --release --quiet --bin ferry --example sample_image
bin=$PWD/target/release/ferry
work=$(mktemp -d /tmp/ferry-dockerbench.XXXX)
cleanup() {
  [[ -f $work/pid ]] && kill "$(cat "$work/pid")" 2>/dev/null && sleep 3
  grep "$work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l || true
  rm -rf "$work"
}
trap cleanup EXIT
dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
  --data-root "$work/root" --exec-root "$work/exec" -H "unix://$work/docker.sock" \
  --pidfile "$work/pid" >"$work/dockerd.log" 2>&1 &
export DOCKER_HOST=unix://$work/docker.sock
for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
./target/release/examples/sample_image "$work/img.tar" "$size" 1 2>/dev/null
docker load -q -i "$work/img.tar" >/dev/null
rm "$work/img.tar"
img=bench/app:1
t() { # label, command...
  local label=$1; shift
  sync
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r secs rss <"$work/time"
  printf '%-34s %8.2f s %7d MB\n' "$label" "$secs" $((rss / 1024))
  echo "$secs" >"$work/last"
}
printf '%-34s %10s %10s\n' step time "peak RSS"
t "docker save -o" docker save -o "$work/saved.tar" $img; ds=$(cat "$work/last")
t "ferry add (of that tar)" "$bin" --store "$work/s1" add "$work/saved.tar"; fa=$(cat "$work/last")
t "ferry save" "$bin" --store "$work/s2" save $img; fs=$(cat "$work/last")
t "ferry save again (no-op)" "$bin" --store "$work/s2" save $img
docker rmi -f $img >/dev/null
t "docker load -i" docker load -i "$work/saved.tar"; dl=$(cat "$work/last")
docker rmi -f $img >/dev/null
t "ferry load" "$bin" --store "$work/s2" load $img; fl=$(cat "$work/last")
echo
awk -v fs="$fs" -v ds="$ds" -v fa="$fa" -v fl="$fl" -v dl="$dl" -v mb="$(( $(stat -c %s "$work/saved.tar") / 1000000 ))" 'BEGIN {
  printf "image %d MB; ferry save / (docker save + ferry add) = %.2f (target <= 1.2)\n", mb, fs / (ds + fa)
  printf "ferry load / docker load -i = %.2f (target <= 1.1)\n", fl / dl }'
