#!/usr/bin/env bash
# Realistic "version bump" Docker image corpus for ferry benchmarks.
#   benches/corpus.sh [WORK]          (default WORK=/tmp/ferry-corpus; root)
#
# Builds two image pairs from REAL public packages, downloaded at run time
# (Debian .debs with apt-get download, wheels/sdists from PyPI with pip, npm
# packages with npm) and never committed, then `docker save`s them:
#   WORK/python/v1.tar  WORK/python/v2.tar   corpus-py:1   corpus-py:2
#   WORK/node/v1.tar    WORK/node/v2.tar     corpus-node:1 corpus-node:2
# Downloads are cached in WORK/cache; an existing tar is not rebuilt (delete it
# to rebuild). WORK/MANIFEST.txt lists every package and version used.
# Images are built on a private, temporary dockerd (vfs, no networking) that
# the script starts and removes; the system daemon is never touched.
#
# Every image has the same base layer: a rootfs of real Debian 12 .debs
# (libc6, libstdc++6, libssl3, zlib, sqlite, ncurses, readline, tzdata,
# ca-certificates ... see BASE_DEBS) tarred with fixed mtimes and imported as
# corpus-base:1. The base layer of v1 and v2 is byte-identical. Then:
#
# Python pair (corpus-py), layers in this order:
#   1. base                                            identical in v1 and v2
#   2. system: Debian python3.11 + its libs (PY_DEBS), dpkg -x, COPY to /.
#      v2 re-extracts the SAME .debs into a fresh dir and touches every file
#      and dir (fixed date, 2024-06-01): same bytes, every mtime differs.
#   3. deps: 25 pinned wheels (FastAPI/pydantic/uvicorn, requests,
#      numpy/pandas, SQLAlchemy ... see PY_V1) `pip install --no-deps
#      --target` (compiles .pyc) into /usr/local/lib/python3.11/dist-packages.
#      v2 reinstalls ALL of them into a fresh dir (so every file's mtime and
#      every .pyc header changes) with 4 packages bumped one release
#      (PY_V2_BUMPS: requests, urllib3, pydantic + pydantic-core, pandas).
#   4. app: the sdist of httpx 0.27.0 (v1) / 0.27.1 (v2) extracted to /app.
#   ENV APP_VERSION=1 / 2.
#
# Node pair (corpus-node), layers in this order:
#   1. base                                            identical in v1 and v2
#   2. runtime: Debian nodejs 18 + libnode108 + its libs (NODE_DEBS), dpkg -x,
#      COPY to /; v2 re-extracts the same .debs with touched mtimes.
#   3. node_modules: `npm install --ignore-scripts` of 15 pinned packages
#      (express, typescript, axios, lodash, react ... see NODE_V1) into
#      /app/node_modules. v2 starts from v1's package-lock.json (transitive
#      deps stay where v1 resolved them) in a fresh dir and bumps 3 packages
#      one release (NODE_V2_BUMPS: typescript 5.4.4->5.4.5, which rewrites
#      lib/typescript.js, tsserver.js, tsc.js, typingsInstaller.js; axios;
#      pg). Fresh install: every file's mtime differs, ~23 of ~11,000 files
#      change content, none are added or removed.
#   4. app: `npm pack` of koa 2.15.2 (v1) / 2.15.3 (v2) extracted to /app.
#   ENV APP_VERSION=1 / 2.
#
# Note: transitive npm deps float to the newest version the registry has at
# the first run (then pinned by the cached v1 lockfile), and Debian .debs are
# whatever bookworm(-security) currently ships; MANIFEST.txt records both.
# Sizes (docker save, uncompressed): Python ~265 MB per image (base 28 MB,
# system 32, deps 203, app 1), Node ~206 MB (base 28, runtime 92,
# node_modules 87, app 0.1). First run ~4 min on 2 cores, then instant.
# Needs: root, dockerd + docker (Debian docker.io), apt-get, dpkg, python3
# with pip (3.11, to compile .pyc for Debian's python3.11), npm.
set -Eeuo pipefail

WORK=${1:-/tmp/ferry-corpus}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
CACHE=$WORK/cache
LOGS=$WORK/logs
BUILD=$WORK/build
mkdir -p "$CACHE" "$LOGS" "$BUILD" "$WORK/python" "$WORK/node"

# ---------------------------------------------------------------- packages --
BASE_DEBS=(base-files netbase gcc-12-base libc6 libgcc-s1 libstdc++6 zlib1g
  libssl3 libffi8 libexpat1 libsqlite3-0 liblzma5 libbz2-1.0 libcrypt1
  libuuid1 readline-common libreadline8 libncursesw6 libtinfo6
  ca-certificates tzdata)
PY_DEBS=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  python3.11 libpython3.11 media-types libdb5.3 libnsl2 libtirpc3
  libtirpc-common libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0
  libcom-err2 libkeyutils1)
NODE_DEBS=(nodejs libnode108 libbrotli1 libc-ares2 libicu72 libnghttp2-14
  libuv1 node-acorn node-xtend node-cjs-module-lexer node-undici node-busboy)

PY_V1=(
  fastapi==0.110.3 starlette==0.37.2 pydantic==2.7.1 pydantic-core==2.18.2
  annotated-types==0.6.0 uvicorn==0.29.0 anyio==4.3.0 sniffio==1.3.1
  idna==3.7 h11==0.14.0 httpcore==1.0.5 click==8.1.7 typing-extensions==4.11.0
  requests==2.32.2 urllib3==2.2.1 certifi==2024.2.2 charset-normalizer==3.3.2
  numpy==1.26.4 pandas==2.2.1 python-dateutil==2.9.0.post0 pytz==2024.1
  tzdata==2024.1 six==1.16.0 SQLAlchemy==2.0.30 greenlet==3.0.3
)
PY_V2_BUMPS=(requests==2.32.3 urllib3==2.2.2 pydantic==2.7.2
  pydantic-core==2.18.3 pandas==2.2.2)
PY_APP=httpx PY_APP_V1=0.27.0 PY_APP_V2=0.27.1

NODE_V1=(
  express@4.19.2 typescript@5.4.4 axios@1.7.1 lodash@4.17.21 moment@2.30.1
  react@18.3.1 react-dom@18.3.1 dotenv@16.4.5 uuid@9.0.1 pg@8.11.5
  jsonwebtoken@9.0.2 winston@3.13.0 zod@3.23.8 rxjs@7.8.1 date-fns@3.6.0
)
NODE_V2_BUMPS=(typescript@5.4.5 axios@1.7.2 pg@8.11.6)
NODE_APP=koa NODE_APP_V1=2.15.2 NODE_APP_V2=2.15.3

FIXED_MTIME=1704067200   # 2024-01-01: every file of the base rootfs tar
TOUCH_MTIME=1717200000   # 2024-06-01: every file of the v2 system/runtime layer

# ----------------------------------------------------------------- helpers --
STEP="start"
say() { printf '\n== %s\n' "$*"; }
step() { STEP=$*; say "$*"; }
exec 3>&2   # the terminal's stderr, for failure messages raised inside run()'s redirection
ERR_SHOWN=
on_err() {
  local rc=$?
  [[ -n $ERR_SHOWN ]] && return 0
  ERR_SHOWN=1
  local where=${FUNCNAME[*]:1}
  echo "corpus.sh: FAILED (exit $rc) at step: $STEP (line $1${where:+, in: ${where// / <- }})" >&3
  if [[ -n ${LAST_LOG:-} && -s $LAST_LOG ]]; then
    echo "--- last lines of $LAST_LOG:" >&3
    tail -n 25 "$LAST_LOG" >&3
  fi
}
trap 'on_err $LINENO' ERR
# run LOGNAME cmd...: output to WORK/logs/LOGNAME.log, shown on failure.
run() {
  LAST_LOG=$LOGS/$1.log; shift
  "$@" >"$LAST_LOG" 2>&1
}
# Python's pip without the machine's local wheel dir: only real PyPI files.
pip_() { env -u PIP_FIND_LINKS python3 -m pip "$@"; }
npm_() { npm --cache "$CACHE/npm" --no-audit --no-fund --loglevel=warn "$@"; }

for tool in apt-get apt-cache dpkg dockerd docker python3 npm tar; do
  command -v $tool >/dev/null || { echo "corpus.sh: '$tool' not found (need root on Debian with docker.io, python3+pip, npm)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "corpus.sh: run as root (private dockerd)" >&2; exit 1; }
T0=$SECONDS

# ------------------------------------------------------------------- debs --
APT_UPDATED=
apt_update_once() {
  [[ -n $APT_UPDATED ]] && return 0
  APT_UPDATED=1
  say "apt-get update"
  run apt-update apt-get update
}
# Newest version of PKG that a Debian repository offers (not a locally
# installed one: e.g. nodejs may be installed from elsewhere).
repo_version() { apt-cache madison "$1" 2>/dev/null | awk -F'|' 'NR==1 {gsub(/ /, "", $2); print $2}'; }
# fetch_debs NAME pkgs...: cached in CACHE/debs/NAME, once.
fetch_debs() {
  local name=$1; shift
  local dir=$CACHE/debs/$name
  [[ -f $dir/.done ]] && { echo "cached: $dir ($(ls "$dir"/*.deb | wc -l) debs)"; return 0; }
  rm -rf "$dir"; mkdir -p "$dir"
  local specs=() p v
  for p in "$@"; do
    v=$(repo_version "$p")
    if [[ -z $v ]]; then apt_update_once; v=$(repo_version "$p"); fi
    [[ -n $v ]] || { echo "no Debian version found for $p" >&2; return 1; }
    specs+=("$p=$v")
  done
  if ! (cd "$dir" && run "debs-$name" apt-get download "${specs[@]}"); then
    apt_update_once
    specs=()
    for p in "$@"; do specs+=("$p=$(repo_version "$p")"); done
    (cd "$dir" && run "debs-$name" apt-get download "${specs[@]}")
  fi
  [[ $(ls "$dir"/*.deb | wc -l) == "$#" ]] || { echo "expected $# debs in $dir" >&2; return 1; }
  touch "$dir/.done"
  echo "downloaded $# debs into $dir"
}
# extract_debs DEBDIR DEST [touch]: dpkg -x every deb into a fresh DEST.
extract_debs() {
  local src=$1 dest=$2 touch=${3:-}
  rm -rf "$dest"; mkdir -p "$dest"
  local d
  for d in "$src"/*.deb; do dpkg -x "$d" "$dest"; done
  rm -rf "$dest/usr/share/doc" "$dest/usr/share/man" "$dest/usr/share/lintian"
  if [[ $touch == touch ]]; then
    find "$dest" -mindepth 1 -exec touch -h -d "@$TOUCH_MTIME" {} +
  fi
}

step "download Debian .debs (base, python, node)"
fetch_debs base "${BASE_DEBS[@]}"
fetch_debs python "${PY_DEBS[@]}"
fetch_debs node "${NODE_DEBS[@]}"

step "base rootfs tar (fixed mtimes)"
BASE_TAR=$CACHE/base-rootfs.tar
if [[ -f $BASE_TAR ]]; then
  echo "cached: $BASE_TAR"
else
  rootfs=$BUILD/base-rootfs
  extract_debs "$CACHE/debs/base" "$rootfs"
  (
    cd "$rootfs"
    mkdir -p tmp root proc sys dev etc/ssl/certs var/tmp
    chmod 1777 tmp var/tmp; chmod 700 root
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >etc/passwd
    printf 'root:x:0:\nnogroup:x:65534:\n' >etc/group
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >etc/nsswitch.conf
    # what update-ca-certificates would produce from the package's certs
    cat usr/share/ca-certificates/mozilla/*.crt >etc/ssl/certs/ca-certificates.crt
    ln -sf /usr/share/zoneinfo/Etc/UTC etc/localtime
    echo Etc/UTC >etc/timezone
  )
  tar --sort=name --format=gnu --mtime="@$FIXED_MTIME" --owner=0 --group=0 --numeric-owner \
    -C "$rootfs" -cf "$BASE_TAR.tmp" .
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$rootfs"
  echo "wrote $BASE_TAR ($(du -m "$BASE_TAR" | cut -f1) MB)"
fi

# ------------------------------------------------------------------ python --
# v2 package list = v1 with the bumps substituted (by name).
py_v2_list() {
  local p b name out=()
  for p in "${PY_V1[@]}"; do
    name=${p%%==*}
    for b in "${PY_V2_BUMPS[@]}"; do [[ ${b%%==*} == "$name" ]] && p=$b; done
    out+=("$p")
  done
  echo "${out[@]}"
}
PY_V2=($(py_v2_list))
WHEELS=$CACHE/wheels
# The wheel file of NAME==VER in WHEELS (normalised the way wheels name it).
wheel_of() {
  local name=${1%%==*} ver=${1##*==}
  name=$(echo "$name" | tr 'A-Z-' 'a-z_')
  local f
  for f in "$WHEELS"/*.whl; do
    local base=${f##*/}
    local n=${base%%-*} rest=${base#*-}
    [[ $(echo "$n" | tr 'A-Z-' 'a-z_') == "$name" && ${rest%%-*} == "$ver" ]] && { echo "$f"; return 0; }
  done
  return 1
}
fetch_wheels() { # specs...
  mkdir -p "$WHEELS"
  local need=() s
  for s in "$@"; do wheel_of "$s" >/dev/null || need+=("$s"); done
  [[ ${#need[@]} == 0 ]] && { echo "cached: all $# wheels"; return 0; }
  echo "pip download ${#need[@]} wheels: ${need[*]}"
  run pip-download pip_ download --no-deps --only-binary=:all: --python-version 3.11 \
    --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform any -d "$WHEELS" "${need[@]}"
  for s in "$@"; do wheel_of "$s" >/dev/null || { echo "no wheel for $s after pip download" >&2; return 1; }; done
}
fetch_sdist() { # name version -> prints path of the .tar.gz
  local dir=$CACHE/sdist/$1-$2
  if ! ls "$dir"/*.tar.gz >/dev/null 2>&1; then
    rm -rf "$dir"; mkdir -p "$dir"
    run "sdist-$1-$2" pip_ download --no-deps --no-binary=:all: -d "$dir" "$1==$2"
  fi
  ls "$dir"/*.tar.gz
}

build_python() { # version 1|2
  local v=$1 ctx=$BUILD/python-v$v
  local -a specs
  if [[ $v == 1 ]]; then specs=("${PY_V1[@]}"); else specs=("${PY_V2[@]}"); fi
  rm -rf "$ctx"; mkdir -p "$ctx"

  local touch=; if [[ $v == 2 ]]; then touch=touch; fi
  step "python v$v: system layer (python3.11 .debs${touch:+, every mtime touched})"
  extract_debs "$CACHE/debs/python" "$ctx/system" "$touch"
  echo "system: $(du -sm "$ctx/system" | cut -f1) MB"

  step "python v$v: dependency layer (pip install --target, ${#specs[@]} wheels)"
  local whls=() s
  for s in "${specs[@]}"; do whls+=("$(wheel_of "$s")"); done
  run "pip-install-v$v" pip_ install --no-deps --no-index --no-cache-dir --target "$ctx/site-packages" "${whls[@]}"
  echo "site-packages: $(du -sm "$ctx/site-packages" | cut -f1) MB"

  step "python v$v: app layer ($PY_APP sdist)"
  local ver; if [[ $v == 1 ]]; then ver=$PY_APP_V1; else ver=$PY_APP_V2; fi
  local sd; sd=$(fetch_sdist "$PY_APP" "$ver")
  mkdir -p "$ctx/app"
  tar -xzf "$sd" -C "$ctx/app" --strip-components=1
  echo "app: $PY_APP $ver ($(du -sm "$ctx/app" | cut -f1) MB)"

  cat >"$ctx/Dockerfile" <<EOF
FROM corpus-base:1
COPY system/ /
COPY site-packages/ /usr/local/lib/python3.11/dist-packages/
COPY app/ /app/
ENV APP_VERSION=$v PYTHONPATH=/app PATH=/usr/local/lib/python3.11/dist-packages/bin:/usr/local/bin:/usr/bin:/bin
EOF
  docker_build corpus-py:$v "$ctx"
  docker_save corpus-py:$v "$WORK/python/v$v.tar"
  rm -rf "$ctx"
}

# -------------------------------------------------------------------- node --
NODE_CACHE=$CACHE/node
build_node() { # version 1|2
  local v=$1 ctx=$BUILD/node-v$v
  rm -rf "$ctx"; mkdir -p "$ctx/deps"

  local touch=; if [[ $v == 2 ]]; then touch=touch; fi
  step "node v$v: runtime layer (nodejs .debs${touch:+, every mtime touched})"
  extract_debs "$CACHE/debs/node" "$ctx/runtime" "$touch"
  echo "runtime: $(du -sm "$ctx/runtime" | cut -f1) MB"

  step "node v$v: node_modules layer (npm install)"
  mkdir -p "$NODE_CACHE"
  printf '{\n  "name": "corpus-node-service",\n  "version": "1.0.0",\n  "private": true\n}\n' >"$ctx/deps/package.json"
  if [[ $v == 1 ]]; then
    if [[ -f $NODE_CACHE/v1-package-lock.json ]]; then
      # same tree as the first run: install exactly what the lock says
      cp "$NODE_CACHE/v1-package.json" "$ctx/deps/package.json"
      cp "$NODE_CACHE/v1-package-lock.json" "$ctx/deps/package-lock.json"
      run npm-install-v1 npm_ ci --ignore-scripts --prefix "$ctx/deps"
    else
      run npm-install-v1 npm_ install --ignore-scripts --save-exact --prefix "$ctx/deps" "${NODE_V1[@]}"
      cp "$ctx/deps/package.json" "$NODE_CACHE/v1-package.json"
      cp "$ctx/deps/package-lock.json" "$NODE_CACHE/v1-package-lock.json"
    fi
  else
    [[ -f $NODE_CACHE/v1-package-lock.json ]] || { echo "v1 lockfile missing: build node v1 first" >&2; return 1; }
    cp "$NODE_CACHE/v1-package.json" "$ctx/deps/package.json"
    cp "$NODE_CACHE/v1-package-lock.json" "$ctx/deps/package-lock.json"
    run npm-install-v2 npm_ install --ignore-scripts --save-exact --prefix "$ctx/deps" "${NODE_V2_BUMPS[@]}"
    cp "$ctx/deps/package-lock.json" "$NODE_CACHE/v2-package-lock.json"
  fi
  echo "node_modules: $(du -sm "$ctx/deps/node_modules" | cut -f1) MB, $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["packages"]) - 1)' "$ctx/deps/package-lock.json") packages"

  step "node v$v: app layer ($NODE_APP npm pack)"
  local ver; if [[ $v == 1 ]]; then ver=$NODE_APP_V1; else ver=$NODE_APP_V2; fi
  local pk=$NODE_CACHE/pack/$NODE_APP-$ver
  if ! ls "$pk"/*.tgz >/dev/null 2>&1; then
    rm -rf "$pk"; mkdir -p "$pk"
    (cd "$pk" && run "npm-pack-$NODE_APP-$ver" npm_ pack "$NODE_APP@$ver")
  fi
  mkdir -p "$ctx/app"
  tar -xzf "$(ls "$pk"/*.tgz)" -C "$ctx/app" --strip-components=1
  echo "app: $NODE_APP $ver ($(du -sk "$ctx/app" | cut -f1) KB)"

  cat >"$ctx/Dockerfile" <<EOF
FROM corpus-base:1
COPY runtime/ /
COPY deps/node_modules/ /app/node_modules/
COPY app/ /app/
ENV APP_VERSION=$v NODE_ENV=production
EOF
  docker_build corpus-node:$v "$ctx"
  docker_save corpus-node:$v "$WORK/node/v$v.tar"
  rm -rf "$ctx"
}

# ------------------------------------------------------------------ docker --
D=
DOCKERD_PID=
cleanup() {
  local rc=$?
  if [[ -n $D ]]; then
    if [[ -n $DOCKERD_PID ]]; then
      kill "$DOCKERD_PID" 2>/dev/null || true
      wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    grep "$D" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$D"
  fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
dk() { docker -H "unix://$D/docker.sock" "$@"; }

start_dockerd() {
  [[ -n $D ]] && return 0
  step "start private dockerd"
  D=$(mktemp -d /tmp/ferry-corpus-dockerd.XXXXXX)
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$D/root" --exec-root "$D/exec" -H "unix://$D/docker.sock" \
    --pidfile "$D/pid" >"$LOGS/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  local i
  for i in $(seq 150); do
    dk version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { LAST_LOG=$LOGS/dockerd.log; echo "dockerd exited" >&2; return 1; }
    sleep 0.2
  done
  LAST_LOG=$LOGS/dockerd.log
  dk version >/dev/null
  echo "dockerd pid $DOCKERD_PID, socket $D/docker.sock"
  step "import base image corpus-base:1"
  run docker-import dk import "$BASE_TAR" corpus-base:1
  echo "corpus-base:1 $(dk image inspect -f '{{.Id}}' corpus-base:1)"
}
docker_build() { # tag ctx
  step "docker build $1"
  # --no-cache: the classic builder ignores mtimes in its COPY cache key, so
  # v2's touched system layer would otherwise reuse v1's layer.
  DOCKER_BUILDKIT=0 run "build-${1/:/-}" dk build --no-cache -t "$1" "$2"
}
docker_save() { # tag out
  step "docker save $1 -> $2"
  run "save-${1/:/-}" dk save -o "$2.tmp" "$1"
  mv "$2.tmp" "$2"
}

# ------------------------------------------------------------------- main --
if [[ ! -f $WORK/python/v1.tar || ! -f $WORK/python/v2.tar ]]; then
  step "download wheels (PyPI)"
  fetch_wheels "${PY_V1[@]}"
  fetch_wheels "${PY_V2[@]}"
  for v in 1 2; do
    [[ -f $WORK/python/v$v.tar ]] && { echo "exists: $WORK/python/v$v.tar"; continue; }
    start_dockerd
    build_python $v
  done
else
  echo "exists: $WORK/python/v1.tar $WORK/python/v2.tar"
fi

if [[ ! -f $WORK/node/v1.tar || ! -f $WORK/node/v2.tar ]]; then
  for v in 1 2; do
    [[ -f $WORK/node/v$v.tar ]] && { echo "exists: $WORK/node/v$v.tar"; continue; }
    start_dockerd
    build_node $v
  done
else
  echo "exists: $WORK/node/v1.tar $WORK/node/v2.tar"
fi

step "manifest"
{
  echo "# ferry image corpus: what went into each image (see benches/corpus.sh)"
  echo "base debs:";   (cd "$CACHE/debs/base" && ls *.deb | sed 's/^/  /')
  echo "python system debs (v1 = v2, v2 mtimes touched):"; (cd "$CACHE/debs/python" && ls *.deb | sed 's/^/  /')
  echo "node runtime debs (v1 = v2, v2 mtimes touched):";   (cd "$CACHE/debs/node" && ls *.deb | sed 's/^/  /')
  echo "python v1 wheels: ${PY_V1[*]}"
  echo "python v2 wheels: ${PY_V2[*]}"
  echo "python app: $PY_APP $PY_APP_V1 (v1) / $PY_APP_V2 (v2) sdist"
  echo "node v1 top-level: ${NODE_V1[*]}"
  echo "node v2 bumps:     ${NODE_V2_BUMPS[*]}"
  echo "node app: $NODE_APP $NODE_APP_V1 (v1) / $NODE_APP_V2 (v2) npm pack"
  for v in 1 2; do
    lock=$NODE_CACHE/v$v-package-lock.json
    [[ -f $lock ]] || continue
    echo "node v$v resolved tree ($lock):"
    python3 -c '
import json, sys
pk = json.load(open(sys.argv[1]))["packages"]
for k in sorted(pk):
    if k: print("  %s@%s" % (k.split("node_modules/")[-1] if k.count("node_modules/") == 1 else k, pk[k].get("version")))
' "$lock"
  done
} >"$WORK/MANIFEST.txt"
echo "wrote $WORK/MANIFEST.txt"

STEP="summary"
echo
echo "corpus ready in $((SECONDS - T0)) s:"
for f in "$WORK/python/v1.tar" "$WORK/python/v2.tar" "$WORK/node/v1.tar" "$WORK/node/v2.tar"; do
  printf '  %-40s %6d MB  (%d bytes)\n' "$f" $(( $(stat -c %s "$f") / 1000000 )) "$(stat -c %s "$f")"
done
