package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// auditedLog runs serve twice on one data directory, with audited
// actions in each run and a clean stop after each, and returns the
// stopped server (its data directory holds the log).
func auditedLog(t *testing.T) *server {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	s := serveOn(t, data, "")
	s.createFunction("add", s.upload("add"), "add", "(BIGINT, BIGINT) -> BIGINT")
	s.mustCLI("[1, 2]\n", "invoke", "--function", "add")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s = serveOn(t, data, "")
	s.upload("add")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	return s
}

// copyAudit copies the audit directory of data to a new directory.
func copyAudit(t *testing.T, data string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "audit")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(data, "audit")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editAudit(t *testing.T, path string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func logLines(b []byte) [][]byte {
	return bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// checkpointNotes splits a checkpoint file into its notes, each with the
// blank line that ends it.
func checkpointNotes(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\n\n"))
		j := bytes.Index(b[i+2:], []byte("\n\n"))
		end := i + 2 + j + 2
		out = append(out, b[:end])
		b = b[end:]
	}
	return out
}

// forgeRecords appends k records chained onto the last one with a
// recomputed hash chain: what someone who can write the file, but does
// not hold the signing key, can do.
func forgeRecords(t *testing.T, b []byte, k int) []byte {
	t.Helper()
	ls := logLines(b)
	var last audit.Record
	if err := json.Unmarshal(ls[len(ls)-1], &last); err != nil {
		t.Fatal(err)
	}
	for i := range k {
		r := audit.Record{Seq: last.Seq + 1, Time: last.Time.Add(time.Millisecond), Type: audit.TypeArtifactDeleted,
			Actor: "mallory", Resource: "artifact/art-" + strconv.Itoa(i), Decision: audit.Allow, Host: last.Host, Prev: last.Hash}
		body, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		r.Hash = hex.EncodeToString(sum[:])
		line := append(body[:len(body)-1:len(body)-1], `,"hash":"`+r.Hash+`"}`+"\n"...)
		b = append(b, line...)
		last = r
	}
	return b
}

// Every tamper case on a log written by a real serve is detected and named
// by `udfhost audit verify`, which exits 1.
func TestAuditTamperDetectedByVerify(t *testing.T) {
	s := auditedLog(t)
	out := s.mustCLI("", "audit", "verify")
	var rep struct {
		OK          bool   `json:"ok"`
		Records     int    `json:"records"`
		Checkpoints int    `json:"checkpoints"`
		Final       bool   `json:"final"`
		KeyFrom     string `json:"key_from"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || !rep.Final || rep.Checkpoints < 4 || !strings.Contains(rep.KeyFrom, "next to the log") {
		t.Fatalf("verify of the intact log: %s (%v)", out, err)
	}
	pub := strings.TrimSpace(s.mustCLI("", "audit", "pubkey"))
	n := rep.Records
	logf := func(dir string) string { return filepath.Join(dir, "audit.log") }
	cks := func(dir string) string { return filepath.Join(dir, "audit.checkpoints") }
	origin, _, _ := strings.Cut(pub, "+")
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   []string
	}{
		{"changed byte", func(t *testing.T, dir string) {
			editAudit(t, logf(dir), func(b []byte) []byte {
				ls := logLines(b)
				i := bytes.Index(ls[3], []byte(`"type":"`)) + len(`"type":"`)
				ls[3][i] ^= 0x20
				return bytes.Join(ls, nil)
			})
		}, []string{"record 4 (line 4): hash mismatch"}},
		{"deleted middle record", func(t *testing.T, dir string) {
			editAudit(t, logf(dir), func(b []byte) []byte {
				ls := logLines(b)
				return bytes.Join(append(ls[:5:5], ls[6:]...), nil)
			})
		}, []string{"record 6 (line 6): seq is 7, want 6"}},
		{"deleted last record", func(t *testing.T, dir string) {
			editAudit(t, logf(dir), func(b []byte) []byte {
				ls := logLines(b)
				return bytes.Join(ls[:len(ls)-1], nil)
			})
		}, []string{"covers " + strconv.Itoa(n) + " records but the log holds only " + strconv.Itoa(n-1)}},
		{"reordered records", func(t *testing.T, dir string) {
			editAudit(t, logf(dir), func(b []byte) []byte {
				ls := logLines(b)
				ls[1], ls[2] = ls[2], ls[1]
				return bytes.Join(ls, nil)
			})
		}, []string{"record 2 (line 2): seq is 3, want 2"}},
		{"truncated tail past a checkpoint", func(t *testing.T, dir string) {
			editAudit(t, logf(dir), func(b []byte) []byte {
				ls := logLines(b)
				return bytes.Join(ls[:len(ls)-3], nil)
			})
		}, []string{"covers " + strconv.Itoa(n) + " records but the log holds only " + strconv.Itoa(n-3), "truncated past a checkpoint"}},
		{"forged checkpoint", func(t *testing.T, dir string) {
			editAudit(t, cks(dir), func(b []byte) []byte {
				ns := checkpointNotes(b)
				last := ns[len(ns)-1]
				ns[len(ns)-1] = bytes.Replace(last, []byte("\n"+strconv.Itoa(n)+"\n"), []byte("\n"+strconv.Itoa(n+1)+"\n"), 1)
				return bytes.Join(ns, nil)
			})
		}, []string{"checkpoint ", "does not verify: the checkpoint was changed after it was signed"}},
		{"checkpoint re-signed with another key", func(t *testing.T, dir string) {
			editAudit(t, cks(dir), func(b []byte) []byte {
				skey, _, err := note.GenerateKey(rand.Reader, origin)
				if err != nil {
					t.Fatal(err)
				}
				signer, _ := note.NewSigner(skey)
				ns := checkpointNotes(b)
				last := ns[len(ns)-1]
				text := last[:bytes.Index(last, []byte("\n\n"))+1]
				msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
				if err != nil {
					t.Fatal(err)
				}
				ns[len(ns)-1] = append(msg, '\n')
				return bytes.Join(ns, nil)
			})
		}, []string{"checkpoint ", "not signed by key " + origin}},
		{"records appended after the last checkpoint", func(t *testing.T, dir string) {
			editAudit(t, logf(dir), func(b []byte) []byte { return forgeRecords(t, b, 2) })
		}, []string{"2 records not covered by a signed checkpoint", "a forged append"}},
		{"checkpoint file rolled back", func(t *testing.T, dir string) {
			editAudit(t, cks(dir), func(b []byte) []byte {
				ns := checkpointNotes(b)
				return bytes.Join(ns[:2], nil) // the first run's opening and final
			})
		}, []string{"records not covered by a signed checkpoint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyAudit(t, s.data)
			tt.tamper(t, dir)
			for _, args := range [][]string{{"audit", "verify", "--dir", dir}, {"audit", "verify", "--dir", dir, "--pubkey", pub}} {
				out, errOut, code := s.cli("", args...)
				if code != 1 {
					t.Fatalf("%v: exit %d, want 1:\n%s%s", args, code, out, errOut)
				}
				for _, w := range append([]string{"NOT intact"}, tt.want...) {
					if !strings.Contains(errOut, w) {
						t.Errorf("%v: stderr %q lacks %q", args, errOut, w)
					}
				}
			}
		})
	}
	// A key that is not the log's own does not verify even the intact
	// log: verify with --pubkey detects a log re-signed with a new key.
	_, other, _ := note.GenerateKey(rand.Reader, origin)
	if _, errOut, code := s.cli("", "audit", "verify", "--pubkey", other); code != 1 || !strings.Contains(errOut, "not signed by key") {
		t.Errorf("verify with another key: exit %d, %s", code, errOut)
	}
}

// Records forged after a clean stop make the next serve refuse to start,
// saying why and how to keep the evidence; the files are left as they are.
func TestAuditForgedAppendRefusedAtStart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := serveOn(t, data, "")
	s.upload("add")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	editAudit(t, s.auditPath(), func(b []byte) []byte { return forgeRecords(t, b, 1) })
	before, _ := os.ReadFile(s.auditPath())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "serve", "--data", data, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("serve started on a log with a forged append:\n%s", out)
	}
	for _, w := range []string{"refusing to append", "1 records not covered by a signed checkpoint", "forged append", "cp -a"} {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("serve's refusal lacks %q:\n%s", w, out)
		}
	}
	if after, _ := os.ReadFile(s.auditPath()); !bytes.Equal(after, before) {
		t.Error("the refused serve changed the log")
	}
}

// Inclusion and consistency proofs from `audit prove` hold for the CLI's
// verify-proof with only the key, and for an independent verifier in
// Python (hashlib and base64 only: it checks the Merkle proofs against
// the roots the checkpoints state; the Ed25519 signatures, which Python's
// standard library cannot check, are verify-proof's part). Tampered
// proofs fail both.
func TestAuditProofsVerifiedByCLIAndPython(t *testing.T) {
	s := auditedLog(t)
	pub := strings.TrimSpace(s.mustCLI("", "audit", "pubkey"))
	dir := t.TempDir()
	python := func(file string) (string, int) {
		out, err := exec.Command("/usr/bin/python3", filepath.Join(repoRoot(), "test", "e2e", "testdata", "audit_proof.py"), file).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	check := func(name string, doc string) {
		t.Helper()
		file := filepath.Join(dir, name+".json")
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, errOut, code := s.cli("", "audit", "verify-proof", file, "--pubkey", pub); code != 0 || !strings.Contains(out, `"ok": true`) {
			t.Errorf("verify-proof %s: exit %d: %s%s", name, code, out, errOut)
		}
		if out, code := python(file); code != 0 || !strings.HasPrefix(out, "ok: ") {
			t.Errorf("python %s: exit %d: %s", name, code, out)
		}
		// One changed proof hash, or record, makes both refuse it.
		var p map[string]any
		json.Unmarshal([]byte(doc), &p)
		if proof, _ := p["proof"].([]any); len(proof) > 0 {
			h := proof[0].(string)
			c := "A"
			if h[0] == 'A' {
				c = "B"
			}
			proof[0] = c + h[1:]
		} else if rec, ok := p["record"].(string); ok {
			p["record"] = strings.Replace(rec, `"decision":"allow"`, `"decision":"deny"`, 1)
		}
		bad, _ := json.Marshal(p)
		badFile := filepath.Join(dir, name+"-bad.json")
		os.WriteFile(badFile, bad, 0o600)
		if _, _, code := s.cli("", "audit", "verify-proof", badFile, "--pubkey", pub); code != 1 {
			t.Errorf("verify-proof of a tampered %s: exit %d, want 1", name, code)
		}
		if out, code := python(badFile); code != 1 {
			t.Errorf("python on a tampered %s: exit %d, want 1: %s", name, code, out)
		}
	}
	var rep struct {
		Records int `json:"records"`
	}
	json.Unmarshal([]byte(s.mustCLI("", "audit", "verify")), &rep)
	for seq := 1; seq <= rep.Records; seq++ {
		check("seq-"+strconv.Itoa(seq), s.mustCLI("", "audit", "prove", "--seq", strconv.Itoa(seq)))
	}
	// The checkpoints' sizes: the first run's final one and the second's.
	var sizes []int
	b, _ := os.ReadFile(filepath.Join(s.data, "audit", "audit.checkpoints"))
	for _, n := range checkpointNotes(b) {
		size, _ := strconv.Atoi(strings.Split(string(n), "\n")[1])
		if size > 0 && (len(sizes) == 0 || size > sizes[len(sizes)-1]) {
			sizes = append(sizes, size)
		}
	}
	if len(sizes) < 2 {
		t.Fatalf("checkpoint sizes %v: want several", sizes)
	}
	for i := range sizes {
		for j := i + 1; j < len(sizes); j++ {
			check("consistency-"+strconv.Itoa(sizes[i])+"-"+strconv.Itoa(sizes[j]),
				s.mustCLI("", "audit", "prove", "--consistency", strconv.Itoa(sizes[i]), strconv.Itoa(sizes[j])))
		}
	}
}

// serve killed with SIGKILL under heavy audited load, again and again:
// each restart accepts the tail the last checkpoint did not cover and
// records that it did; after a clean stop the whole log verifies.
func TestAuditSIGKILLLoop(t *testing.T) {
	const rounds, callers = 8, 32
	data := filepath.Join(t.TempDir(), "data")
	var total atomic.Int64
	for round := range rounds {
		s := serveOn(t, data, "")
		ctx, cancel := context.WithCancel(s.ctx())
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for ctx.Err() == nil {
					// A name the policy refuses: one policy.denied record
					// per call, written before the call returns.
					_, err := s.artifacts().CreateUploadURL(ctx, &udfhostv1.CreateUploadURLRequest{Env: "Not A Name!"})
					if status.Code(err) != codes.InvalidArgument {
						return // the kill
					}
					total.Add(1)
				}
			})
		}
		time.Sleep(time.Duration(300+100*round) * time.Millisecond)
		s.cmd.Process.Kill()
		<-s.exited
		cancel()
		wg.Wait()
		if _, errOut, code := s.cli("", "audit", "verify"); code != 1 || !strings.Contains(errOut, "not covered by a signed checkpoint") && !strings.Contains(errOut, "incomplete") {
			t.Errorf("round %d: verify after SIGKILL: exit %d: %s", round, code, errOut)
		}
	}
	s := serveOn(t, data, "")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := s.cli("", "audit", "verify")
	if code != 0 {
		t.Fatalf("verify after the loop and a clean stop: exit %d: %s%s", code, out, errOut)
	}
	var rep struct {
		Records int  `json:"records"`
		Final   bool `json:"final"`
	}
	json.Unmarshal([]byte(out), &rep)
	uncovered := 0
	for _, r := range s.auditRecords() {
		if r.Type == audit.TypeAuditUncovered {
			uncovered++
		}
	}
	t.Logf("%d rounds, %d calls, %d records, %d restarts recorded uncovered tails", rounds, total.Load(), rep.Records, uncovered)
	if rep.Records < 1000 || !rep.Final || uncovered == 0 {
		t.Errorf("records %d final %v uncovered-tail records %d: want heavy load, a final checkpoint and recorded tails", rep.Records, rep.Final, uncovered)
	}
}

// serve reports at start whether the audit files took the append-only
// inode flag; where it did, the running server's log cannot be rewritten
// or truncated, even by root; doctor reports whether the flag is
// available; after a clean stop the flag is gone.
func TestAuditAppendOnlyFlagReported(t *testing.T) {
	s := startServer(t)
	if !strings.Contains(s.logs(), `msg="audit log"`) || !strings.Contains(s.logs(), "append_only=") {
		t.Fatalf("serve did not log the audit log's append-only flag at start:\n%s", s.logs())
	}
	if strings.Contains(s.logs(), "append_only=true") {
		if err := os.Truncate(s.auditPath(), 0); err == nil {
			t.Error("truncated the running server's audit log despite the append-only flag")
		}
		if err := os.WriteFile(s.auditPath(), []byte("{}\n"), 0o600); err == nil {
			t.Error("rewrote the running server's audit log despite the append-only flag")
		}
	}
	_, errOut, code := s.cli("", "doctor")
	if code != 0 || !strings.Contains(errOut, "audit append-only flag (FS_APPEND_FL)") {
		t.Errorf("doctor: exit %d, stderr %q; want the append-only flag reported", code, errOut)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// Stopped, the log can be moved (an append-only file cannot).
	if err := os.Rename(s.auditPath(), s.auditPath()+".moved"); err != nil {
		t.Fatalf("move the stopped server's audit log: %v", err)
	}
	if err := os.Rename(s.auditPath()+".moved", s.auditPath()); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := s.cli("", "audit", "verify"); code != 0 {
		t.Errorf("verify after a clean stop: %s", errOut)
	}
}
