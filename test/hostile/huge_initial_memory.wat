;; huge_initial_memory: declares 65536 pages (4 GiB) of initial memory, far
;; over the pool's limit; no worker may instantiate it.
(module
  (memory 65536)
  (func (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b))))
