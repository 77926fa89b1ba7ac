#!/usr/bin/env bash
# Registries: a private docker-registry (distribution 2.8) on a loopback
# port, filled by skopeo with the Python corpus pair (benches/corpus.sh;
# skopeo gzips the layers as it pushes). Then, side by side:
# - pull: `skopeo copy docker://… oci-archive:…` against `ferry pull` of v1
#   into an empty store, and of v2 into the store holding v1;
# - push: `skopeo copy docker-archive:… docker://…` of the corpus tars
#   against `ferry push` of the pulled snapshots, v1 into an empty
#   repository and v2 after it (each tool into its own repository);
# with time, MB/s of registry bytes, peak RSS, and what the store added or
# the registry received.
#   benches/registry.sh [CORPUS_DIR] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/tmp/ferry-corpus}
work=${2:-$(mktemp -d)}
mkdir -p "$work"
[[ -f $corpus/python/v1.tar ]] || benches/corpus.sh "$corpus"
cargo build --release --quiet --bin ferry
bin=${FERRY:-$PWD/target/release/ferry}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start_registry() { # name ; sets $reg_addr
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/$1.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/$1
http:
  addr: 127.0.0.1:$port
YML
  rm -rf "${work:?}/$1"
  docker-registry serve "$work/$1.yml" >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.2; done
  reg_addr=127.0.0.1:$port
}
# Each tool pushes into a registry of its own, so neither finds the
# other's blobs (skopeo also remembers where it put a layer before).
export XDG_DATA_HOME=$work/xdg
start_registry source; addr=$reg_addr
start_registry skopeo; skopeo_reg=$reg_addr
start_registry ferry; ferry_reg=$reg_addr
for v in 1 2; do
  env -u http_proxy -u https_proxy skopeo copy -q --dest-tls-verify=false --insecure-policy \
    "docker-archive:$corpus/python/v$v.tar" "docker://$addr/py:$v"
done
timed() { # command... ; prints "seconds peak_MB"
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err"; exit 1; }
  awk '{printf "%s %.0f\n", $1, $2/1024}' "$work/time"
}
size() { # registry bytes of an image: its manifest, config and layers
  curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$addr/v2/py/manifests/$1" |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["config"]["size"]+sum(l["size"] for l in m["layers"]))'
}
rm -rf "$work/s" "$work"/*.oci.tar
printf '%-12s %12s | %-24s | %-24s | %s\n' image "registry MB" "skopeo copy (s, MB/s, MB)" "ferry pull (s, MB/s, MB)" "ferry store added"
for v in 1 2; do
  bytes=$(size "$v")
  read -r ss sm < <(timed env -u http_proxy -u https_proxy skopeo copy -q --src-tls-verify=false --insecure-policy \
    "docker://$addr/py:$v" "oci-archive:$work/py$v.oci.tar")
  read -r fs fm < <(timed "$bin" -q --store "$work/s" pull "$addr/py:$v" --insecure --json)
  added=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["add"]["new_bytes"])' "$work/out")
  python3 - "$v" "$bytes" "$ss" "$sm" "$fs" "$fm" "$added" <<'PY'
import sys
v, b, ss, sm, fs, fm, added = sys.argv[1:]
b, ss, fs = int(b), float(ss), float(fs)
print(f"python v{v:<4} {b/1e6:12.1f} | {ss:6.2f} s {b/1e6/ss:6.1f} MB/s {sm:>4} | {fs:6.2f} s {b/1e6/fs:6.1f} MB/s {fm:>4} | {int(added)/1e6:8.1f} MB  (ferry {ss/fs:.2f}x skopeo's rate)")
PY
done
printf '\n%-12s %12s | %-24s | %-24s | %s\n' image "registry MB" "skopeo copy (s, MB/s, MB)" "ferry push (s, MB/s, MB)" "ferry sent / skipped"
for v in 1 2; do
  bytes=$(size "$v")
  read -r ss sm < <(timed env -u http_proxy -u https_proxy skopeo copy -q --dest-tls-verify=false --insecure-policy \
    "docker-archive:$corpus/python/v$v.tar" "docker://$skopeo_reg/py:$v")
  read -r fs fm < <(timed "$bin" -q --store "$work/s" push "$addr/py:$v" "$ferry_reg/py:$v" --insecure --json)
  sent=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%d blobs, %.1f MB / %d blobs" % (r["blobs_sent"], r["bytes_sent"]/1e6, r["blobs_skipped"]))' "$work/out")
  python3 - "$v" "$bytes" "$ss" "$sm" "$fs" "$fm" "$sent" <<'PY'
import sys
v, b, ss, sm, fs, fm, sent = sys.argv[1:]
b, ss, fs = int(b), float(ss), float(fs)
print(f"python v{v:<4} {b/1e6:12.1f} | {ss:6.2f} s {b/1e6/ss:6.1f} MB/s {sm:>4} | {fs:6.2f} s {b/1e6/fs:6.1f} MB/s {fm:>4} | {sent}  (ferry {ss/fs:.2f}x skopeo's rate)")
PY
done
