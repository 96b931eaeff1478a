;; slow_batch: (BIGINT) -> BIGINT that spins its argument's number of
;; iterations and returns it: well-behaved but slow, so that a flood of
;; calls fills the pod's queue.
(module
  (func (export "slow") (param $n i64) (result i64)
    (local $i i64)
    (block $done
      (loop $spin
        (br_if $done (i64.ge_s (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $spin)))
    (local.get $n)))
