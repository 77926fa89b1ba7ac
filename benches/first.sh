#!/usr/bin/env bash
# The first transfer of an image: what a full pack ships at each level,
# against what users make today, on one archive (e.g. v1.tar of
#   benches/corpus.sh):
#   benches/first.sh IMAGE.tar
# Rows: `gzip -6` and `zstd -19 --long=27 -T2` of the archive, then
# `ferry pack NAME --level fast|default|max` from a store that already holds
# it, then `ferry unpack` of each pack into an empty store. Each row gives
# bytes, the ratio to gzip -6, seconds, the ratio to gzip -6's time, MB/s
# over the archive and peak RSS (/usr/bin/time). FERRY=path runs another
# build. Needs gzip and zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
archive=$(realpath "$1")
if [ -z "${FERRY:-}" ]; then
  cargo build --release --quiet --bin ferry
  FERRY=$PWD/target/release/ferry
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
size=$(stat -c %s "$archive")
measured() { # runs "$@", leaves "secs rss" in $work/t
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { echo "failed: $*"; cat "$work/err"; exit 1; }
}
gz_bytes=0 gz_secs=0
row() { # name bytes: prints the row of the last measured command
  local secs rss
  read -r secs rss <"$work/t"
  if [ "$gz_bytes" = 0 ]; then gz_bytes=$2 gz_secs=$secs; fi
  awk -v n="$1" -v b="$2" -v f="$size" -v s="$secs" -v r="$rss" -v gb="$gz_bytes" -v gs="$gz_secs" 'BEGIN {
    printf "%-28s %12d %6.3fx %8.2f %6.2fx %8.0f %6.0f MB\n", n, b, b / gb, s, s / gs, f / 1e6 / (s > 0 ? s : 0.01), r / 1024 }'
}
printf '%-28s %12s %7s %8s %7s %8s %9s\n' "" bytes "/gzip" seconds "/gzip" "MB/s" "peak RSS"
measured sh -c "gzip -6 -c '$archive' > '$work/a.gz'"
row "gzip -6" "$(stat -c %s "$work/a.gz")"
rm "$work/a.gz"
measured sh -c "zstd -q -19 --long=27 -T2 -c '$archive' > '$work/a.zst'"
row "zstd -19 --long=27 -T2" "$(stat -c %s "$work/a.zst")"
rm "$work/a.zst"
"$FERRY" -q --store "$work/s" add "$archive" --name first:1 >/dev/null
for level in fast default max; do
  measured "$FERRY" -q --store "$work/s" pack first:1 --level "$level" -o "$work/$level.ferry"
  row "ferry pack --level $level" "$(stat -c %s "$work/$level.ferry")"
done
for level in fast default max; do
  rm -rf "$work/r"
  measured "$FERRY" -q --store "$work/r" unpack "$work/$level.ferry"
  row "ferry unpack ($level)" "$(stat -c %s "$work/$level.ferry")"
done
