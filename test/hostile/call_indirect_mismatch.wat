;; call_indirect_mismatch: calls an (i32) -> i32 function through the table
;; as if it were (i64) -> i64; the type check must trap.
(module
  (type $narrow (func (param i32) (result i32)))
  (type $wide (func (param i64) (result i64)))
  (table 1 funcref)
  (elem (i32.const 0) $inc)
  (func $inc (type $narrow) (i32.add (local.get 0) (i32.const 1)))
  (func (export "confuse") (param $a i64) (result i64)
    (call_indirect (type $wide) (local.get $a) (i32.const 0))))
