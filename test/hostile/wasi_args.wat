;; wasi_args: (BIGINT) -> BIGINT returning args_sizes_get's count (low 32
;; bits) and buffer size (high 32 bits): both must be 0.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (memory 1)
  (func (export "args") (param $a i64) (result i64)
    (local $errno i32)
    (local.set $errno (call $sizes (i32.const 0) (i32.const 4)))
    (if (local.get $errno) (then (return (i64.sub (i64.const 0) (i64.extend_i32_u (local.get $errno))))))
    (i64.load (i32.const 0))))
