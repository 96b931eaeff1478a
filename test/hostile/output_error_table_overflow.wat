;; output_error_table_overflow: claims 0x15555556 row errors of 12 bytes
;; each, a table size that wraps to 8 bytes in 32-bit arithmetic.
(module
  (memory 2)
  (func (export "udfhost_abi_version") (result i32) (i32.const 1))
  (func (export "udfhost_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "errs") (param $ptr i32) (param $n i32) (result i64)
    (local $rows i32) (local $vlen i32)
    (local.set $rows (i32.load offset=8 (local.get $ptr)))
    (local.set $vlen (i32.shl (local.get $rows) (i32.const 3)))
    (i32.store offset=256 (i32.const 0) (i32.const 0x52464455))
    (i32.store offset=260 (i32.const 0) (i32.const 1))
    (i32.store offset=264 (i32.const 0) (local.get $rows))
    (i32.store offset=268 (i32.const 0) (i32.const 2))
    (i32.store offset=280 (i32.const 0) (i32.const 48))
    (i32.store offset=284 (i32.const 0) (local.get $vlen))
    (i32.store offset=288 (i32.const 0) (i32.const 0x15555556))
    (i32.store offset=292 (i32.const 0) (i32.add (i32.const 48) (local.get $vlen)))
    (i64.or
      (i64.shl (i64.extend_i32_u (i32.add (i32.const 64) (local.get $vlen))) (i64.const 32))
      (i64.const 256))))
