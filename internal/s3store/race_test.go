package s3store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestConditionalRace has several writers race on one record, as several
// hosts would: exactly one wins each round, every other loses with the
// sentinel, and the record holds the winner's bytes.
func TestConditionalRace(t *testing.T) {
	g := startGateway(t, "race")
	ctx := context.Background()
	const writers = 6
	const key = "functions/raced.json"

	results := make([]error, writers)
	tags := make([]string, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tags[i], results[i] = g.store.PutIfAbsent(ctx, key, fmt.Appendf(nil, "create %d", i))
		}()
	}
	wg.Wait()
	winner := oneWinner(t, "PutIfAbsent", results, ErrExists)
	body, etag, err := g.store.GetRecord(ctx, key, 100)
	if err != nil || string(body) != fmt.Sprintf("create %d", winner) || etag != tags[winner] {
		t.Fatalf("record = %q %s %v; want writer %d's", body, etag, err, winner)
	}

	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tags[i], results[i] = g.store.PutIfMatch(ctx, key, fmt.Appendf(nil, "update %d", i), etag)
		}()
	}
	wg.Wait()
	winner = oneWinner(t, "PutIfMatch", results, ErrPreconditionFailed)
	if body, _, _ := g.store.GetRecord(ctx, key, 100); string(body) != fmt.Sprintf("update %d", winner) {
		t.Fatalf("record = %q; want writer %d's update", body, winner)
	}
}

func oneWinner(t *testing.T, op string, results []error, lost error) int {
	t.Helper()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s: writers %d and %d both won", op, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, lost):
			t.Errorf("%s: writer %d: %v, want %v", op, i, err, lost)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: nobody won: %v", op, results)
	}
	return winner
}
