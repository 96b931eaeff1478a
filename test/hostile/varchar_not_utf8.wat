;; varchar_not_utf8: a batch-ABI (BIGINT) -> VARCHAR guest whose result is
;; "ok" on every row but row 1, which is the bytes 0xff 0xfe: not UTF-8.
;; VARCHAR means UTF-8: the host must turn row 1 into a per-row error naming
;; it and deliver the other rows.
(module
  (memory 2)
  (func (export "udfhost_abi_version") (result i32) (i32.const 1))
  ;; The input goes to the second page; the result is built in the first.
  (func (export "udfhost_alloc") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  (func (export "text") (param $ptr i32) (param $n i32) (result i64)
    (local $rows i32) (local $voff i32) (local $r i32)
    (local.set $rows (i32.load offset=8 (local.get $ptr)))
    (if (i32.gt_u (local.get $rows) (i32.const 4096)) (then (return (i64.const 0))))
    ;; values after the rows+1 offsets, 8-byte aligned
    (local.set $voff (i32.and
      (i32.add (i32.add (i32.const 48) (i32.shl (i32.add (local.get $rows) (i32.const 1)) (i32.const 2))) (i32.const 7))
      (i32.const -8)))
    (i32.store offset=0 (i32.const 0) (i32.const 0x52464455))
    (i32.store offset=4 (i32.const 0) (i32.const 1))
    (i32.store offset=8 (i32.const 0) (local.get $rows))
    (i32.store offset=12 (i32.const 0) (i32.const 6))
    (i32.store offset=16 (i32.const 0) (i32.const 0))
    (i32.store offset=20 (i32.const 0) (i32.const 48))
    (i32.store offset=24 (i32.const 0) (local.get $voff))
    (i32.store offset=28 (i32.const 0) (i32.shl (local.get $rows) (i32.const 1)))
    (i32.store offset=32 (i32.const 0) (i32.const 0))
    (i32.store offset=36 (i32.const 0) (i32.const 0))
    (i32.store offset=40 (i32.const 0) (i32.const 0))
    (i32.store offset=44 (i32.const 0) (i32.const 0))
    ;; offsets: row r spans [2r, 2r+2)
    (local.set $r (i32.const 0))
    (block $o_done
      (loop $o
        (br_if $o_done (i32.gt_u (local.get $r) (local.get $rows)))
        (i32.store offset=48 (i32.shl (local.get $r) (i32.const 2)) (i32.shl (local.get $r) (i32.const 1)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $o)))
    ;; values: "ok" (0x6f 0x6b), or 0xff 0xfe on row 1
    (local.set $r (i32.const 0))
    (block $v_done
      (loop $v
        (br_if $v_done (i32.ge_u (local.get $r) (local.get $rows)))
        (i32.store16
          (i32.add (local.get $voff) (i32.shl (local.get $r) (i32.const 1)))
          (select (i32.const 0xfeff) (i32.const 0x6b6f) (i32.eq (local.get $r) (i32.const 1))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $v)))
    (i64.shl
      (i64.extend_i32_u (i32.add (local.get $voff) (i32.shl (local.get $rows) (i32.const 1))))
      (i64.const 32))))
