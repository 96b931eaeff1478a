;; huge_table: declares a table of 100 million funcref elements and fills
;; it, so that each instance would hold 800 MB of host memory outside the
;; linear-memory limit.
(module
  (table $t 100000000 funcref)
  (elem declare func $add)
  (func $add (export "add") (param $a i64) (param $b i64) (result i64)
    (table.fill $t (i32.const 0) (ref.func $add) (table.size $t))
    (i64.add (local.get $a) (local.get $b))))
