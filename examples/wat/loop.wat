;; loop: (BIGINT) -> BIGINT that never returns for a negative argument and
;; returns the argument otherwise. The batch deadline stops the loop; the next
;; batch gets a fresh instance.
(module
  (func (export "spin") (param $a i64) (result i64)
    (if (i64.lt_s (local.get $a) (i64.const 0))
      (then (loop $forever (br $forever))))
    (local.get $a)))
