;; proc_exit_mid_batch: (BIGINT) -> BIGINT that calls WASI proc_exit(0) on
;; row value 3: an exit "with success" must not pass for a result.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (func (export "quit") (param $a i64) (result i64)
    (if (i64.eq (local.get $a) (i64.const 3)) (then (call $exit (i32.const 0))))
    (local.get $a)))
