#!/usr/bin/env bash
# ferry add + pack against `zstd -3 --long=31 --patch-from`, as issue 7 sets
# the target: bytes, and medians of RUNS interleaved runs (zstd CLI, then
# `ferry add` of V2 into a store holding V1, then `ferry pack V2 --base V1`).
#   benches/patch-from.sh V1.tar V2.tar [RUNS]     (default 7)
# Also prints `zstd -19 --long=31 --patch-from` bytes and time once (slow:
# minutes). Needs zstd and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
v1=$(realpath "$1"); v2=$(realpath "$2"); runs=${3:-7}
cargo build --release --quiet --bin ferry
bin=$PWD/target/release/ferry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" --store "$work/v1" add "$v1" --name v1 >/dev/null
t() { /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null 2>&1; awk '{printf "%d %d ", $1*1000, ($2+$3)*1000}' "$work/t"; }
for _ in $(seq "$runs"); do
  z=$(t sh -c "zstd -q -3 --long=31 --patch-from='$v1' -c '$v2' > '$work/z3'")
  rm -rf "$work/s"; cp -r "$work/v1" "$work/s"; sync
  a=$(t "$bin" --store "$work/s" add "$v2" --name v2)
  p=$(t "$bin" --store "$work/s" pack v2 --base v1 -o "$work/p.ferry")
  echo "$z $a $p"
done | python3 -c "
import sys, statistics as st
r = [list(map(int, l.split())) for l in sys.stdin]
m = lambda k: st.median(x[k] for x in r)
print('wall ms: zstd -3 %d, ferry add %d + pack %d' % (m(0), m(2), m(4)))
print('cpu ms:  zstd -3 %d, ferry add %d + pack %d' % (m(1), m(3), m(5)))
q = sorted(round((x[2] + x[4]) / x[0], 2) for x in r)
print('(add+pack)/zstd -3 per run: median %.2f, all %s' % (st.median(q), q))"
echo "bytes: zstd -3 $(stat -c %s "$work/z3"), ferry $(stat -c %s "$work/p.ferry")"
s=$(date +%s.%N)
n=$(zstd -q -19 --long=31 --patch-from="$v1" -c "$v2" | wc -c)
echo "bytes: zstd -19 $n in $(awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')"
