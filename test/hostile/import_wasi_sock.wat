;; import_wasi_sock: imports WASI's sock_accept to take connections on an
;; inherited listener; socket functions are refused at upload.
(module
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (func (export "f") (param $a i64) (result i64)
    (drop (call $accept (i32.const 3) (i32.const 0) (i32.const 0)))
    (local.get $a)))
