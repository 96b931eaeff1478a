package wire

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/internal/udf"
)

func TestCallHeaderRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  FuncSpec
		flags byte
		input []byte
	}{
		{"batch", FuncSpec{Export: "affine", ABI: udf.ABIBatch, Args: []udf.Type{udf.BigInt, udf.BigInt, udf.BigInt}, Result: udf.BigInt}, 0, []byte("input region")},
		{"prepare, no input", FuncSpec{Export: "add", ABI: udf.ABIDirect, Args: []udf.Type{udf.Int}, Result: udf.Int}, FlagPrepare, nil},
		{"no args", FuncSpec{Export: "f", ABI: udf.ABIBatch}, FlagProbe, []byte("{}")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := append(AppendCallHeader(nil, &tc.spec, 1500, tc.flags), tc.input...)
			spec, deadline, flags, input, err := ParseCallHeader(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(spec, tc.spec) || deadline != 1500 || flags != tc.flags || !bytes.Equal(input, tc.input) {
				t.Errorf("got %+v %d %d %q", spec, deadline, flags, input)
			}
		})
	}
}

func TestCallHeaderRefusesShortFrames(t *testing.T) {
	p := AppendCallHeader(nil, &FuncSpec{Export: "add", Args: []udf.Type{udf.Int}}, 1, 0)
	for _, n := range []int{0, callHeaderSize - 1, callHeaderSize + 2} {
		if _, _, _, _, err := ParseCallHeader(p[:n], nil); err == nil {
			t.Errorf("%d-byte frame accepted", n)
		}
	}
}

func TestLoadMessagesRoundTrip(t *testing.T) {
	cfg, module, err := DecodeLoad(bytes.Join(EncodeLoad(LoadConfig{Identity: "spiffe://x", MaxInstances: 2}, []byte("\x00asm")), nil))
	if err != nil || cfg.Identity != "spiffe://x" || cfg.MaxInstances != 2 || cfg.ModuleSize != 4 || string(module) != "\x00asm" {
		t.Fatalf("load: %+v %q %v", cfg, module, err)
	}
	info := LoadedInfo{PID: 7, CacheFiles: []CacheFile{{"a", 1}, {"b/c", 2}}, CacheData: [][]byte{[]byte("1"), []byte("22")}}
	got, err := DecodeLoaded(bytes.Join(EncodeLoaded(&info), nil))
	if err != nil || !reflect.DeepEqual(got, info) {
		t.Fatalf("loaded: %+v %v", got, err)
	}
	// A worker announcing more cache bytes than it sent is refused.
	info.CacheFiles[1].Size = 3
	if _, err := DecodeLoaded(bytes.Join(EncodeLoaded(&info), nil)); err == nil || !strings.Contains(err.Error(), `cache file "b/c" of 3 bytes`) {
		t.Errorf("overlong cache file: %v", err)
	}
	if _, _, err := DecodeLoad([]byte(`{"module_size":9}` + "\x00short")); err == nil {
		t.Error("a module size past the frame was accepted")
	}
}
