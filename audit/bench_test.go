package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// The benchmarks behind docs/AUDIT.md's figures (go test -run '^$' -bench
// . ./audit/). Durable records/s with 1, 16 and 64 concurrent writers,
// and, measured in the same run, the bare group-commit fsync loop that
// bounds it: the same bytes per record, one write and one fsync per batch,
// nothing else (no encoding, chain, tree or checkpoints).

var writerCounts = []int{1, 16, 64}

func BenchmarkDurableRecords(b *testing.B) {
	for _, w := range writerCounts {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			l, err := OpenWithOptions(filepath.Join(b.TempDir(), "audit.log"), Options{Host: "h-bench"})
			if err != nil {
				b.Fatal(err)
			}
			e := testEvent(1)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			runWriters(b, w, func() error { return l.Record(context.Background(), e) })
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			b.StopTimer()
			l.mu.Lock()
			b.ReportMetric(float64(l.seq)/float64(max(l.syncs, 1)), "records/fsync")
			l.mu.Unlock()
			l.Close()
		})
	}
}

// runWriters runs b.N calls of fn spread over w goroutines.
func runWriters(b *testing.B, w int, fn func() error) {
	var wg sync.WaitGroup
	per, extra := b.N/w, b.N%w
	for i := range w {
		n := per
		if i < extra {
			n++
		}
		wg.Go(func() {
			for range n {
				if err := fn(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// bareLog is the baseline: group commit and nothing else.
type bareLog struct {
	mu       sync.Mutex
	f        *os.File
	queue    [][]byte
	waiters  []chan error
	flushing bool
}

func (g *bareLog) append(line []byte) error {
	done := make(chan error, 1)
	g.mu.Lock()
	g.queue = append(g.queue, line)
	g.waiters = append(g.waiters, done)
	if g.flushing {
		g.mu.Unlock()
		return <-done
	}
	g.flushing = true
	for len(g.queue) > 0 {
		batch, ws := g.queue, g.waiters
		g.queue, g.waiters = nil, nil
		g.mu.Unlock()
		var buf []byte
		for _, l := range batch {
			buf = append(buf, l...)
		}
		_, err := g.f.Write(buf)
		if err == nil {
			err = g.f.Sync()
		}
		for _, w := range ws {
			w <- err
		}
		g.mu.Lock()
	}
	g.flushing = false
	g.mu.Unlock()
	return <-done
}

func BenchmarkBareGroupCommit(b *testing.B) {
	line, _, err := encode(newRecord(1, time.Now(), GenesisHash, "h-bench", testEvent(1)))
	if err != nil {
		b.Fatal(err)
	}
	for _, w := range writerCounts {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "bare.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			g := &bareLog{f: f}
			b.ResetTimer()
			start := time.Now()
			runWriters(b, w, func() error { return g.append(line) })
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkDurableVsBare alternates rounds of the log and of the bare
// loop, so that both see the same disk (fsync latency on a shared machine
// drifts a lot between runs), and reports both rates and their ratio.
func BenchmarkDurableVsBare(b *testing.B) {
	const round = 2000
	line, _, err := encode(newRecord(1, time.Now(), GenesisHash, "h-bench", testEvent(1)))
	if err != nil {
		b.Fatal(err)
	}
	for _, w := range writerCounts {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			dir := b.TempDir()
			l, err := OpenWithOptions(filepath.Join(dir, "audit.log"), Options{Host: "h-bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			f, err := os.OpenFile(filepath.Join(dir, "bare.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			g := &bareLog{f: f}
			e := testEvent(1)
			var logT, bareT time.Duration
			for b.Loop() {
				start := time.Now()
				runN(b, round, w, func() error { return l.Record(context.Background(), e) })
				logT += time.Since(start)
				start = time.Now()
				runN(b, round, w, func() error { return g.append(line) })
				bareT += time.Since(start)
			}
			n := float64(b.N * round)
			b.ReportMetric(n/logT.Seconds(), "log-records/s")
			b.ReportMetric(n/bareT.Seconds(), "bare-records/s")
			b.ReportMetric(bareT.Seconds()/logT.Seconds(), "log/bare")
		})
	}
}

// runN runs n calls of fn spread over w goroutines.
func runN(b *testing.B, n, w int, fn func() error) {
	var wg sync.WaitGroup
	for i := range w {
		k := n / w
		if i < n%w {
			k++
		}
		wg.Go(func() {
			for range k {
				if err := fn(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkCheckpoint is the cost of one checkpoint: root of the compact
// range, Ed25519 signature, append and fsync.
func BenchmarkCheckpoint(b *testing.B) {
	l, err := OpenWithOptions(filepath.Join(b.TempDir(), "audit.log"), Options{Host: "h-bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for i := range 1000 {
		l.Record(context.Background(), testEvent(i))
	}
	b.ResetTimer()
	for b.Loop() {
		if err := l.checkpoint(false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify1M is VerifyLog of a log of a million records with a
// checkpoint every 1000, as a Log writes them.
func BenchmarkVerify1M(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	writeBigLog(b, dir, n, DefaultCheckpointEvery)
	fi, _ := os.Stat(filepath.Join(dir, "audit.log"))
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for b.Loop() {
		rep, err := VerifyLog(dir, nil)
		if err != nil || rep.Records != n {
			b.Fatalf("%+v, %v", rep.Summary, err)
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / time.Duration(b.N)
	b.ReportMetric(cpu.Seconds(), "cpu-s/op")
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
}

// writeBigLog writes n records and a checkpoint every `every` as a Log
// would, without an fsync per batch.
func writeBigLog(b *testing.B, dir string, n, every int) {
	b.Helper()
	k, err := createKey(filepath.Join(dir, KeyFileName), "h-bench")
	if err != nil {
		b.Fatal(err)
	}
	lf, _ := os.Create(filepath.Join(dir, "audit.log"))
	cf, _ := os.Create(filepath.Join(dir, "audit.checkpoints"))
	w := bufio.NewWriterSize(lf, 1<<20)
	tree := rangeFactory.NewEmptyRange(0)
	prev := GenesisHash
	t := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	sign := func(final bool) {
		msg, err := note.Sign(&note.Note{Text: checkpointBody("h-bench", tree.End(), rootOf(tree), final)}, k.signer)
		if err != nil {
			b.Fatal(err)
		}
		cf.Write(append(msg, '\n'))
	}
	sign(false)
	for i := 1; i <= n; i++ {
		line, r, err := encode(newRecord(uint64(i), t.Add(time.Duration(i)*time.Microsecond), prev, "h-bench", testEvent(i)))
		if err != nil {
			b.Fatal(err)
		}
		w.Write(line)
		tree.Append(leafHash(line[:len(line)-1]), nil)
		prev = r.Hash
		if i%every == 0 && i != n {
			sign(false)
		}
	}
	sign(true)
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	lf.Close()
	cf.Close()
}

// BenchmarkEncodeRecord is the CPU an Append spends on its record: the
// fields, the seal and the leaf hash.
func BenchmarkEncodeRecord(b *testing.B) {
	e := testEvent(1)
	b.ReportAllocs()
	for b.Loop() {
		r := newRecord(0, time.Time{}, "", "h-bench", e)
		mid, err := middleJSON(r)
		if err != nil {
			b.Fatal(err)
		}
		r.Seq, r.Time, r.Prev = 7, time.Now().UTC(), GenesisHash
		line, err := sealParts(&r, mid)
		if err != nil {
			b.Fatal(err)
		}
		leafHash(line[:len(line)-1])
	}
}
