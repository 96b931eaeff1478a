;; import_wasi_wrong_type: imports WASI fd_write with the wrong type, hoping
;; the host calls it with a confused stack; refused at upload.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i64) (result i64)))
  (func (export "f") (param $a i64) (result i64)
    (call $write (local.get $a))))
