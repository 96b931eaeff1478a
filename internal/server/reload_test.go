package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/audit"
	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// reloadFile is a policy file: analytics public, payments (and treasury)
// private on payments-link, a pool in analytics and payments; admin by a token file, and the
// principals given as "name: token: roles" lines (token_sha256 of
// tenantToken(token), so a token can rotate under the same name).
type reloadFile struct {
	org, paymentsVisibility, linkListen, linkEnvs string
	principals                                    []string // "name|token|{roles}"
	extra                                         string   // appended verbatim
}

func defaultReloadFile() reloadFile {
	return reloadFile{org: "acme", paymentsVisibility: "private", linkListen: "127.0.0.1:0", linkEnvs: "[payments]",
		principals: []string{"ana|ana|{analytics: invoker}", "tm|tm|{payments: invoker}"}}
}

func (f reloadFile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, `org: %s
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
  - name: default
    environment: payments
principals:
  - name: admin
    token_file: tokens/admin.token
    roles: {"*": admin}
`, f.org, f.paymentsVisibility, f.linkListen, f.linkEnvs)
	for _, p := range f.principals {
		parts := strings.SplitN(p, "|", 3)
		sum := sha256.Sum256([]byte(tenantToken(parts[1])))
		fmt.Fprintf(&b, "  - name: %s\n    token_sha256: %s\n    roles: %s\n", parts[0], hex.EncodeToString(sum[:]), parts[2])
	}
	b.WriteString(f.extra)
	return b.String()
}

// reloading is a live server started from a policy file that a test
// rewrites and reloads.
type reloading struct {
	*tenants
	file string
}

func startReloading(t *testing.T) *reloading {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (jailed workers, cgroups)")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens", "admin.token"), []byte(tenantToken("admin")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &reloading{file: filepath.Join(dir, "policy.yaml")}
	r.write(t, defaultReloadFile().String())
	pol, err := policies.Load(r.file)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{
		DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		Policy: pol, Logger: slog.New(slog.DiscardHandler), SummaryInterval: time.Hour,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start server: %v", err)
	}
	r.tenants = &tenants{t: t, s: s, conns: map[string]*grpc.ClientConn{}, ctx: ctx, wasm: addK(t, 1)}
	t.Cleanup(func() { r.stop() })
	for _, n := range []string{netPublic, netPayments} {
		conn, err := grpc.NewClient(s.NetworkAddr(n), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		r.conns[n] = conn
	}
	art := r.artifact(netPublic, "analytics")
	r.mustFunction(netPublic, "analytics", "add", art.Id)
	return r
}

func (r *reloading) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(r.file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reload writes content and reloads it; it returns Reload's error.
func (r *reloading) reload(content string) error {
	r.t.Helper()
	r.write(r.t, content)
	return r.s.Reload(r.ctx)
}

func (r *reloading) asToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(r.ctx, "authorization", "Bearer "+tenantToken(tok))
}

// lastRecord is the last audit record of type typ.
func (r *reloading) lastRecord(typ string) (audit.Record, bool) {
	var last audit.Record
	found := false
	for _, rec := range r.records() {
		if rec.Type == typ {
			last, found = rec, true
		}
	}
	return last, found
}

// TestReloadChangesRoles: a reloaded file's roles take effect from the
// next call, and the reload is audited with the file's sha256.
func TestReloadChangesRoles(t *testing.T) {
	r := startReloading(t)
	if err := r.invoke(netPublic, "ana", "analytics", "add"); err != nil {
		t.Fatalf("ana (invoker) invokes analytics/add: %v", err)
	}
	_, err := r.function(netPublic, "ana", "analytics", "mine", r.artifact(netPublic, "analytics").Id)
	r.wantDenied(err, codes.PermissionDenied, "ana", netPublic, "env/analytics")

	// ana gains developer in analytics.
	f := defaultReloadFile()
	f.principals[0] = "ana|ana|{analytics: developer}"
	if err := r.reload(f.String()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	sum := sha256.Sum256([]byte(f.String()))
	rec, ok := r.lastRecord(audit.TypePolicyReloaded)
	if !ok {
		t.Fatal("no policy.reloaded record")
	}
	if rec.Details["sha256"] != hex.EncodeToString(sum[:]) || rec.Details["file"] != r.file || rec.Actor != policies.ReservedPrincipal ||
		!strings.Contains(rec.Details["summary"], "org acme") || rec.Details["changes"] != "principals ~ana" || rec.Decision != audit.Allow {
		t.Errorf("policy.reloaded record = %+v; want the file, its sha256 %x, a summary and changes \"principals ~ana\"", rec, sum)
	}
	if got := r.s.policy.Load().FileSHA256; got != hex.EncodeToString(sum[:]) {
		t.Errorf("served policy's sha256 %s, want the new file's", got)
	}
	if _, err := r.function(netPublic, "ana", "analytics", "mine", r.artifact(netPublic, "analytics").Id); err != nil {
		t.Errorf("ana (developer after the reload) creates a function: %v", err)
	}

	// ana loses every role in analytics: it sees nothing there.
	f.principals[0] = "ana|ana|{payments: auditor}"
	if err := r.reload(f.String()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	r.wantDenied(r.invoke(netPublic, "ana", "analytics", "add"), codes.NotFound, "ana", netPublic, "function/analytics/add")
}

// TestReloadRotatesToken: after a reload that rotates ana's token the old
// one fails and the new one works, while a stream opened with the old
// one goes on answering. A stream's principal removed from the policy
// has its next batches refused.
func TestReloadRotatesToken(t *testing.T) {
	r := startReloading(t)
	stream, err := r.invoker(netPublic).InvokeStream(r.asToken("ana"))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	batch := func(seq uint64) *udfhostv1.InvokeResponse {
		t.Helper()
		req := addRequest(t, "analytics", "add")
		req.Seq = seq
		if err := stream.Send(req); err != nil {
			t.Fatalf("send batch %d: %v", seq, err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("batch %d: stream ended: %v", seq, err)
		}
		return resp
	}
	if resp := batch(1); resp.Error != nil {
		t.Fatalf("batch 1 before the reload: %v", resp.Error)
	}

	f := defaultReloadFile()
	f.principals[0] = "ana|ana-rotated|{analytics: invoker}"
	if err := r.reload(f.String()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if _, err := r.invoker(netPublic).Invoke(r.asToken("ana"), addRequest(t, "analytics", "add")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Invoke with ana's old token after the rotation: %v, want UNAUTHENTICATED", err)
	}
	// A new stream's refusal arrives with its first Recv.
	if s2, err := r.invoker(netPublic).InvokeStream(r.asToken("ana")); err == nil {
		_, err = s2.Recv()
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("new InvokeStream with ana's old token: %v, want UNAUTHENTICATED", err)
		}
	}
	if resp, err := r.invoker(netPublic).Invoke(r.asToken("ana-rotated"), addRequest(t, "analytics", "add")); err != nil || resp.Result == nil {
		t.Errorf("Invoke with ana's new token: %v", err)
	}
	if resp := batch(2); resp.Error != nil || resp.Seq != 2 || resp.Result == nil {
		t.Errorf("batch 2 on the stream opened before the rotation: %+v, want an answer", resp)
	}

	// ana is removed: the stream stays open but its batches are refused.
	f.principals = f.principals[1:]
	if err := r.reload(f.String()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	resp := batch(3)
	if resp.Error == nil || codes.Code(resp.Error.Code) != codes.Unauthenticated || !strings.Contains(resp.Error.Message, `principal "ana" is no longer in the policy`) {
		t.Errorf("batch 3 after ana was removed: %+v, want UNAUTHENTICATED naming ana", resp)
	}
	if !r.deniedRecord("ana", netPublic, "function/analytics/add") {
		t.Error("no access.denied record of ana's refused batch")
	}
}

// TestReloadRefused: a file that does not load, makes a served private
// environment public, or changes what a running server cannot, is
// refused, logged and audited, and the old policy stays.
func TestReloadRefused(t *testing.T) {
	r := startReloading(t)
	before := r.s.policy.Load()
	for _, tc := range []struct {
		name  string
		edit  func(*reloadFile)
		raw   string // instead of edit
		want  string
		place bool // the reason starts FILE:LINE:COL
	}{
		{name: "syntax", raw: "org: acme\nenvironments: [\n", want: "", place: true},
		{name: "unknown field", edit: func(f *reloadFile) { f.extra = "pools_typo: []\n" }, want: `unknown field "pools_typo"`, place: true},
		{name: "private to public", edit: func(f *reloadFile) { f.paymentsVisibility, f.linkEnvs = "public", "[treasury]" }, want: "can never be made public again", place: true},
		{name: "org", edit: func(f *reloadFile) { f.org = "other" }, want: "restart to change it"},
		{name: "listen", edit: func(f *reloadFile) { f.linkListen = "127.0.0.1:7999" }, want: "restart to change listeners"},
		{name: "new network", raw: strings.Replace(defaultReloadFile().String(), "pools:\n", "  - name: other-link\n    listen: 127.0.0.1:0\n    environments: [payments]\npools:\n", 1),
			want: `"other-link" is new`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := tc.raw
			if content == "" {
				f := defaultReloadFile()
				tc.edit(&f)
				content = f.String()
			}
			err := r.reload(content)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload: %v, want a refusal containing %q", err, tc.want)
			}
			if tc.place && !strings.HasPrefix(err.Error(), r.file+":") {
				t.Errorf("refusal %q does not start FILE:LINE:COL", err)
			} else if tc.place {
				rest := strings.TrimPrefix(err.Error(), r.file+":")
				var line, col int
				if n, _ := fmt.Sscanf(rest, "%d:%d:", &line, &col); n != 2 {
					t.Errorf("refusal %q has no LINE:COL after the file", err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("refusal is not one line: %q", err)
			}
			rec, ok := r.lastRecord(audit.TypePolicyReloadRefused)
			if !ok || rec.Reason != err.Error() || rec.Decision != audit.Deny || rec.Details["sha256"] != before.FileSHA256 {
				t.Errorf("policy.reload_refused record = %+v, want the reason %q and the old policy's sha256", rec, err)
			}
			if r.s.policy.Load() != before {
				t.Error("the refused file replaced the policy")
			}
			if err := r.invoke(netPublic, "ana", "analytics", "add"); err != nil {
				t.Errorf("the old policy no longer serves: %v", err)
			}
		})
	}
	// The record of private environments is unchanged: payments is still
	// remembered, so a restart with the public file is refused too.
	p, err := policies.Parse("p.yaml", []byte(func() string {
		f := defaultReloadFile()
		f.paymentsVisibility, f.linkEnvs = "public", "[treasury]"
		return f.String()
	}()), filepath.Dir(r.file))
	if err != nil {
		t.Fatal(err)
	}
	if err := policies.CheckServed(r.s.cfg.DataDir, p); err == nil {
		t.Error("the data dir forgot that payments was served private")
	}
}

// TestReloadWithoutFile: the embedded default has no file to re-read; a
// reload is refused and audited, and the server serves on.
func TestReloadWithoutFile(t *testing.T) {
	ls := startLive(t, nil)
	err := ls.s.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no file to re-read") {
		t.Errorf("reload of the embedded default: %v", err)
	}
}

// TestPolicySnapshot: a call keeps the policy it pinned at its start
// across a swap; a stream's next batch takes the current one, with its
// principal looked up again by name.
func TestPolicySnapshot(t *testing.T) {
	old, next := tenantPolicy(policies.Private), tenantPolicy(policies.Private)
	next.Principals = next.Principals[1:] // admin is gone
	for _, pr := range next.Principals {
		if pr.Name == "ana" {
			pr.Roles = map[string]policies.Role{"analytics": policies.RoleAuditor}
		}
	}
	s := New(Config{DataDir: t.TempDir(), Policy: old, Logger: slog.New(slog.DiscardHandler)})
	call := func(name string) context.Context {
		var pr *policies.Principal
		for _, p := range old.Principals {
			if p.Name == name {
				pr = p
			}
		}
		ctx := withPolicy(context.Background(), s.policy.Load())
		return context.WithValue(ctx, callerKey{}, caller{principal: pr, name: name, network: netPublic, action: policies.Invoke})
	}
	ana, admin := call("ana"), call("admin")
	s.policy.Store(next)
	if s.policyOf(ana) != old || s.policyOf(context.Background()) != next {
		t.Fatal("a pinned call does not keep its policy, or an unpinned one does not see the current")
	}
	bctx, err := s.streamBatchContext(ana)
	if err != nil {
		t.Fatal(err)
	}
	if c := callerOf(bctx); s.policyOf(bctx) != next || c.principal.Roles["analytics"] != policies.RoleAuditor {
		t.Errorf("next batch: policy %p (want the new one), principal %+v (want ana's new roles)", s.policyOf(bctx), c.principal)
	}
	if _, err := s.streamBatchContext(admin); err == nil || !strings.Contains(err.Error(), `principal "admin" is no longer in the policy`) {
		t.Errorf("next batch of a removed principal: %v", err)
	}
	if ctx, err := s.streamBatchContext(withPolicy(ana, next)); err != nil || ctx.Value(callerKey{}).(caller).principal.Roles["analytics"] != policies.RoleDeveloper {
		t.Errorf("a batch under the current policy changes nothing: %v", err)
	}
}

// TestCheckFixed: what a reload may not change.
func TestCheckFixed(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*policies.Policy)
		want string // "" : allowed
	}{
		{"roles, pools, environments", func(p *policies.Policy) {
			p.Principals = p.Principals[:2]
			delete(p.Pools, "treasury/default")
			p.Environments["new"] = &policies.Environment{Name: "new", Visibility: policies.Public}
			p.Networks[netPayments].Environments = []string{"payments", "treasury"}
		}, ""},
		{"org", func(p *policies.Policy) { p.Org = "other" }, `org: "acme" would become "other"`},
		{"listen", func(p *policies.Policy) { p.Networks[netPayments].Listen = "127.0.0.1:9" }, `"payments-link" would move from 127.0.0.1:0 to 127.0.0.1:9`},
		{"removed network", func(p *policies.Policy) { delete(p.Networks, netTreasury) }, `"treasury-link" is gone`},
		{"new network", func(p *policies.Policy) {
			p.Networks["x"] = &policies.Network{Name: "x", Listen: "127.0.0.1:0", Environments: []string{"payments"}}
		}, `"x" is new`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := tenantPolicy(policies.Private)
			tc.edit(next)
			err := checkFixed(tenantPolicy(policies.Private), next)
			if tc.want == "" && err != nil {
				t.Errorf("refused: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "restart to change")) {
				t.Errorf("checkFixed: %v, want %q and a restart hint", err, tc.want)
			}
		})
	}
}

// TestPolicyChanges: the reload record's summary of changes names what
// changed and never a credential.
func TestPolicyChanges(t *testing.T) {
	old, next := tenantPolicy(policies.Private), tenantPolicy(policies.Private)
	if got := policyChanges(old, next); got != "none" {
		t.Errorf("same policy: %q", got)
	}
	sum := sha256.Sum256([]byte("rotated-0123456789abcdef0123456789abcdef"))
	next.Principals[1].TokenSHA256 = sum[:] // ana
	next.Principals = next.Principals[:len(next.Principals)-1]
	delete(next.Environments, "treasury")
	next.Pools["payments/big"] = &policies.Pool{Name: "big", Env: "payments"}
	next.Connections = map[string]*policies.Connection{"payments/lookup": {
		Name: "lookup", Env: "payments", Scheme: "http", Host: "127.0.0.1", Port: 18080, Methods: []string{"GET"}, Cluster: policies.Public,
	}}
	got := policyChanges(old, next)
	if want := "environments -treasury; pools +payments/big; principals ~ana -nobody; connections +payments/lookup"; got != want {
		t.Errorf("changes = %q, want %q", got, want)
	}
	if strings.Contains(got, hex.EncodeToString(sum[:])) || strings.Contains(got, hex.EncodeToString(old.Principals[1].TokenSHA256)) {
		t.Errorf("changes %q show a token hash", got)
	}
}
