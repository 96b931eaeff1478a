;; import_wasi_missing: imports a function WASI preview 1 does not have
;; (wasi_snapshot_preview1.proc_spawn); refused at upload.
(module
  (import "wasi_snapshot_preview1" "proc_spawn" (func $spawn (param i32 i32) (result i32)))
  (memory 1)
  (func (export "f") (param $a i64) (result i64)
    (i64.extend_i32_u (call $spawn (i32.const 0) (i32.const 0)))))
