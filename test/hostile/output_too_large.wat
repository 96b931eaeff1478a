;; output_too_large: (BIGINT) -> BYTES whose single result value is 200 MiB
;; of its own (zeroed) memory: inside the guest's memory limit, but over the
;; pool's 64 MiB batch limit and gRPC's message limit. Send one row.
(module
  (memory 1)
  (func (export "udfhost_abi_version") (result i32) (i32.const 1))
  (func (export "udfhost_alloc") (param i32) (result i32) (i32.const 32768))
  (func (export "big") (param $ptr i32) (param $n i32) (result i64)
    (local $len i32)
    (local.set $len (i32.const 209715200))
    (if (i32.lt_u (memory.size) (i32.const 3300))
      (then (drop (memory.grow (i32.sub (i32.const 3300) (memory.size))))))
    (i32.store offset=256 (i32.const 0) (i32.const 0x52464455))
    (i32.store offset=260 (i32.const 0) (i32.const 1))
    (i32.store offset=264 (i32.const 0) (i32.const 1))
    (i32.store offset=268 (i32.const 0) (i32.const 7))
    (i32.store offset=276 (i32.const 0) (i32.const 48))
    (i32.store offset=280 (i32.const 0) (i32.const 56))
    (i32.store offset=284 (i32.const 0) (local.get $len))
    (i32.store offset=304 (i32.const 0) (i32.const 0))
    (i32.store offset=308 (i32.const 0) (local.get $len))
    (i64.or
      (i64.shl (i64.extend_i32_u (i32.add (i32.const 56) (local.get $len))) (i64.const 32))
      (i64.const 256))))
