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

# A connector: the same data directory, served again with a policy file
# that grants the default environment one connection to a lookup service
# (a local python http.server here), with a secret only the broker sees.
step "a lookup service on loopback, and a policy with a connection to it"
SVC=$(mktemp -d)
printf 'enriched:alpha' >"$SVC/k1"
printf 'enriched:beta' >"$SVC/k2"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/bin/python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$SVC" >/dev/null 2>&1 &
LOOKUP=$!
POLICY=$(mktemp --suffix=.yaml)
sed "s/18080/$PORT/" examples/policy/connector.yaml >"$POLICY"
grep -v '^#' "$POLICY" | sed '/^$/d; s/^/  /'
export UDFHOST_DEMO_LOOKUP_TOKEN="Bearer demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
$BIN serve --policy "$POLICY" 2>"$LOG" &
SERVER=$!
cleanup() { kill "$SERVER" "$LOOKUP" 2>/dev/null || true; rm -rf "$SVC" "$POLICY"; }
trap cleanup EXIT
for _ in $(seq 300); do
  grep -q 'msg=ready' "$LOG" && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$LOG"; echo "demo: server exited" >&2; exit 1; }
  sleep 0.1
done
for _ in $(seq 100); do
  /usr/bin/python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/k1')" 2>/dev/null && break
  sleep 0.1
done

step "upload the enrich connector, bind it to the connection, invoke it"
ENRICH=$($BIN artifact upload --kind connector $EX/enrich.wasm | tee /dev/stderr)
$BIN function create --name lookup --artifact "$(id <<<"$ENRICH")" --export lookup --signature '(VARCHAR) -> VARCHAR' --connection lookup
printf '["k1"]\n["k2"]\n["nope"]\n' | tee /dev/stderr | $BIN invoke --function lookup

step "stop the server"
kill -TERM "$SERVER"
wait "$SERVER"
kill "$LOOKUP" 2>/dev/null || true
trap - EXIT
rm -rf "$SVC" "$POLICY"
if grep -q "${UDFHOST_DEMO_LOOKUP_TOKEN#Bearer }" "$LOG" "$UDFHOST_DATA/audit/audit.log"; then
  echo "demo: the connection's secret leaked into a log" >&2
  exit 1
fi
echo "  the connection's secret is in neither the server's log nor the audit log"

step "verify the audit log offline"
$BIN audit verify
echo
echo "demo: OK"
