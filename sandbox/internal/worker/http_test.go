package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/udfhost/udfhost/sandbox/internal/wire"
)

// TestEgressHubMatchesRepliesByID: a request goes out as a KindEgress
// frame carrying its call's id and the record unchanged; only the reply
// with its egress id reaches it, and a reply nobody waits for is dropped.
func TestEgressHubMatchesRepliesByID(t *testing.T) {
	worker, host := net.Pipe()
	defer worker.Close()
	defer host.Close()
	hub := newEgressHub(wire.NewWriter(worker), 1<<10)
	rec := wire.AppendEgressRequest(nil, &wire.EgressRequest{Conn: "#0", Method: "GET", Path: "/k"})
	type answer struct {
		r   egressReply
		err error
	}
	done := make(chan answer, 1)
	go func() {
		r, err := hub.do(context.Background(), 42, rec)
		done <- answer{r, err}
	}()
	var hdr [wire.HeaderSize]byte
	fr, _, err := wire.ReadFrame(host, &hdr, nil)
	if err != nil {
		t.Fatal(err)
	}
	call, got, err := wire.ParseEgress(fr.Payload)
	if fr.Kind != wire.KindEgress || err != nil || call != 42 || !bytes.Equal(got, rec) {
		t.Fatalf("frame kind %d, call %d, record %q, %v", fr.Kind, call, got, err)
	}
	if hub.deliver(wire.Frame{Kind: wire.KindEgressReply, ID: fr.ID + 1}) {
		t.Error("a reply for another egress id was taken")
	}
	if !hub.deliver(wire.Frame{Kind: wire.KindEgressReply, Status: wire.StatusEgressDenied, ID: fr.ID, Payload: []byte("no")}) {
		t.Fatal("the reply was not taken")
	}
	a := <-done
	if a.err != nil || a.r.status != wire.StatusEgressDenied || string(a.r.payload) != "no" {
		t.Errorf("got %+v", a)
	}
	if hub.deliver(wire.Frame{ID: fr.ID}) {
		t.Error("a second reply for the same id was taken")
	}
}

// TestEgressHubGivesUpAtTheDeadline: a request whose reply does not come
// ends with its context, and leaves nothing waiting.
func TestEgressHubGivesUpAtTheDeadline(t *testing.T) {
	hub := newEgressHub(wire.NewWriter(io.Discard), 1<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := hub.do(ctx, 1, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if n := len(hub.waiting); n != 0 {
		t.Errorf("%d requests still waiting", n)
	}
}

// TestNoResponseToRead: the response functions before any answer.
func TestNoResponseToRead(t *testing.T) {
	var none *egressCall
	if none.responseRead(nil, 0, 0, 1) != codeNoResponse || (&egressCall{}).responseHeaders(nil, 0, 1) != codeNoResponse {
		t.Error("a response read without one")
	}
	if none.request(context.Background(), nil, 0, 0, 0, 0) != codeDenied {
		t.Error("a request outside a call was not denied")
	}
}
