;; oob_result_wraparound: a batch-ABI export whose output region starts at
;; 0xfffffff0 and is 64 bytes long, so that ptr+len wraps around to 0x30 in
;; 32-bit arithmetic; the host must not copy from past the guest's memory.
(module
  (memory 2)
  (func (export "udfhost_abi_version") (result i32) (i32.const 1))
  (func (export "udfhost_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "wrap") (param $ptr i32) (param $n i32) (result i64)
    (i64.const 0x40fffffff0)))
