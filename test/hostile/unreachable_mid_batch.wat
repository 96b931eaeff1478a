;; unreachable_mid_batch: (BIGINT) -> BIGINT doubling its argument, except
;; that it traps on 500: one poisoned row in the middle of a batch.
(module
  (func (export "twice") (param $a i64) (result i64)
    (if (i64.eq (local.get $a) (i64.const 500)) (then unreachable))
    (i64.mul (local.get $a) (i64.const 2))))
