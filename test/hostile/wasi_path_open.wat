;; wasi_path_open: looks for a preopened directory on fds 3..63 (returns
;; 1000+fd if one exists; 0-2 are stdio), then tries path_open("etc/passwd")
;; relative to fd 3 and returns its errno (0 would mean it got a file).
(module
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory 1)
  (data (i32.const 64) "etc/passwd")
  (func (export "open") (param $a i64) (result i64)
    (local $fd i32)
    (local.set $fd (i32.const 3))
    (loop $next
      (if (i32.eqz (call $prestat (local.get $fd) (i32.const 16)))
        (then (return (i64.extend_i32_u (i32.add (i32.const 1000) (local.get $fd))))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $fd) (i32.const 64))))
    (i64.extend_i32_u
      (call $open (i32.const 3) (i32.const 1) (i32.const 64) (i32.const 10) (i32.const 0)
        (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 32)))))
