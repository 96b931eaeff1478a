;; import_memory: imports its linear memory from the host ("env"."memory"),
;; hoping to share it with someone else; memory imports are refused.
(module
  (import "env" "memory" (memory 1))
  (func (export "f") (param $a i64) (result i64)
    (i64.load (i32.const 0))))
