#!/usr/bin/env bash
# The whole story on embedded defaults: serve, upload both examples through
# pre-signed URLs, create functions, invoke them, verify the audit log, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/udfhost
EX=bin/examples
export UDFHOST_DATA=${UDFHOST_DATA:-bin/demo-data}
rm -rf "$UDFHOST_DATA"
LOG=$(mktemp)
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "udfhost serve (data in $UDFHOST_DATA, gRPC 127.0.0.1:7443, URLs 127.0.0.1:7444)"
$BIN serve 2>"$LOG" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 300); do
  grep -q 'msg=ready' "$LOG" && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$LOG"; echo "demo: server exited" >&2; exit 1; }
  sleep 0.1
done
grep 'msg=ready' "$LOG" || { cat "$LOG"; echo "demo: server not ready after 30 s" >&2; exit 1; }

step "upload examples through pre-signed URLs"
ADD=$($BIN artifact upload $EX/add.wasm)
echo "$ADD"
UPPER=$($BIN artifact upload $EX/upper.wasm | tee /dev/stderr)
id() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

step "create functions"
$BIN function create --name add --artifact "$(id <<<"$ADD")" --export add --signature '(BIGINT, BIGINT) -> BIGINT'
$BIN function create --name upper --artifact "$(id <<<"$UPPER")" --export upper --signature '(VARCHAR) -> VARCHAR'

step "invoke add (direct ABI, plain WAT)"
printf '[1, 2]\n[40, 2]\n[null, 5]\n[9223372036854775807, 1]\n' | tee /dev/stderr | $BIN invoke --function add

step "invoke upper (batch ABI, Go guest SDK)"
printf '["hello"]\n["grüße, udfhost"]\n[null]\n' | tee /dev/stderr | $BIN invoke --function upper

step "stop the server"
kill -TERM "$SERVER"
wait "$SERVER"
trap - EXIT
grep -E 'worker (started|stopped)' "$LOG" | sed 's/^/  /' || true

step "verify the audit log offline"
$BIN audit verify
echo
echo "demo: OK"
