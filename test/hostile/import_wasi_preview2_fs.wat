;; import_wasi_preview2_fs: reaches for the filesystem through the WASI
;; preview 2 (component model) interface names; refused at upload.
(module
  (import "wasi:filesystem/preopens@0.2.0" "get-directories" (func $dirs (param i32)))
  (memory 1)
  (func (export "f") (param $a i64) (result i64)
    (call $dirs (i32.const 0))
    (i64.load (i32.const 0))))
