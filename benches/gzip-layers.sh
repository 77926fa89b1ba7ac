#!/usr/bin/env bash
# gzip'd layers: the same version-bump pair with compressed layers, as OCI
# archives and containerd's `docker save` carry them.
#   benches/gzip-layers.sh V1.tar V2.tar [WORKDIR]
# Makes two variants of each docker-archive and runs benches/compare.sh on
# both pairs:
#   gzip6   every layer compressed with GNU gzip -6 -n (zlib-style deflate,
#           which preflate-rs re-creates: ferry splits the layers' files);
#   skopeo  `skopeo copy docker-archive: oci-archive:` (Go's compress/flate,
#           which preflate-rs 0.7 cannot model: ferry keeps those layers as
#           compressed bytes and `ls --json` counts them as
#           meta.split.gzip_fallback_layers). Skipped without skopeo.
set -euo pipefail
cd "$(dirname "$0")/.."
v1=$(realpath "$1"); v2=$(realpath "$2")
work=${3:-$(mktemp -d)}
mkdir -p "$work"
gzip_layers() { # SRC DST: the archive with every tar entry of >1 KiB gzip -6'd
  python3 - "$1" "$2" <<'PY'
import io, subprocess, sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
with tarfile.open(src) as t, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as o:
    for m in t:
        data = t.extractfile(m).read() if m.isfile() else None
        if data is not None and len(data) > 1024:
            try:
                tarfile.open(fileobj=io.BytesIO(data)).getmembers()
                data = subprocess.run(["gzip", "-6", "-n", "-c"], input=data,
                                      stdout=subprocess.PIPE, check=True).stdout
                m.size = len(data)
            except tarfile.TarError:
                pass
        o.addfile(m, io.BytesIO(data) if data is not None else None)
PY
}
for v in 1 2; do
  src=$v1; [[ $v == 2 ]] && src=$v2
  [[ -f $work/gzip6-v$v.tar ]] || gzip_layers "$src" "$work/gzip6-v$v.tar"
  if command -v skopeo >/dev/null && [[ ! -f $work/skopeo-v$v.tar ]]; then
    skopeo copy --quiet "docker-archive:$src" "oci-archive:$work/skopeo-v$v.tar"
  fi
done
echo "== gzip -6 layers (re-created through preflate-rs)"
benches/compare.sh "$work/gzip6-v1.tar" "$work/gzip6-v2.tar"
if [[ -f $work/skopeo-v1.tar ]]; then
  echo "== skopeo OCI archive (Go deflate: kept as compressed bytes)"
  benches/compare.sh "$work/skopeo-v1.tar" "$work/skopeo-v2.tar"
  echo "(on this pair the file-level limit counts each compressed layer as one file:"
  echo " the splitter cannot see inside layers preflate-rs cannot re-create)"
else
  echo "skopeo not installed: skipping the OCI archive pair"
fi
