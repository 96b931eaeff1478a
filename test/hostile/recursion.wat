;; recursion: (BIGINT) -> BIGINT that calls itself without end until the
;; wasm call stack is exhausted; wazero must trap, not crash the worker.
(module
  (func $down (export "down") (param $a i64) (result i64)
    (i64.add (call $down (i64.add (local.get $a) (i64.const 1))) (i64.const 1))))
