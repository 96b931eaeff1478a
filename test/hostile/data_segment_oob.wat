;; data_segment_oob: an active data segment that ends past its one page of
;; memory; instantiation must fail instead of writing out of bounds.
(module
  (memory 1)
  (data (i32.const 65530) "0123456789abcdef")
  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b))))
