;; wild_load: reads 8 bytes at 0xfffffff0, far past its one page of memory,
;; hoping to see whatever lies beyond (the host's memory).
(module
  (memory 1)
  (func (export "peek") (param $a i64) (result i64)
    (i64.load (i32.const 0xfffffff0))))
