#!/usr/bin/env bash
# End-to-end throughput and peak memory of the ferry binary on a large
# image-like archive (default 2048 MB), as a user would run it.
#   benches/engine.sh [SIZE_MB] [WORKDIR]
#   FERRY=path/to/ferry benches/engine.sh ...   measures another build (e.g. an
#                                               older release, for a side-by-side run)
# Prints one row per step: seconds, MB/s of the logical stream, peak RSS.
# Generated data stays in WORKDIR (default: a temp dir, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2048}
work=${2:-$(mktemp -d)}
keep=${2:+yes}
mkdir -p "$work"
cargo build --release --quiet --bin ferry --example sample_image
bin=${FERRY:-$PWD/target/release/ferry}
gen=$PWD/target/release/examples/sample_image
[[ -f $work/v1.tar ]] || "$gen" "$work/v1.tar" "$size" 1
[[ -f $work/v2.tar ]] || "$gen" "$work/v2.tar" "$size" 2
rm -rf "$work/a" "$work/b"
bytes=$(stat -c %s "$work/v2.tar")
printf '%-36s %8s %10s %10s\n' step seconds MB/s "peak RSS"
step() { # name, logical bytes, command...
  local name=$1 n=$2; shift 2
  sync
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r secs rss <"$work/time"
  awk -v name="$name" -v s="$secs" -v n="$n" -v rss="$rss" \
    'BEGIN { printf "%-36s %8.2f %10.0f %7.0f MB\n", name, s, n / 1e6 / (s > 0 ? s : 0.01), rss / 1024 }'
}
step "add v1 (new data)" "$bytes" "$bin" --store "$work/a" add "$work/v1.tar"
step "add v1 again (known data)" "$bytes" "$bin" --store "$work/a" add "$work/v1.tar" --name again
step "add v2 (a few files edited)" "$bytes" "$bin" --store "$work/a" add "$work/v2.tar"
step "pack v1 (full)" "$bytes" "$bin" --store "$work/a" pack bench/app:1 -o "$work/full.ferry"
step "pack v2 --base v1" "$bytes" "$bin" --store "$work/a" pack bench/app:2 --base bench/app:1 -o "$work/update.ferry"
step "unpack full" "$bytes" "$bin" --store "$work/b" unpack "$work/full.ferry"
step "unpack update" "$bytes" "$bin" --store "$work/b" unpack "$work/update.ferry"
step "checkout v2 to a pipe" "$bytes" sh -c "'$bin' --store '$work/b' checkout bench/app:2 -o - >/dev/null"
step "checkout v2 to a file (+fsync)" "$bytes" "$bin" --store "$work/b" checkout bench/app:2 -o "$work/out.tar"
step "cp + sync of v2 (disk baseline)" "$bytes" sh -c "cp '$work/v2.tar' '$work/cp.tar' && sync"
cmp "$work/out.tar" "$work/v2.tar"
echo
echo "input $((bytes / 1000000)) MB; full pack $(( $(stat -c %s "$work/full.ferry") / 1000000 )) MB; update pack $(( $(stat -c %s "$work/update.ferry") / 1000 )) kB; checkout byte-identical"
[[ -n $keep ]] || rm -rf "$work"
