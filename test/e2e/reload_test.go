package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udfhost/udfhost/internal/jsonrows"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// reloadPolicy is the policy file of TestSIGHUPReload: payments public
// or private, served with treasury on a private network at link; ops and
// ana by token files; extra appended verbatim.
func reloadPolicy(link, payments, linkEnvs, extra string) string {
	return fmt.Sprintf(`org: acme
environments:
  - name: analytics
    visibility: public
  - name: payments
    visibility: %s
  - name: treasury
    visibility: private
networks:
  - name: public
  - name: payments-link
    listen: %s
    environments: %s
pools:
  - name: default
    environment: analytics
principals:
  - name: ops
    token_file: tokens/ops.token
    roles: {"*": admin}
  - name: ana
    token_file: tokens/ana.token
    roles: {analytics: invoker}
%s`, payments, link, linkEnvs, extra)
}

// TestSIGHUPReload: `kill -HUP` on a real `udfhost serve --policy`
// re-reads the file. Rotating ana's token file makes the old token fail
// and the new one work, while ana's InvokeStream opened before goes on
// answering; a file with an unknown field, or one that makes the served
// private environment public, is refused (logged with FILE:LINE:COL,
// audited) and the old policy serves on.
func TestSIGHUPReload(t *testing.T) {
	if out, _ := serveRefused(t, filepath.Join(t.TempDir(), "none.yaml")); strings.Contains(out, "not supported yet") {
		t.Skip("needs serve --policy")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	ops, ana := newToken(t, tokens, "ops"), newToken(t, tokens, "ana")
	link := freeAddr(t)
	file := filepath.Join(dir, "policy.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good := reloadPolicy(link, "private", "[payments, treasury]", "")
	write(good)
	s := serveWith(t, filepath.Join(t.TempDir(), "data"), "", "--policy", file)
	cli := func(tok string, args ...string) (string, string, int) {
		return s.cli("[2, 3]\n", append([]string{"--token", tok}, args...)...)
	}
	whoami := func(tok string) whoami {
		t.Helper()
		out, errOut, code := cli(tok, "whoami")
		if code != 0 {
			t.Fatalf("whoami: exit %d: %s", code, errOut)
		}
		return parseWhoAmI(t, out)
	}
	out, errOut, code := cli(ops, "artifact", "upload", "--env", "analytics", wasm["add"])
	if code != 0 {
		t.Fatalf("upload as ops: %s", errOut)
	}
	id := regexp.MustCompile(`"id":\s*"([^"]+)"`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("upload printed %q", out)
	}
	if _, errOut, code := cli(ops, "function", "create", "--env", "analytics", "--name", "add", "--artifact", id[1],
		"--export", "add", "--signature", "(BIGINT, BIGINT) -> BIGINT"); code != 0 {
		t.Fatalf("function create as ops: %s", errOut)
	}

	// ana's stream, opened with the token that is about to be rotated.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := s.invoker().InvokeStream(withToken(ctx, ana))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	batch := func(seq uint64) *udfhostv1.InvokeResponse {
		t.Helper()
		rows := jsonrows.NewBuilder([]udfhostv1.SqlType{udfhostv1.SqlType_TYPE_BIGINT, udfhostv1.SqlType_TYPE_BIGINT})
		if err := rows.AddLine([]byte("[2, 3]")); err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&udfhostv1.InvokeRequest{Env: "analytics", Function: "add", Batch: rows.Batch(), Seq: seq}); err != nil {
			t.Fatalf("send batch %d: %v", seq, err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("batch %d: the stream ended: %v", seq, err)
		}
		return resp
	}
	if resp := batch(1); resp.Error != nil {
		t.Fatalf("batch 1: %v", resp.Error)
	}

	// hup sends SIGHUP and waits for the n-th record of typ.
	hup := func(typ string, n int) actorRecord {
		t.Helper()
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			var seen []actorRecord
			for _, r := range s.actorRecords() {
				if r.Type == typ {
					seen = append(seen, r)
				}
			}
			if len(seen) >= n {
				return seen[n-1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s record %d s after SIGHUP:\n%s", typ, 20, s.logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	newAna := newToken(t, tokens, "ana") // the rotation
	rec := hup("policy.reloaded", 1)
	sum := sha256.Sum256([]byte(good))
	if rec.Details["sha256"] != hex.EncodeToString(sum[:]) || rec.Details["file"] != file || rec.Details["changes"] != "principals ~ana" || rec.Actor != "udfhost" {
		t.Errorf("policy.reloaded = %+v, want file %s, sha256 %x, changes \"principals ~ana\"", rec, file, sum)
	}
	if _, errOut, code := cli(ana, "whoami"); code == 0 || !strings.Contains(errOut, "unauthenticated") {
		t.Errorf("whoami with ana's old token after the rotation: exit %d %s", code, errOut)
	}
	if w := whoami(newAna); w.Principal != "ana" {
		t.Errorf("whoami with ana's new token = %+v", w)
	}
	if resp := batch(2); resp.Error != nil || resp.Result == nil {
		t.Errorf("batch 2 on the stream opened with the old token: %+v", resp)
	}

	for i, c := range []struct {
		name, content, want string
	}{
		{"unknown field", good + "  - name: eve\n    token_file: tokens/ops.token\n    role: {analytics: admin}\n", `unknown field "role"`},
		{"private to public", reloadPolicy(link, "public", "[treasury]", ""), "can never be made public again"},
	} {
		write(c.content)
		rec := hup("policy.reload_refused", i+1)
		if !strings.HasPrefix(rec.Reason, file+":") || !strings.Contains(rec.Reason, c.want) || rec.Decision != "deny" {
			t.Errorf("%s: policy.reload_refused = %+v, want a reason FILE:LINE:COL: ... %q", c.name, rec, c.want)
		}
		// The server logs before it audits, but its stderr reaches the
		// test through a pipe copied by another goroutine: wait for it.
		logged := refusalLogged(s.logs(), rec.Reason)
		for deadline := time.Now().Add(5 * time.Second); !logged && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			logged = refusalLogged(s.logs(), rec.Reason)
		}
		if !logged {
			t.Errorf("%s: the refusal is not logged on one line with its FILE:LINE:COL:\n%s", c.name, s.logs())
		}
		if w := whoami(newAna); w.Principal != "ana" {
			t.Errorf("%s: the old policy does not serve on: whoami = %+v", c.name, w)
		}
		if resp := batch(uint64(3 + i)); resp.Error != nil {
			t.Errorf("%s: the stream after a refused reload: %v", c.name, resp.Error)
		}
	}
	select {
	case <-s.exited:
		t.Fatalf("serve exited:\n%s", s.logs())
	default:
	}
}

// placeRE is the FILE:LINE:COL: that starts a policy error.
var placeRE = regexp.MustCompile(`^[^:]+:\d+:\d+:`)

// refusalLogged reports whether one line of logs is a refused reload
// naming the place at the start of reason.
func refusalLogged(logs, reason string) bool {
	place := placeRE.FindString(reason)
	for _, line := range strings.Split(logs, "\n") {
		if place != "" && strings.Contains(line, `msg="policy reload refused; the old policy stays"`) && strings.Contains(line, place) {
			return true
		}
	}
	return false
}
