#!/usr/bin/env bash
# Installs what building and testing udfhost needs on a fresh Debian machine:
# apt packages if missing, Go tools at pinned versions into .cache/bin.
# Idempotent and quiet when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v wat2wasm >/dev/null || need+=(wabt)
command -v protoc >/dev/null || need+=(protobuf-compiler)
dpkg -s libseccomp-dev >/dev/null 2>&1 || need+=(libseccomp-dev)
command -v strace >/dev/null || need+=(strace)
# The e2e suite's outside client (test/e2e/testdata/taskmanager.py) is
# Python with Debian's grpcio and protobuf: no PyPI.
dpkg -s python3-grpcio >/dev/null 2>&1 || need+=(python3-grpcio)
dpkg -s python3-protobuf >/dev/null 2>&1 || need+=(python3-protobuf)
if ((${#need[@]})); then
  echo "install-deps: apt-get install ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Pinned Go tools, into .cache/bin. staticcheck (`make lint`, part of
# `make test`) and versitygw (the S3 tests) always; the protoc plugins
# only for `make proto`, when asked for: scripts/install-deps.sh tools
export GOBIN="$PWD/.cache/bin"
mkdir -p "$GOBIN"
# staticcheck 2026.2.2 is module version v0.8.2 (the proxy knows only the
# semver tag).
"$GOBIN/staticcheck" -version 2>/dev/null | grep -q '^staticcheck 2026\.2\.2 ' ||
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
# versitygw, the S3 server the s3store tests run against (it checks
# signatures and checksums as S3 does). Building it takes a minute or two;
# the binary stays cached.
[ -x "$GOBIN/versitygw" ] || go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
if [ "${1:-}" = tools ]; then
  [ -x "$GOBIN/protoc-gen-go" ] || go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
  [ -x "$GOBIN/protoc-gen-go-grpc" ] || go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
fi
