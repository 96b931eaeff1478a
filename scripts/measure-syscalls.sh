#!/usr/bin/env bash
# Measures the syscalls a jailed worker makes after its seccomp filter would
# be installed (see TestMeasureSyscalls in ./sandbox) and writes them, with
# counts, to bin/syscalls.measured and to
# sandbox/internal/jail/testdata/syscalls.measured, which is committed:
# TestSeccompProfileCoversMeasurement (make test) checks that every
# measured syscall is on sandbox/internal/jail/seccomp.profile, with its
# reason.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go test -c -o bin/sandbox.test ./sandbox
UDFHOST_MEASURE_SYSCALLS="$PWD/bin/syscalls.measured" bin/sandbox.test -test.run '^TestMeasureSyscalls$' -test.count=1 -test.v | tail -3
cp bin/syscalls.measured sandbox/internal/jail/testdata/syscalls.measured
cat bin/syscalls.measured
