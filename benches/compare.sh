#!/usr/bin/env bash
# Bytes needed to bring a holder of V1 to V2, by every way of shipping it:
#   benches/compare.sh V1.tar V2.tar
# full tar, gzip -6, zstd -19, layer-level (new layers gzip -6), zstd
# --patch-from, ferry without and with tar-aware splitting, and the
# file-level limit (novel files zstd -3 each + all headers zstd -3).
# Needs zstd and gzip; builds ferry and the corpus_stats example.
set -euo pipefail
cd "$(dirname "$0")/.."
v1=$(realpath "$1"); v2=$(realpath "$2")
cargo build --release --quiet --bin ferry --example corpus_stats
bin=$PWD/target/release/ferry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
full=$(stat -c %s "$v2")
row() { printf '%-44s %14s %7s %9s\n' "$1" "$2" "$3" "$4"; }
pct() { awk -v a="$1" -v b="$full" 'BEGIN { printf "%.2f%%", 100 * a / b }'; }
timed() { # prints seconds; output size in $work/size
  local s=$(date +%s.%N); "$@"; awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1fs", e - s }'
}
row method bytes "% full" time
row "full tar (docker save)" "$full" "100%" -
t=$(timed sh -c "gzip -6 -c '$v2' | wc -c > '$work/size'"); row "gzip -6" "$(cat "$work/size")" "$(pct "$(cat "$work/size")")" "$t"
t=$(timed sh -c "zstd -q -19 -T2 -c '$v2' | wc -c > '$work/size'"); row "zstd -19" "$(cat "$work/size")" "$(pct "$(cat "$work/size")")" "$t"
"$PWD/target/release/examples/corpus_stats" "$v1" "$v2" --json > "$work/stats.json"
layer=$(python3 -c "import json;print(json.load(open('$work/stats.json'))['layer_level'])")
limit=$(python3 -c "import json;print(json.load(open('$work/stats.json'))['file_level_limit'])")
row "layer-level (new layers, gzip -6)" "$layer" "$(pct "$layer")" -
t=$(timed sh -c "zstd -q -3 --long=31 -T2 --patch-from='$v1' -c '$v2' | wc -c > '$work/size'"); row "zstd -3 --long=31 --patch-from" "$(cat "$work/size")" "$(pct "$(cat "$work/size")")" "$t"
if [[ ${SLOW:-0} == 1 ]]; then
  t=$(timed sh -c "zstd -q -19 --long=31 -T2 --patch-from='$v1' -c '$v2' | wc -c > '$work/size'"); row "zstd -19 --long=31 --patch-from" "$(cat "$work/size")" "$(pct "$(cat "$work/size")")" "$t"
fi
for mode in plain split; do
  flag=(); [[ $mode == plain ]] && flag=(--no-tar-split)
  "$bin" -q --store "$work/$mode" add "$v1" --name v1 "${flag[@]}" >/dev/null
  s=$(date +%s.%N)
  "$bin" -q --store "$work/$mode" add "$v2" --name v2 "${flag[@]}" >/dev/null
  "$bin" -q --store "$work/$mode" pack v2 --base v1 -o "$work/$mode.ferry" >/dev/null
  t=$(awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1fs", e - s }')
  n=$(stat -c %s "$work/$mode.ferry")
  [[ $mode == plain ]] && label="ferry, plain CDC (--no-tar-split)" || label="ferry (tar-aware)"
  row "$label" "$n" "$(pct "$n")" "$t"
  [[ $mode == split ]] && ferry=$n
done
row "file-level limit" "$limit" "$(pct "$limit")" -
awk -v f="$ferry" -v l="$limit" 'BEGIN { printf "\nferry / file-level limit = %.2f (target <= 1.15)\n", f / l }'
python3 -c "import json;d=json.load(open('$work/stats.json'));print('novel files: %d of %d (%d bytes; %d zstd -3), headers %d zstd -3; new layers %d of %d' % (d['novel_files'], d['files'], d['novel_file_bytes'], d['novel_files_zstd3'], d['headers_zstd3'], d['new_layers'], d['layers']))"
