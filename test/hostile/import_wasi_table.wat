;; import_wasi_table: imports a table from the WASI module: only function
;; imports are allowed, even from wasi_snapshot_preview1.
(module
  (import "wasi_snapshot_preview1" "table" (table 1 funcref))
  (func (export "f") (param $a i64) (result i64) (local.get $a)))
