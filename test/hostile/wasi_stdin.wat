;; wasi_stdin: reads up to 4 KiB from fd 0 (the worker's stdin, if it were
;; wired to anything) and returns the byte count, or -errno.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (func (export "stdin") (param $a i64) (result i64)
    (local $errno i32)
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.const 4096))
    (local.set $errno (call $read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 32)))
    (if (local.get $errno) (then (return (i64.sub (i64.const 0) (i64.extend_i32_u (local.get $errno))))))
    (i64.extend_i32_u (i32.load (i32.const 32)))))
