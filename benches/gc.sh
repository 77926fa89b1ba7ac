#!/usr/bin/env bash
# Reclaiming space: two image-like versions of SIZE_MB (default 1024) where
# the second rebuilds every other layer, both added; then `ferry rm` of the
# first and `ferry gc`. Prints what only the first version used, what gc
# freed, gc's rate over the live bytes it moved and its peak RSS, and the
# rate of `verify --full` beside `b3sum` and `zstd -d` over the same store.
#   benches/gc.sh [SIZE_MB] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
work=${2:-$(mktemp -d)}
mkdir -p "$work"
cargo build --release --quiet --bin ferry --example sample_image
bin=${FERRY:-$PWD/target/release/ferry}
gen=$PWD/target/release/examples/sample_image
[[ -f $work/v1.tar ]] || "$gen" "$work/v1.tar" "$size" 1
[[ -f $work/v3.tar ]] || "$gen" "$work/v3.tar" "$size" 3
rm -rf "$work/s"
s=$work/s
"$bin" -q --store "$s" add "$work/v1.tar" >/dev/null
"$bin" -q --store "$s" add "$work/v3.tar" >/dev/null
timed() { # out-file, command... ; prints "seconds peak_kB"
  local out=$1; shift
  sync
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$out" 2>"$work/err" || { cat "$work/err"; exit 1; }
  cat "$work/time"
}
before=$(du -sb "$s/data" | cut -f1)
only=$("$bin" --store "$s" rm bench/app:1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_freed_by_gc"])')
read -r secs rss < <(timed "$work/gc.json" "$bin" -q --store "$s" gc --json)
after=$(du -sb "$s/data" | cut -f1)
python3 - "$work/gc.json" "$only" "$before" "$after" "$secs" "$rss" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
only, before, after, secs, rss = (float(x) for x in sys.argv[2:])
freed = before - after
print(f"data files before rm          {before/1e6:10.1f} MB")
print(f"only the removed version used {only/1e6:10.1f} MB")
print(f"gc freed                      {freed/1e6:10.1f} MB  ({100*freed/only:.1f}% of it)")
print(f"gc moved live chunks          {r['moved_bytes']/1e6:10.1f} MB in {secs:.2f} s = {r['moved_bytes']/1e6/max(secs,0.01):.0f} MB/s, peak RSS {rss/1024:.0f} MB")
PY
# The disk's own rate for as many bytes: cp of the rewritten data + sync.
read -r csecs _ < <(timed /dev/null sh -c "cat '$s'/data/*.dat >/dev/null; cp '$s'/data/*.dat '$work/cp.dat' && sync")
rm -f "$work/cp.dat"
echo "cp + sync of as many bytes    $(python3 -c "print(f'{$after/1e6/max($csecs,0.01):10.0f} MB/s ({$csecs:.2f} s)')")"
# verify --full over the store that is left, beside tools reading as much.
logical=$(stat -c %s "$work/v3.tar")
read -r vsecs vrss < <(timed /dev/null "$bin" -q --store "$s" verify --full)
echo "verify --full                 $(python3 -c "print(f'{$logical/1e6/max($vsecs,0.01):10.0f} MB/s of logical data ({$vsecs:.2f} s, peak RSS {$vrss/1024:.0f} MB)')")"
if command -v b3sum >/dev/null; then
  read -r bsecs _ < <(timed /dev/null sh -c "cat '$s'/data/*.dat | b3sum")
  echo "b3sum of the data files       $(python3 -c "print(f'{$after/1e6/max($bsecs,0.01):10.0f} MB/s ({$bsecs:.2f} s)')")"
fi
