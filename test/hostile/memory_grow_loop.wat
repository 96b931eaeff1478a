;; memory_grow_loop: grows linear memory 1024 pages (64 MiB) at a time until
;; memory.grow refuses. It traps if the refusal came at or below the pool's
;; limit (4096 pages): the trap is the expected outcome. Returning means it
;; got more memory than the limit allows, and the page count is the evidence.
(module
  (memory 1)
  (func (export "grow") (param $limit i64) (result i64)
    (block $refused
      (loop $more
        (br_if $refused (i32.eq (memory.grow (i32.const 1024)) (i32.const -1)))
        (br $more)))
    (if (i64.le_u (i64.extend_i32_u (memory.size)) (local.get $limit))
      (then unreachable))
    (i64.extend_i32_u (memory.size))))
