;; runaway: (BIGINT) -> BIGINT that echoes its argument, except that a
;; negative argument makes it loop forever. The abandoned_runaway case sends
;; a negative row with a short client deadline and gives up: the server
;; must still stop the batch at the pool's deadline, charge the violation
;; to it, and then answer a clean batch (a positive row) on the same
;; function without charging it anything.
(module
  (func (export "spin") (param $a i64) (result i64)
    (if (i64.lt_s (local.get $a) (i64.const 0))
      (then (loop $forever (br $forever))))
    (local.get $a)))
