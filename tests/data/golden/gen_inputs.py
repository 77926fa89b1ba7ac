#!/usr/bin/env python3
"""Writes the golden fixtures' inputs: two versions of a small docker-save-like
archive (a.tar, b.tar) in OUTDIR, deterministically.

    gen_inputs.py OUTDIR plain   # three plain tar layers
    gen_inputs.py OUTDIR gz      # the middle layer gzip'd by GNU gzip (gzip -n -6)
    gen_inputs.py OUTDIR twins   # a.tar only, not a tar: random bytes and a
                                 # near copy of them (for volume sets whose
                                 # deltas name chunks of another volume)
    gen_inputs.py OUTDIR go      # Docker 29 style: every layer a blob named by
                                 # its sha256, gzip'd by a Go encoder: Go 1.8-1.26
                                 # compress/gzip level 6 ($GOLDEN_STDGZIP), pgzip
                                 # level 5 ($GOLDEN_PGZIP), Go 1.27 level 6
                                 # ($GOLDEN_GO127GZIP): tests/go programs

b.tar edits a few bytes in the middle of app/data.txt (a file of several
chunks), changes one small file of the middle layer, and adds a file; every
other byte of every file is the same. Text is drawn from a small vocabulary
by a fixed xorshift64 stream, so zstd packs it small while FastCDC still
finds content-defined cut points in it.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima "
    "mike november oscar papa quebec romeo sierra tango uniform victor whiskey "
    "xray yankee zulu layer chunk stream recipe header store pack volume "
    "offline ferry image config deflate gzip tar"
).split()


class Rng:
    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFFFFFFFFFF or 1

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.next() % n


def text(seed, size):
    rng = Rng(seed)
    out = bytearray()
    line = 0
    while len(out) < size:
        n = 4 + rng.below(9)
        words = " ".join(WORDS[rng.below(len(WORDS))] for _ in range(n))
        out += b"%06d %s\n" % (line, words.encode())
        line += 1
    return bytes(out[:size])


def tar_bytes(files, mtime=1700000000):
    """A ustar archive of (path, bytes) with fixed owners and times."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data):
    return subprocess.run(
        ["gzip", "-n", "-6", "-c"], input=data, stdout=subprocess.PIPE, check=True
    ).stdout


def go_gzip(program, level, data):
    return subprocess.run(
        [os.environ[program], "-level", str(level)], input=data, stdout=subprocess.PIPE, check=True
    ).stdout


# Layer i of the "go" variant: the program and level that compress it.
GO_ENCODERS = [("GOLDEN_STDGZIP", 6), ("GOLDEN_PGZIP", 5), ("GOLDEN_GO127GZIP", 6)]


def layers(version, mtime=1700000000):
    os_files = [("etc/os-release", b"NAME=golden\nVERSION_ID=1\n")] + [
        ("usr/share/doc/pkg%02d/README" % i, text(100 + i, 1500 + 97 * i))
        for i in range(8)
    ]
    lib_files = [
        ("usr/lib/golden/words.txt", text(200, 40000)),
        ("usr/lib/golden/version", b"lib 1.0\n" if version == "a" else b"lib 1.1\n"),
    ]
    data = bytearray(text(300, 70000))
    if version == "b":
        data[35000:35012] = b"EDITED-BYTES"
    app_files = [
        ("app/data.txt", bytes(data)),
        ("app/main.cfg", b"threads = 4\nmode = golden\n"),
    ]
    if version == "b":
        app_files.append(("app/NEW", b"added in b\n"))
    return [tar_bytes(f, mtime) for f in (os_files, lib_files, app_files)]


def archive(version, variant):
    names = []
    members = []
    # "gotime" is "go" with b's layers rebuilt an hour later: every file
    # of b has a new time (what a header delta carries).
    mtime = 1700003600 if variant == "gotime" and version == "b" else 1700000000
    for i, layer in enumerate(layers(version, mtime)):
        if variant in ("go", "gotime"):
            program, level = GO_ENCODERS[i]
            layer = go_gzip(program, level, layer)
            name = "blobs/sha256/" + hashlib.sha256(layer).hexdigest()
        elif variant == "gz" and i == 1:
            name = "layer%d/layer.tar.gz" % i
            layer = gzip_bytes(layer)
        else:
            name = "layer%d/layer.tar" % i
        names.append(name)
        members.append((name, layer))
    config = json.dumps({"golden": version, "variant": variant}, sort_keys=True).encode()
    manifest = json.dumps(
        [{"Config": "config.json", "RepoTags": ["golden:" + version], "Layers": names}]
    ).encode()
    return tar_bytes([("config.json", config)] + members + [("manifest.json", manifest)])


def twins():
    """460,000 bytes of a fixed xorshift64 stream, then the same with every
    9000th byte inverted: the second half's chunks resemble the first's."""
    rng = Rng(4242)
    first = bytearray()
    while len(first) < 460000:
        first += rng.next().to_bytes(8, "little")
    first = bytes(first[:460000])
    second = bytearray(first)
    for i in range(0, len(second), 9000):
        second[i] ^= 0xFF
    return first + bytes(second)


def main():
    out, variant = sys.argv[1], sys.argv[2]
    assert variant in ("plain", "gz", "go", "gotime", "twins")
    if variant == "twins":
        with open("%s/a.tar" % out, "wb") as f:
            f.write(twins())
        return
    for version in ("a", "b"):
        with open("%s/%s.tar" % (out, version), "wb") as f:
            f.write(archive(version, variant))


main()
