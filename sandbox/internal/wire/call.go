package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/udfhost/udfhost/internal/udf"
)

// FuncSpec says which export to call and how. It travels with every call so
// a worker holds no per-function state and a restarted one needs no replay.
type FuncSpec struct {
	Export string
	ABI    udf.ABI
	Args   []udf.Type
	Result udf.Type
}

// callHeader layout (then args, export name, zero padding to 8 bytes, input):
//
//	[0:4] deadline in milliseconds  [4] abi  [5] result type  [6] nargs
//	[7] flags  [8:10] export name length  [10:16] reserved
const callHeaderSize = 16

// Call flags.
const (
	// FlagPrepare asks the worker to get ready to call spec (check the
	// export, compile a direct-ABI driver) without running anything; no
	// input follows.
	FlagPrepare = 1
	// FlagProbe asks the worker to run one of its jail's canary probes;
	// the input region is a ProbeRequest as JSON.
	FlagProbe = 2
	// FlagTestHook has the call answered by the worker's test hooks,
	// which only the sandbox's own test binary installs.
	FlagTestHook = 4
)

// AppendCallHeader appends the header of a call of spec to dst; the input
// region follows it in the frame.
func AppendCallHeader(dst []byte, spec *FuncSpec, deadlineMS uint32, flags byte) []byte {
	var h [callHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], deadlineMS)
	h[4] = byte(spec.ABI)
	h[5] = byte(spec.Result)
	h[6] = byte(len(spec.Args))
	h[7] = flags
	binary.LittleEndian.PutUint16(h[8:], uint16(len(spec.Export)))
	dst = append(dst, h[:]...)
	for _, t := range spec.Args {
		dst = append(dst, byte(t))
	}
	dst = append(dst, spec.Export...)
	for len(dst)%8 != 0 {
		dst = append(dst, 0)
	}
	return dst
}

// ParseCallHeader returns the spec, the deadline, the flags and the input
// region. args is reused for the argument types.
func ParseCallHeader(p []byte, args []udf.Type) (FuncSpec, uint32, byte, []byte, error) {
	if len(p) < callHeaderSize {
		return FuncSpec{}, 0, 0, nil, fmt.Errorf("call frame of %d bytes is shorter than its header", len(p))
	}
	flags := p[7]
	deadline := binary.LittleEndian.Uint32(p[0:])
	spec := FuncSpec{ABI: udf.ABI(p[4]), Result: udf.Type(p[5])}
	nargs := int(p[6])
	nameLen := int(binary.LittleEndian.Uint16(p[8:]))
	end := callHeaderSize + nargs + nameLen
	if end > len(p) {
		return FuncSpec{}, 0, 0, nil, fmt.Errorf("call frame header overruns the frame")
	}
	args = args[:0]
	for _, b := range p[callHeaderSize : callHeaderSize+nargs] {
		args = append(args, udf.Type(b))
	}
	spec.Args = args
	spec.Export = string(p[callHeaderSize+nargs : end])
	start := (end + 7) &^ 7
	if start > len(p) {
		start = len(p) // a prepare frame may end at the name
	}
	return spec, deadline, flags, p[start:], nil
}
