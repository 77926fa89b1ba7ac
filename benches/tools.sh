#!/usr/bin/env bash
# The byte-delta and dedup tools users would use instead of ferry, on one
# version-bump pair (e.g. from benches/corpus.sh):
#   benches/tools.sh V1.tar V2.tar
# For each: bytes that must travel to bring a holder of V1 to V2, time to
# produce them (for dedup stores: the second backup), throughput over V2's
# size, and peak RSS (/usr/bin/time). Dedup stores report repository growth
# from the second version. Needs (Debian): rsync zstd xdelta3 casync restic
# borgbackup; a tool that is missing is skipped with a line saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
v1=$(realpath "$1"); v2=$(realpath "$2")
cargo build --release --quiet --bin ferry
bin=$PWD/target/release/ferry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
size=$(stat -c %s "$v2")
printf '%-34s %14s %8s %9s %9s %9s\n' tool bytes "% of v2" seconds "MB/s" "peak RSS"
# measure NAME BYTES-FILE-OR-DIR -- command...: runs, then reports
measured() { # runs "$@", leaves "secs rss" in $work/t
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || { echo "failed: $*"; cat "$work/err"; return 1; }
}
row() { # name bytes [secs rss]
  local secs rss
  read -r secs rss <"$work/t"
  awk -v n="$1" -v b="$2" -v f="$size" -v s="$secs" -v r="$rss" 'BEGIN {
    printf "%-34s %14d %7.2f%% %9.2f %9.0f %6.0f MB\n", n, b, 100 * b / f, s, f / 1e6 / (s > 0 ? s : 0.01), r / 1024 }'
}
du_b() { du -sb "$1" | cut -f1; }
have() { command -v "$1" >/dev/null || { printf '%-34s skipped: %s is not installed\n' "$2" "$1"; return 1; }; }

if have rsync "rsync --write-batch"; then
  mkdir -p "$work/rs/src" "$work/rs/dst"
  cp "$v1" "$work/rs/dst/img.tar"; cp "$v2" "$work/rs/src/img.tar"
  measured rsync --no-whole-file --write-batch="$work/rs/batch" "$work/rs/src/img.tar" "$work/rs/dst/img.tar"
  row "rsync --write-batch" "$(stat -c %s "$work/rs/batch")"
  rm -rf "$work/rs"
fi
if have zstd "zstd -19 --long=31 --patch-from"; then
  measured zstd -q -f -19 --long=31 --patch-from="$v1" "$v2" -o "$work/z.zst"
  row "zstd -19 --long=31 --patch-from" "$(stat -c %s "$work/z.zst")"
  measured zstd -q -f -3 --long=31 --patch-from="$v1" "$v2" -o "$work/z3.zst"
  row "zstd -3 --long=31 --patch-from" "$(stat -c %s "$work/z3.zst")"
  rm -f "$work"/z*.zst
fi
if have xdelta3 "xdelta3 -9 -s"; then
  measured xdelta3 -f -9 -e -s "$v1" "$v2" "$work/x.vcdiff"
  row "xdelta3 -9 -s" "$(stat -c %s "$work/x.vcdiff")"
  rm -f "$work/x.vcdiff"
fi
if have casync "casync make (store growth)"; then
  casync make --store="$work/ca.castr" "$work/v1.caibx" "$v1" >/dev/null
  before=$(du_b "$work/ca.castr")
  measured casync make --store="$work/ca.castr" "$work/v2.caibx" "$v2"
  row "casync make (store growth + index)" "$(( $(du_b "$work/ca.castr") - before + $(stat -c %s "$work/v2.caibx") ))"
  rm -rf "$work"/ca.castr "$work"/*.caibx
fi
if have restic "restic backup (repo growth)"; then
  export RESTIC_PASSWORD=bench RESTIC_REPOSITORY="$work/restic"
  restic init -q >/dev/null
  mkdir -p "$work/rin"; cp "$v1" "$work/rin/img.tar"
  restic backup -q "$work/rin" >/dev/null
  before=$(du_b "$work/restic"); cp "$v2" "$work/rin/img.tar"
  measured restic backup -q "$work/rin"
  row "restic backup (repo growth)" "$(( $(du_b "$work/restic") - before ))"
  rm -rf "$work/restic" "$work/rin"
fi
if have borg "borg create (repo growth)"; then
  export BORG_REPO="$work/borg" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
  borg init -e none >/dev/null
  mkdir -p "$work/bin"; cp "$v1" "$work/bin/img.tar"
  borg create ::v1 "$work/bin" >/dev/null
  before=$(du_b "$work/borg"); cp "$v2" "$work/bin/img.tar"
  measured borg create ::v2 "$work/bin"
  row "borg create (repo growth)" "$(( $(du_b "$work/borg") - before ))"
  rm -rf "$work/borg" "$work/bin"
fi
"$bin" -q --store "$work/ferry" add "$v1" --name v1 >/dev/null
measured "$bin" -q --store "$work/ferry" add "$v2" --name v2
read -r s_add r_add <"$work/t"
measured "$bin" -q --store "$work/ferry" pack v2 --base v1 -o "$work/update.ferry"
read -r s_pack r_pack <"$work/t"
awk -v a="$s_add" -v p="$s_pack" -v ra="$r_add" -v rp="$r_pack" 'BEGIN { printf "%s %d\n", a + p, (ra > rp ? ra : rp) }' >"$work/t"
row "ferry add + pack --base" "$(stat -c %s "$work/update.ferry")"
