;; memory_grow_to_limit: a LEGITIMATE guest that stays inside its memory
;; limit. grow(step) grows linear memory `step` pages at a time, writing to
;; every 4 KiB of each new page (so the memory is really held, not just
;; reserved), until memory.grow answers -1; then one page at a time until
;; that is refused too. It returns the pages it reached: the pool's limit
;; (4096 pages, 256 MiB, by default). Called on every instance of the pod at
;; once, it must be answered, never killed: memory.grow answering -1 past
;; the limit is the only correct outcome.
(module
  (memory 1)
  ;; touch writes one byte in every 4 KiB of pages [from, from+pages).
  (func $touch (param $from i32) (param $pages i32)
    (local $p i32) (local $end i32)
    (local.set $p (i32.shl (local.get $from) (i32.const 16)))
    (local.set $end (i32.shl (i32.add (local.get $from) (local.get $pages)) (i32.const 16)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (i32.store8 (local.get $p) (i32.const 1))
        (local.set $p (i32.add (local.get $p) (i32.const 4096)))
        (br $next))))
  (func (export "grow") (param $step i64) (result i64)
    (local $s i32) (local $old i32)
    (local.set $s (i32.const 1))
    (if (i64.gt_s (local.get $step) (i64.const 1))
      (then (local.set $s (i32.wrap_i64 (local.get $step)))))
    (if (i64.gt_s (local.get $step) (i64.const 65536))
      (then (local.set $s (i32.const 65536))))
    (block $refused
      (loop $more
        (local.set $old (memory.grow (local.get $s)))
        (br_if $refused (i32.eq (local.get $old) (i32.const -1)))
        (call $touch (local.get $old) (local.get $s))
        (br $more)))
    (block $full
      (loop $more1
        (local.set $old (memory.grow (i32.const 1)))
        (br_if $full (i32.eq (local.get $old) (i32.const -1)))
        (call $touch (local.get $old) (i32.const 1))
        (br $more1)))
    (i64.extend_i32_u (memory.size))))
