;; oob_result_length: a well-formed output header whose region length is
;; 0xffffffff: 4 GiB claimed from a guest that has 128 KiB.
(module
  (memory 2)
  (func (export "udfhost_abi_version") (result i32) (i32.const 1))
  (func (export "udfhost_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "long") (param $ptr i32) (param $n i32) (result i64)
    (local $rows i32)
    (local.set $rows (i32.load offset=8 (local.get $ptr)))
    (i32.store offset=256 (i32.const 0) (i32.const 0x52464455))
    (i32.store offset=260 (i32.const 0) (i32.const 1))
    (i32.store offset=264 (i32.const 0) (local.get $rows))
    (i32.store offset=268 (i32.const 0) (i32.const 2))
    (i32.store offset=280 (i32.const 0) (i32.const 48))
    (i32.store offset=284 (i32.const 0) (i32.shl (local.get $rows) (i32.const 3)))
    (i64.const 0xffffffff00000100)))
