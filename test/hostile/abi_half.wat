;; abi_half: exports udfhost_alloc without udfhost_abi_version, half of the
;; batch ABI; the upload must be refused.
(module
  (memory 2)
  (func (export "udfhost_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "f") (param $ptr i32) (param $n i32) (result i64) (i64.const 0)))
