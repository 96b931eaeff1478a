package sectest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// canary is a well-behaved function on a pod identity of its own, called
// every canaryEvery throughout the run: every hostile case must leave it
// answering, correctly and in time.
type canary struct {
	r        *runner
	fn       string
	mu       sync.Mutex
	calls    int
	failures []canaryFailure
	done     chan struct{}
	wg       sync.WaitGroup
}

type canaryFailure struct {
	at  time.Time
	err error
}

const (
	canaryEvery   = 100 * time.Millisecond
	canaryTimeout = 5 * time.Second
)

// readCanary reads the canary module and tags it (see loadModule).
func readCanary(path, tag string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return append(b, customSection("udfhost-sectest", []byte(tag))...), nil
}

// startCanary uploads the canary module, creates its function, checks one
// call and starts calling it in the background.
func startCanary(ctx context.Context, r *runner) (*canary, error) {
	data, err := readCanary(r.cfg.Canary, r.id+"/canary")
	if err != nil {
		return nil, err
	}
	art, _, err := r.api.upload(ctx, "st-"+r.id+"-canary", data)
	if err != nil {
		return nil, err
	}
	r.later(func(ctx context.Context) { r.api.art.DeleteArtifact(ctx, &udfhostv1.DeleteArtifactRequest{Id: art.Id}) })
	c := &canary{r: r, fn: "st_" + r.id + "_canary", done: make(chan struct{})}
	if _, err := r.api.createFunction(ctx, c.fn, art.Id, "add", "(BIGINT, BIGINT) -> BIGINT", ""); err != nil {
		return nil, err
	}
	r.later(func(ctx context.Context) {
		r.api.fn.DeleteFunction(ctx, &udfhostv1.DeleteFunctionRequest{Name: c.fn, Env: "default"})
	})
	if err := c.call(ctx); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(canaryEvery)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				c.call(ctx)
			}
		}
	}()
	return c, nil
}

// call adds two random numbers through the canary and records a failure
// if the answer is wrong or late.
func (c *canary) call(ctx context.Context) error {
	a, b := rand.Int64N(1<<40), rand.Int64N(1<<40)
	ctx, cancel := context.WithTimeout(ctx, canaryTimeout)
	defer cancel()
	bt := &udfhostv1.Batch{Rows: 1, Columns: []*udfhostv1.Column{
		{Type: udfhostv1.SqlType_TYPE_BIGINT, Values: le64(a)},
		{Type: udfhostv1.SqlType_TYPE_BIGINT, Values: le64(b)},
	}}
	t0 := time.Now()
	resp, err := c.r.api.inv.Invoke(ctx, &udfhostv1.InvokeRequest{Function: c.fn, Batch: bt})
	switch {
	case err != nil:
		err = fmt.Errorf("canary call at %s failed after %s: %v", t0.Format("15:04:05.000"), time.Since(t0).Round(time.Millisecond), err)
	case resp.Result == nil || len(resp.Result.Values) != 8 || int64(leUint64(resp.Result.Values)) != a+b:
		err = fmt.Errorf("canary call at %s: %d + %d answered wrongly: %v", t0.Format("15:04:05.000"), a, b, resp.Result)
	}
	c.mu.Lock()
	c.calls++
	if err != nil {
		c.failures = append(c.failures, canaryFailure{t0, err})
	}
	c.mu.Unlock()
	return err
}

// check calls the canary now and reports the failures since start.
func (c *canary) check(ctx context.Context, start time.Time) (bool, string) {
	c.call(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	n := 0
	for _, f := range c.failures {
		if !f.at.Before(start) {
			if first == nil {
				first = f.err
			}
			n++
		}
	}
	if n == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("CANARY FAILED %d times during the case, first: %v", n, first)
}

// stop ends the background calls and summarises them.
func (c *canary) stop() string {
	close(c.done)
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d calls, %d failed", c.calls, len(c.failures))
}

func le64(v int64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(uint64(v) >> (8 * i))
	}
	return b
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}
