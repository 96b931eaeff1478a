;; victim: a well-behaved (BYTES) -> BYTES echo of another tenant. The
;; cross-tenant case hands it a secret, which then sits in this pod's memory
;; (input and output regions), and checks that no other pod can see it.
(module
  (memory 2)
  (func (export "udfhost_abi_version") (result i32) (i32.const 1))
  (func (export "udfhost_alloc") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "echo") (param $ptr i32) (param $n i32) (result i64)
    (local $rows i32) (local $olen i32) (local $vlen i32) (local $voff i32)
    (local.set $rows (i32.load offset=8 (local.get $ptr)))
    (local.set $olen (i32.shl (i32.add (local.get $rows) (i32.const 1)) (i32.const 2)))
    (local.set $vlen (i32.load offset=32 (local.get $ptr)))
    (local.set $voff (i32.and (i32.add (i32.add (i32.const 48) (local.get $olen)) (i32.const 7)) (i32.const -8)))
    ;; header at 0 (output region = [0, voff+vlen)), offsets at 48, values at voff
    (i32.store offset=0 (i32.const 0) (i32.const 0x52464455))
    (i32.store offset=4 (i32.const 0) (i32.const 1))
    (i32.store offset=8 (i32.const 0) (local.get $rows))
    (i32.store offset=12 (i32.const 0) (i32.const 7))
    (i32.store offset=16 (i32.const 0) (i32.const 0))
    (i32.store offset=20 (i32.const 0) (i32.const 48))
    (i32.store offset=24 (i32.const 0) (local.get $voff))
    (i32.store offset=28 (i32.const 0) (local.get $vlen))
    (memory.copy (i32.const 48)
      (i32.add (local.get $ptr) (i32.load offset=24 (local.get $ptr))) (local.get $olen))
    (memory.copy (local.get $voff)
      (i32.add (local.get $ptr) (i32.load offset=28 (local.get $ptr))) (local.get $vlen))
    (i64.shl (i64.extend_i32_u (i32.add (local.get $voff) (local.get $vlen))) (i64.const 32))))
