package e2e

import (
	"encoding/json"
	"testing"
)

// TestFunctionGetPrintsLimits: `udfhost function get` shows the limits a
// client sizes its batches and channel by.
func TestFunctionGetPrintsLimits(t *testing.T) {
	s := startServer(t)
	s.createFunction("add", s.upload("add"), "add", "(BIGINT, BIGINT) -> BIGINT")
	var f struct {
		Limits map[string]uint64 `json:"limits"`
	}
	out := s.mustCLI("", "function", "get", "add")
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]uint64{
		"max_batch_rows": 1 << 20, "max_batch_bytes": 64 << 20, "max_message_bytes": 80 << 20,
		"batch_deadline_ms": 2000, "memory_bytes_per_instance": 256 << 20, "instances_per_worker": 2,
		"queue_per_worker": 62, "first_request_timeout_ms": 5000, "stream_idle_timeout_ms": 60000, "stream_window": 16,
	}
	// Exact values are checked against the policy in internal/server
	// (TestFunctionLimits); here: all there, the pool's as embedded.
	for k, v := range want {
		if got, ok := f.Limits[k]; !ok || got == 0 || (k != "first_request_timeout_ms" && k != "stream_idle_timeout_ms" && got != v) {
			t.Errorf("limits.%s = %d, want %d (output %s)", k, f.Limits[k], v, out)
		}
	}
}
