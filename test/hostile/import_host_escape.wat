;; import_host_escape: imports a made-up host module and function that would
;; read another tenant's data ("udfhost"."read_tenant"); unknown modules are
;; refused at upload.
(module
  (import "udfhost" "read_tenant" (func $read (param i32 i32 i32) (result i32)))
  (memory 1)
  (func (export "f") (param $a i64) (result i64)
    (i64.extend_i32_u (call $read (i32.const 0) (i32.const 0) (i32.const 4096)))))
