;; loop: (BIGINT) -> BIGINT that never returns. The batch deadline stops it.
(module
  (func (export "spin") (param $a i64) (result i64)
    (loop $forever (br $forever))
    (local.get $a)))
