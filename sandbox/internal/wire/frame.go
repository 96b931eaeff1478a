package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// The host and a worker exchange frames over a stream socket:
//
//	[0:4]  payload length (u32, little-endian)
//	[4:6]  kind (u16)
//	[6:8]  status (u16): 0 ok, else an error class (Status* below)
//	[8:16] request id (u64); responses carry the id of their request
//
// Requests may be answered out of order, so several batches can be in
// flight on one worker.
const (
	HeaderSize = 16
	// MaxFrame bounds what either side will allocate for one frame.
	MaxFrame = 256 << 20
)

// Frame kinds.
const (
	KindLoad   uint16 = 1 // host -> worker: LoadConfig JSON, 0 byte, module bytes
	KindLoaded uint16 = 2 // worker -> host: LoadedInfo JSON, 0 byte, cache files
	KindCall   uint16 = 3 // host -> worker: call header + input region
	KindResult uint16 = 4 // worker -> host: output region, or error text if status != 0
	// KindCompiled tells the host the module is compiled and the jail is
	// complete: from here on guest code (its start function) runs, under
	// the host's init deadline rather than the compile's start timeout.
	KindCompiled uint16 = 5
	// KindEgress and KindEgressReply (egress.go) are the one exchange the
	// worker starts: a guest's HTTP request during a call, and its answer.
)

// Error classes carried in the status field of a result frame.
const (
	StatusOK         uint16 = 0
	StatusTrap       uint16 = 1 // guest trapped; instance discarded
	StatusTimeout    uint16 = 2 // batch deadline passed; instance discarded
	StatusBadOutput  uint16 = 3 // guest returned an inconsistent output region
	StatusGuestError uint16 = 4 // guest reported it could not process the batch
	StatusBadRequest uint16 = 5 // host sent something the worker rejects
	StatusInternal   uint16 = 6
)

// Frame is one frame read from the socket.
type Frame struct {
	Kind    uint16
	Status  uint16
	ID      uint64
	Payload []byte
}

// Writer serialises whole frames from many goroutines onto one socket.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	hdr [HeaderSize]byte
}

// NewWriter returns a Writer of frames onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Send writes one frame whose payload is the concatenation of parts, in
// one writev.
func (fw *Writer) Send(kind, status uint16, id uint64, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds limit %d", n, MaxFrame)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	binary.LittleEndian.PutUint32(fw.hdr[0:], uint32(n))
	binary.LittleEndian.PutUint16(fw.hdr[4:], kind)
	binary.LittleEndian.PutUint16(fw.hdr[6:], status)
	binary.LittleEndian.PutUint64(fw.hdr[8:], id)
	bufs := make(net.Buffers, 0, 1+len(parts))
	bufs = append(bufs, fw.hdr[:])
	for _, p := range parts {
		if len(p) > 0 {
			bufs = append(bufs, p)
		}
	}
	_, err := bufs.WriteTo(fw.w)
	return err
}

// ReadFrame reads one frame; buf is reused for the payload when it is large
// enough. The payload aliases the returned buffer.
func ReadFrame(r io.Reader, hdr *[HeaderSize]byte, buf []byte) (Frame, []byte, error) {
	return ReadFrameMax(r, hdr, buf, MaxFrame)
}

// ErrFrameTooLarge means the peer announced a frame over the reader's limit.
var ErrFrameTooLarge = errors.New("frame too large")

// ReadFrameMax is ReadFrame with a tighter limit: the host holds a
// worker's answers to the batch limit, so an untrusted worker cannot make
// it allocate more.
func ReadFrameMax(r io.Reader, hdr *[HeaderSize]byte, buf []byte, limit uint32) (Frame, []byte, error) {
	return ReadFrameLimits(r, hdr, buf, limit, limit)
}

// ReadFrameLimits is ReadFrameMax with its own limit for KindEgress
// frames, which the host holds to the egress limits rather than the
// batch limit.
func ReadFrameLimits(r io.Reader, hdr *[HeaderSize]byte, buf []byte, limit, egressLimit uint32) (Frame, []byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, buf, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	if binary.LittleEndian.Uint16(hdr[4:]) == KindEgress {
		limit = egressLimit
	}
	if n > limit {
		return Frame{}, buf, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, buf, err
	}
	return Frame{
		Kind:    binary.LittleEndian.Uint16(hdr[4:]),
		Status:  binary.LittleEndian.Uint16(hdr[6:]),
		ID:      binary.LittleEndian.Uint64(hdr[8:]),
		Payload: buf,
	}, buf, nil
}
