#!/usr/bin/env bash
# Volume sets against one whole pack: for the Python and Node corpus pairs
# (benches/corpus.sh), a full pack of v1 cut into FULL_SIZE volumes
# (default 64M) and the v2 update against v1 cut into DELTA_SIZE volumes
# (default 1M), beside the same pack whole. Prints bytes, delta chunks and
# volume counts, the time and peak RSS of the split pack, and of unpacking
# its volumes last first (so deltas wait for their bases), checked
# byte-exact against the input.
#   benches/volumes.sh [CORPUS_DIR] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-/tmp/ferry-corpus}
work=${2:-$(mktemp -d)}
full_size=${FULL_SIZE:-64M}
delta_size=${DELTA_SIZE:-1M}
[[ -f $corpus/python/v1.tar ]] || benches/corpus.sh "$corpus"
cargo build --release --quiet --bin ferry
bin=${FERRY:-$PWD/target/release/ferry}
timed() { # out-file, command... ; prints "seconds peak_MB"
  local out=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$out" 2>"$work/err" || { cat "$work/err"; exit 1; }
  awk '{printf "%.2f s, %.0f MB", $1, $2/1024}' "$work/time"
}
printf '%-16s %12s %6s | %-10s %12s %6s %7s | %-18s | %s\n' pack whole deltas volumes split deltas ratio "split pack" "unpack, last first"
for app in python node; do
  s=$work/s-$app
  rm -rf "$s" "$work/r-$app"
  "$bin" -q --store "$s" add "$corpus/$app/v1.tar" --name "$app:1" >/dev/null
  "$bin" -q --store "$s" add "$corpus/$app/v2.tar" --name "$app:2" >/dev/null
  for kind in full delta; do
    if [[ $kind == full ]]; then args=("$app:1"); size=$full_size; want=v1
    else args=("$app:2" --base "$app:1"); size=$delta_size; want=v2; fi
    rm -rf "$work/out" && mkdir "$work/out"
    "$bin" -q --store "$s" pack "${args[@]}" -o "$work/out/whole.ferry" --json >"$work/whole.json"
    packed=$(timed "$work/split.json" "$bin" -q --store "$s" pack "${args[@]}" -o "$work/out/v.ferry" --volume-size "$size" --json)
    r=$work/r-$app
    mapfile -t vols < <(ls "$work"/out/v.ferry.* | sort -r)
    unpacked=$(timed /dev/null "$bin" -q --store "$r" unpack "${vols[@]}")
    "$bin" -q --store "$r" checkout "$app:${want#v}" -o - 2>/dev/null | cmp - "$corpus/$app/$want.tar"
    python3 - "$app $kind" "$size" "$packed" "$unpacked" "$work/whole.json" "$work/split.json" <<'PY'
import json, sys
name, size, packed, unpacked, whole, split = sys.argv[1:]
w, s = json.load(open(whole)), json.load(open(split))
print(f"{name:16} {w['pack_bytes']:12,} {w['delta_chunks']:6} | {s['volumes']:3} × {size:<4} {s['pack_bytes']:12,} {s['delta_chunks']:6} {s['pack_bytes']/w['pack_bytes']:6.3f}× | {packed:18} | {unpacked}, byte-exact")
PY
  done
done
