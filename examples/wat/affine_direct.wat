;; affine_direct: (BIGINT, BIGINT, BIGINT) -> BIGINT = a*b+c through the direct ABI.
(module
  (func (export "affine") (param $a i64) (param $b i64) (param $c i64) (result i64)
    (i64.add (i64.mul (local.get $a) (local.get $b)) (local.get $c))))
