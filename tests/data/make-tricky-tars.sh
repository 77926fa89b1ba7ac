#!/usr/bin/env bash
# Regenerates the hand-crafted tars in tars/ (committed; run as root for the
# device entries). Each exercises a header kind ferry's tar splitter must
# follow byte-exactly: ustar, GNU and PAX headers, long names and links,
# hardlinks, symlinks, devices, fifos, old-GNU and PAX sparse files, empty
# files, base-256 numbers, global PAX headers, a single end block, record
# padding, and garbage after the end marker.
set -euo pipefail
cd "$(dirname "$0")"
out=$PWD/tars
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p src/dir/sub
printf 'hello\n' > src/hello.txt
: > src/empty
head -c 70000 /dev/zero | tr '\0' 'a' > src/dir/seventy-k.txt
long=src/dir/sub/$(printf 'n%.0s' {1..120})/$(printf 'm%.0s' {1..60})
mkdir -p "$(dirname "$long")"
printf 'long\n' > "$long"
ln -s "$(printf 't%.0s' {1..150})" src/dir/long-link
ln -s hello.txt src/link
ln src/hello.txt src/hardlink
printf 'utf8 \xc3\xa9\n' > "src/caf$(printf '\xc3\xa9').txt"
truncate -s 3M src/sparse
printf 'data-in-the-middle' | dd of=src/sparse bs=1 seek=1500000 conv=notrunc status=none
printf 'end' | dd of=src/sparse bs=1 seek=3000000 conv=notrunc status=none
export TZ=UTC
common=(--sort=name --owner=0 --group=0 --mtime=2024-01-02)
tar "${common[@]}" --format=ustar -cf "$out/ustar.tar" -C src hello.txt empty dir/seventy-k.txt link hardlink
tar "${common[@]}" --format=gnu --exclude=./sparse -cf "$out/gnu-long-names.tar" -C src .
tar "${common[@]}" --format=pax --exclude=./sparse -cf "$out/pax.tar" -C src .
tar "${common[@]}" --format=gnu --sparse -cf "$out/sparse-gnu.tar" -C src sparse hello.txt
tar "${common[@]}" --format=pax --sparse -cf "$out/sparse-pax.tar" -C src sparse hello.txt
tar "${common[@]}" --format=gnu -b 1 -cf "$out/blocking-1.tar" -C src hello.txt
: > "$out/empty-archive.tar"; head -c 1024 /dev/zero > "$out/empty-archive.tar"
if [[ $(id -u) == 0 ]]; then
  mkdir devs && mknod devs/null c 1 3 && mknod devs/loop b 7 0 && mkfifo devs/fifo
  tar "${common[@]}" --format=gnu -cf "$out/devices.tar" -C devs .
fi
python3 - "$out" <<'PY'
import io, sys, tarfile
out = sys.argv[1]
def add(tf, name, data, **kw):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1_700_000_000
    for k, v in kw.items(): setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data))
with tarfile.open(f"{out}/pax-global.tar", "w", format=tarfile.PAX_FORMAT,
                  pax_headers={"comment": "global header for every entry"}) as tf:
    add(tf, "a.txt", b"a" * 1000)
    add(tf, "b.txt", b"b" * 513, pax_headers={"size": "513", "mtime": "1700000000.5"})
with tarfile.open(f"{out}/base256.tar", "w", format=tarfile.GNU_FORMAT) as tf:
    add(tf, "big-ids.txt", b"ids\n", uid=2**40, gid=2**40)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
    add(tf, "x.bin", bytes(range(256)) * 20)
    add(tf, "zero-size", b"")
raw = buf.getvalue()
end = 512 + 5120 + 512  # header + data + header of the empty file
open(f"{out}/single-end-block.tar", "wb").write(raw[:end] + bytes(512))
open(f"{out}/trailing-garbage.tar", "wb").write(raw + b"garbage after the end marker\n" * 50)
open(f"{out}/truncated.tar", "wb").write(raw[:3000])
PY
ls -l "$out"
