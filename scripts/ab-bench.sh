#!/usr/bin/env bash
# A/B of two udfhost binaries in one run, alternating, so machine noise hits
# both alike: affine_batch at 16 streams, paced at RATE batches/s (p50/p99)
# and unpaced (rows/s). Usage:
#   scripts/ab-bench.sh OLD_BINARY NEW_BINARY [ROUNDS]
# e.g. build the old one with `git worktree add /tmp/old REV && (cd /tmp/old
# && go build -o /tmp/udfhost-old ./cmd/udfhost)`. Needs bin/examples
# (make examples). RATE defaults to 4000.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=${3:-3}
wasm=$PWD/bin/examples/affine.wasm
field() { grep -o "\"$1\": [0-9.e+]*" | head -1 | cut -d' ' -f2; }
run() {
  local bin=$1 name=$2 d pid addr id paced max
  d=$(mktemp -d)
  "$bin" serve --data "$d" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 2>"$d/log" &
  pid=$!
  for _ in $(seq 100); do grep -q "msg=ready" "$d/log" && break; sleep 0.1; done
  addr=$(grep -o 'grpc=[^ ]*' "$d/log" | head -1 | cut -d= -f2)
  export UDFHOST_ADDR=$addr UDFHOST_DATA=$d UDFHOST_TOKEN=
  id=$("$bin" artifact upload "$wasm" | grep -o 'art-[0-9a-f]*' | head -1)
  "$bin" function create --name affine_batch --artifact "$id" --export affine \
    --signature '(BIGINT, BIGINT, BIGINT) -> BIGINT' >/dev/null
  "$bin" bench --function affine_batch --streams 16 --duration 3s >/dev/null # warm-up
  paced=$("$bin" bench --function affine_batch --streams 16 --rate "${RATE:-4000}" --duration 5s)
  max=$("$bin" bench --function affine_batch --streams 16 --duration 5s)
  printf '%s\tpaced %s/s: p50 %s ms p99 %s ms\tunpaced: %s rows/s\n' "$name" \
    "$(field batches_per_sec <<<"$paced")" "$(field p50_ms <<<"$paced")" "$(field p99_ms <<<"$paced")" \
    "$(field rows_per_sec <<<"$max")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$d"
}
for _ in $(seq "$rounds"); do run "$old" old; run "$new" new; done
