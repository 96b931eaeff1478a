#!/usr/bin/env bash
# security-test.sh: starts bin/udfhost serve on a temporary data directory
# and free ports, runs `udfhost security-test` against it (corpus
# bin/hostile, canary bin/examples/add.wasm), stops the server and exits
# with the suite's status. Extra arguments go to security-test.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=bin/udfhost
tmp=$(mktemp -d)
log=$tmp/serve.log
# The suite's policy: the embedded default's environment and pool, and the
# private environment and connections of the egress cases.
policy=$("$bin" security-test --write-policy "$tmp/policy") || exit 1
"$bin" serve --data "$tmp/data" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --policy "$policy" 2>"$log" &
pid=$!
stop() {
	kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap stop EXIT

ready=""
for _ in $(seq 300); do
	ready=$(grep -m1 'msg=ready' "$log") && break
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$log" >&2
		echo "security-test: the server exited before it was ready" >&2
		exit 1
	fi
	sleep 0.1
done
addr=$(sed -n 's/.*msg=ready grpc=\([^ ]*\).*/\1/p' <<<"$ready")
if [ -z "$addr" ]; then
	echo "security-test: the server was not ready after 30 s" >&2
	exit 1
fi

"$bin" security-test --addr "$addr" --data "$tmp/data" --token "" --policy "$policy" \
	--server-pid "$pid" --server-log "$log" --corpus bin/hostile --canary bin/examples/add.wasm "$@"
status=$?
if [ "$status" -ne 0 ]; then
	cp "$log" bin/security-test-serve.log
	echo "security-test: the server's log is in bin/security-test-serve.log" >&2
fi
exit "$status"
