;; abi_version_wrong: declares batch ABI version 2, which this host does not
;; speak; its functions must be refused before any batch is laid out.
(module
  (memory 2)
  (func (export "udfhost_abi_version") (result i32) (i32.const 2))
  (func (export "udfhost_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "f") (param $ptr i32) (param $n i32) (result i64) (i64.const 0)))
