package main

import "testing"

func TestParseAuditBench(t *testing.T) {
	out := `goos: linux
BenchmarkDurableVsBare/writers=1-2         	       1	 459436908 ns/op	     10098 bare-records/s	      7652 log-records/s	         0.7578 log/bare
BenchmarkDurableVsBare/writers=64-2        	       1	  33791972 ns/op	    127267 bare-records/s	    110651 log-records/s	         0.8694 log/bare
BenchmarkCheckpoint-2                      	       1	    151682 ns/op
BenchmarkVerify1M-2                        	       1	3212345678 ns/op	         2.900 cpu-s/op	       427.0 MiB
PASS`
	a := parseAuditBench(out)
	if len(a.rows) != 2 || a.rows[1] != (auditRow{writers: "64", log: 110651, bare: 127267, frac: 0.8694}) {
		t.Errorf("rows = %+v", a.rows)
	}
	if a.checkpoint != "151.7 µs" || a.verify1M != "3.21 s" || len(a.lines) != 4 {
		t.Errorf("checkpoint %q, verify %q, %d lines", a.checkpoint, a.verify1M, len(a.lines))
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"test", "-run", "^$", "-bench", "A|B$", "./audit/"})
	if want := `test -run '^$' -bench 'A|B$' ./audit/`; got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}
