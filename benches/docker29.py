#!/usr/bin/env python3
"""Re-saves a legacy `docker save` archive the way Docker 29 saves it: an OCI
layout (oci-layout, index.json, blobs/sha256/...) plus manifest.json, every
layer blob the gzip stream a Go program writes of the layer tar.

    docker29.py SRC.tar DST.tar PROGRAM LEVEL [PLAIN_OUT]

PROGRAM is one of the tests/go reference encoders (stdgzip or pgzip, built
with the Go to mirror), run as `PROGRAM -level LEVEL`. With PLAIN_OUT, the
layer tars are also written there, concatenated (the plain text the Go
program compressed, for timing it alone).
"""
import hashlib
import io
import json
import subprocess
import sys
import tarfile


def main():
    src, dst, program, level = sys.argv[1:5]
    plain_out = open(sys.argv[5], "wb") if len(sys.argv) > 5 else None
    with tarfile.open(src) as t:
        files = {m.name: t.extractfile(m).read() for m in t if m.isfile()}
    manifest = json.loads(files["manifest.json"])
    blobs = {}

    def blob(data):
        hexd = hashlib.sha256(data).hexdigest()
        blobs[hexd] = data
        return hexd, len(data)

    out_manifest, index = [], []
    for image in manifest:
        config = files[image["Config"]]
        chex, csize = blob(config)
        layers = []
        for path in image["Layers"]:
            plain = files[path]
            if plain_out:
                plain_out.write(plain)
            gz = subprocess.run([program, "-level", str(level)], input=plain,
                                stdout=subprocess.PIPE, check=True).stdout
            lhex, lsize = blob(gz)
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": "sha256:" + lhex, "size": lsize})
        m = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": "sha256:" + chex, "size": csize},
                        "layers": layers}).encode()
        mhex, msize = blob(m)
        tags = image.get("RepoTags") or []
        index.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "digest": "sha256:" + mhex, "size": msize,
                      "annotations": {"io.containerd.image.name": tags[0]} if tags else {}})
        out_manifest.append({"Config": "blobs/sha256/" + chex, "RepoTags": tags,
                             "Layers": ["blobs/sha256/" + l["digest"][7:] for l in layers]})
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as o:
        def put(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            o.addfile(info, io.BytesIO(data))
        for hexd, data in blobs.items():
            put("blobs/sha256/" + hexd, data)
        put("index.json", json.dumps({"schemaVersion": 2, "manifests": index}).encode())
        put("manifest.json", json.dumps(out_manifest).encode())
        put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')


main()
