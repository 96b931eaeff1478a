;; div_zero: (BIGINT, BIGINT) -> BIGINT integer division; a zero divisor traps.
(module
  (func (export "div") (param $a i64) (param $b i64) (result i64)
    (i64.div_s (local.get $a) (local.get $b))))
