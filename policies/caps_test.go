package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPodCaps(t *testing.T) {
	const gib = 1 << 30
	pod := func(pl *Pool) int64 { return int64(pl.MemoryLimitPages) * 65536 * int64(pl.InstancesPerWorker) }
	two := func(small, big *Pool) *Policy {
		return &Policy{Pools: map[string]*Pool{"default/small": small, "default/big": big}}
	}
	tests := []struct {
		name     string
		p        *Policy
		mem      int64
		host     int
		small    int
		big      int
		onlyHost bool
	}{
		// 24 GiB, pods of 1 GiB and 2 GiB: 18 GiB for pods.
		{"derived", two(&Pool{MemoryLimitPages: 16384, InstancesPerWorker: 1}, &Pool{MemoryLimitPages: 16384, InstancesPerWorker: 2}), 24 * gib, 9, 9, 9, false},
		{"set in the policy", func() *Policy {
			p := two(&Pool{MemoryLimitPages: 16384, InstancesPerWorker: 1, MaxPods: 2}, &Pool{MemoryLimitPages: 16384, InstancesPerWorker: 2})
			p.MaxLivePods = 5
			return p
		}(), 24 * gib, 5, 2, 5, false},
		{"at least one", two(&Pool{MemoryLimitPages: 16384, InstancesPerWorker: 1}, &Pool{MemoryLimitPages: 65536, InstancesPerWorker: 8}), 4 * gib, 1, 1, 1, false},
		{"memory unknown", two(&Pool{MemoryLimitPages: 1, InstancesPerWorker: 1}, &Pool{MemoryLimitPages: 1, InstancesPerWorker: 1}), 0, 0, 0, 0, false},
	}
	for _, tc := range tests {
		host, per := tc.p.PodCaps(tc.mem, pod)
		if host != tc.host || per["default/small"] != tc.small || per["default/big"] != tc.big {
			t.Errorf("%s: host %d, pools %v; want %d, small %d, big %d", tc.name, host, per, tc.host, tc.small, tc.big)
		}
	}
	// The embedded policy on a 24 GiB host (pods of 256 MiB × 2 + the
	// runtime's 256 MiB): 24 pods.
	host, _ := Default().PodCaps(24*gib, func(pl *Pool) int64 {
		return int64(pl.MemoryLimitPages)*65536*int64(pl.InstancesPerWorker) + 256<<20
	})
	if host != 24 {
		t.Errorf("default policy on 24 GiB: host cap %d, want 24", host)
	}
}

func TestReadMemTotal(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "meminfo")
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	n, err := ReadMemTotal(write("MemTotal:       24576000 kB\nMemFree:        1 kB\n"))
	if err != nil || n != 24576000<<10 {
		t.Errorf("ReadMemTotal = %d, %v", n, err)
	}
	for _, bad := range []string{"", "MemFree: 1 kB\n", "MemTotal: x kB\n", "MemTotal: 5 MB\n"} {
		if _, err := ReadMemTotal(write(bad)); err == nil || !strings.Contains(err.Error(), "no MemTotal line") {
			t.Errorf("ReadMemTotal(%q) = %v, want an error naming the line", bad, err)
		}
	}
	if n, err := ReadMemTotal("/proc/meminfo"); err != nil || n <= 0 {
		t.Errorf("this host: %d, %v", n, err)
	}
}
