;; start_loop: a start function that never returns, so instantiation itself
;; hangs; the host must give up on the worker, not hang with it.
(module
  (func $init (loop $forever (br $forever)))
  (start $init)
  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b))))
