;; loop_forever: (BIGINT) -> BIGINT that never returns. The pool's batch
;; deadline must stop it (DEADLINE_EXCEEDED) and audit a timeout.
(module
  (func (export "spin") (param $a i64) (result i64)
    (loop $forever (br $forever))
    (local.get $a)))
