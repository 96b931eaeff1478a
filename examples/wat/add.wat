;; add: (BIGINT, BIGINT) -> BIGINT through the direct ABI — no SDK needed.
;;   udfhost function create --name add --artifact ID --export add --signature '(BIGINT, BIGINT) -> BIGINT'
(module
  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b))))
