;; snoop: looks for another tenant's data. dump grows its memory to 16 pages
;; and returns all of it (bytes 56 onward, one BYTES value per batch of one
;; row): fresh pages, its input region and everything else it can address.
;; peek returns an output region that starts exactly at the end of its
;; memory, asking the host to copy whatever lies next to it.
(module
  (memory 2)
  (func (export "udfhost_abi_version") (result i32) (i32.const 1))
  (func (export "udfhost_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "dump") (param $ptr i32) (param $n i32) (result i64)
    (local $size i32)
    (if (i32.lt_u (memory.size) (i32.const 16))
      (then (drop (memory.grow (i32.sub (i32.const 16) (memory.size))))))
    (local.set $size (i32.shl (memory.size) (i32.const 16)))
    (i32.store offset=0 (i32.const 0) (i32.const 0x52464455))
    (i32.store offset=4 (i32.const 0) (i32.const 1))
    (i32.store offset=8 (i32.const 0) (i32.const 1))
    (i32.store offset=12 (i32.const 0) (i32.const 7))
    (i32.store offset=16 (i32.const 0) (i32.const 0))
    (i32.store offset=20 (i32.const 0) (i32.const 48))
    (i32.store offset=24 (i32.const 0) (i32.const 56))
    (i32.store offset=28 (i32.const 0) (i32.sub (local.get $size) (i32.const 56)))
    (i32.store offset=48 (i32.const 0) (i32.const 0))
    (i32.store offset=52 (i32.const 0) (i32.sub (local.get $size) (i32.const 56)))
    (i64.shl (i64.extend_i32_u (local.get $size)) (i64.const 32)))
  (func (export "peek") (param $ptr i32) (param $n i32) (result i64)
    (i64.or (i64.const 0x100000000000)
      (i64.extend_i32_u (i32.shl (memory.size) (i32.const 16))))))
