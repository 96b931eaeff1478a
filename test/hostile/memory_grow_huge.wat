;; memory_grow_huge: asks for 65535 pages (4 GiB) in one memory.grow. The
;; limit check must not overflow; the guest traps when refused.
(module
  (memory 1)
  (func (export "grab") (param $a i64) (result i64)
    (if (i32.eq (memory.grow (i32.const 65535)) (i32.const -1))
      (then unreachable))
    (i64.extend_i32_u (memory.size))))
