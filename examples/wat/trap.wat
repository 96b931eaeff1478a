;; trap: (BIGINT) -> BIGINT that traps (unreachable) when its argument is 13.
(module
  (func (export "unlucky") (param $a i64) (result i64)
    (if (i64.eq (local.get $a) (i64.const 13)) (then unreachable))
    (local.get $a)))
