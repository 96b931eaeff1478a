;; fd_write_flood: writes 1 MiB blocks starting with a marker line to stdout
;; and stderr, 64 times each (128 MiB), and returns the bytes the host said
;; it wrote. None of it may reach the host's logs or disk.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory 17)
  (data (i32.const 65536) "\nUDFHOST-SECTEST-FD-FLOOD-MARKER-5f1c\n")
  (func (export "flood") (param $a i64) (result i64)
    (local $i i32) (local $total i64)
    (i32.store (i32.const 16) (i32.const 65536))
    (i32.store (i32.const 20) (i32.const 1048576))
    (loop $next
      (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 32)))
      (local.set $total (i64.add (local.get $total) (i64.extend_i32_u (i32.load (i32.const 32)))))
      (drop (call $write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 32)))
      (local.set $total (i64.add (local.get $total) (i64.extend_i32_u (i32.load (i32.const 32)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (i32.const 64))))
    (local.get $total)))
