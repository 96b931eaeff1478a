package policies

import (
	"testing"
	"time"
)

func TestEdgeWithDefaults(t *testing.T) {
	d := DefaultEdge()
	tests := []struct {
		name string
		in   Edge
		want Edge
	}{
		{"zero is the default", Edge{}, d},
		{"set fields are kept", Edge{StreamIdleTimeout: time.Second, MaxInflightBytes: 1 << 20},
			Edge{RequestTimeout: d.RequestTimeout, StreamIdleTimeout: time.Second, MaxStreamsPerConn: d.MaxStreamsPerConn,
				MaxStreams: d.MaxStreams, MaxInflightBytes: 1 << 20}},
		{"negative is the default", Edge{RequestTimeout: -1, MaxStreams: -1}, d},
	}
	for _, tc := range tests {
		if got := tc.in.WithDefaults(); got != tc.want {
			t.Errorf("%s: %+v.WithDefaults() = %+v, want %+v", tc.name, tc.in, got, tc.want)
		}
	}
	if Default().Edge != d {
		t.Errorf("Default policy's edge %+v, want %+v", Default().Edge, d)
	}
}
