package sandbox

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
//	[6:8]  status (u16): 0 ok, else an error class (status* below)
//	[8:16] request id (u64); responses carry the id of their request
//
// Requests may be answered out of order, so several batches can be in
// flight on one worker.
const (
	frameHeaderSize = 16
	// maxFrame bounds what either side will allocate for one frame.
	maxFrame = 256 << 20
)

// Frame kinds.
const (
	kindLoad   uint16 = 1 // host -> worker: loadConfig JSON, 0 byte, module bytes
	kindLoaded uint16 = 2 // worker -> host: loadedInfo JSON
	kindCall   uint16 = 3 // host -> worker: call header + input region
	kindResult uint16 = 4 // worker -> host: output region, or error text if status != 0
	// kindCompiled tells the host the module is compiled and the jail is
	// complete: from here on guest code (its start function) runs, under
	// Config.InitDeadline rather than the compile's StartTimeout.
	kindCompiled uint16 = 5
)

// Error classes carried in the status field of a result frame.
const (
	statusOK         uint16 = 0
	statusTrap       uint16 = 1 // guest trapped; instance discarded
	statusTimeout    uint16 = 2 // batch deadline passed; instance discarded
	statusBadOutput  uint16 = 3 // guest returned an inconsistent output region
	statusGuestError uint16 = 4 // guest reported it could not process the batch
	statusBadRequest uint16 = 5 // host sent something the worker rejects
	statusInternal   uint16 = 6
)

type frame struct {
	kind    uint16
	status  uint16
	id      uint64
	payload []byte
}

// frameWriter serialises whole frames from many goroutines onto one socket.
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	hdr [frameHeaderSize]byte
}

func (fw *frameWriter) write(kind, status uint16, id uint64, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds limit %d", n, maxFrame)
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

// readFrame reads one frame; buf is reused for the payload when it is large
// enough. The payload aliases the returned buffer.
func readFrame(r io.Reader, hdr *[frameHeaderSize]byte, buf []byte) (frame, []byte, error) {
	return readFrameMax(r, hdr, buf, maxFrame)
}

// errFrameTooLarge means the peer announced a frame over the reader's limit.
var errFrameTooLarge = errors.New("frame too large")

// readFrameMax is readFrame with a tighter limit: the host holds a
// worker's answers to the batch limit, so an untrusted worker cannot make
// it allocate more.
func readFrameMax(r io.Reader, hdr *[frameHeaderSize]byte, buf []byte, limit uint32) (frame, []byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, buf, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:])
	if n > limit {
		return frame{}, buf, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, limit)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, buf, err
	}
	return frame{
		kind:    binary.LittleEndian.Uint16(hdr[4:]),
		status:  binary.LittleEndian.Uint16(hdr[6:]),
		id:      binary.LittleEndian.Uint64(hdr[8:]),
		payload: buf,
	}, buf, nil
}
