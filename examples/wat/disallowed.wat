;; disallowed: imports a host function outside the allow-list; upload must be refused.
(module
  (import "env" "system" (func $system (param i32) (result i32)))
  (func (export "run") (param $a i32) (result i32)
    (call $system (local.get $a))))
