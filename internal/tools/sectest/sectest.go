// Package sectest is udfhost's hostile-artifact suite: it uploads a corpus
// of hostile modules through the public API of a running server, exercises
// each, and reports per case whether the server stopped it where it should,
// whether the audit log recorded it, and whether a well-behaved canary
// function on another pod identity kept answering throughout.
//
// The corpus is a directory holding the built modules and a manifest
// (test/hostile in the repository, built into bin/hostile by make). Each
// manifest case names its artifact, an exercise (how it is driven) and the
// expectation: the stage and error that must stop it, and the audit record
// that must appear after it started.
package sectest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// Config says which server to test and with which corpus.
type Config struct {
	Addr    string // gRPC address of the server
	Token   string // admin bearer token
	DataDir string // the server's data directory: its audit log is read from here
	Corpus  string // directory with manifest.json and the built modules
	// Canary is the module of the well-behaved function called throughout
	// (export add, (BIGINT, BIGINT) -> BIGINT, direct ABI).
	Canary string
	// ServerPID is the server's process, for memory checks; 0 finds the
	// process listening on Addr, if it is on this machine.
	ServerPID int
	// ServerLog, if set, is the server's log file: guest output must never
	// reach it.
	ServerLog string
	Only      *regexp.Regexp // run only the cases whose name matches
	Parallel  int            // cases run at once, default 4
	Out       io.Writer      // one JSON line per case, then the summary
	// Policy is the policy file the server runs, written by WritePolicy:
	// the egress cases need it (and fail without it).
	Policy string
}

// Result is the verdict on one case, printed as one JSON line.
type Result struct {
	Case      string  `json:"case"`
	Behaviour string  `json:"behaviour"`
	Stopped   bool    `json:"stopped"`
	Audited   bool    `json:"audited"`
	CanaryOK  bool    `json:"canary_ok"`
	Stage     string  `json:"stage,omitempty"` // where the server stopped it
	Code      string  `json:"code,omitempty"`
	Seconds   float64 `json:"seconds"`
	Detail    string  `json:"detail"`
}

// OK reports whether the case passed.
func (r Result) OK() bool { return r.Stopped && r.Audited && r.CanaryOK }

// Summary is the last JSON line.
type Summary struct {
	Summary bool     `json:"summary"`
	Cases   int      `json:"cases"`
	Passed  int      `json:"passed"`
	Failed  []string `json:"failed"`
	Canary  string   `json:"canary"` // calls and failures over the whole run
	Seconds float64  `json:"seconds"`
}

// ErrFailed is returned by Run when a case failed.
var ErrFailed = errors.New("security test failed")

// Run runs the suite and writes the results to cfg.Out. It returns the
// summary and ErrFailed if any case was not stopped, not audited or the
// canary failed; other errors mean the suite could not run.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	start := time.Now()
	if cfg.Parallel < 1 {
		cfg.Parallel = 4
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	m, err := LoadManifest(cfg.Corpus)
	if err != nil {
		return Summary{}, err
	}
	r, err := newRunner(ctx, cfg)
	if err != nil {
		return Summary{}, err
	}
	defer r.close()

	var parallel, alone []*Case
	for i := range m.Cases {
		c := &m.Cases[i]
		switch {
		case cfg.Only != nil && !cfg.Only.MatchString(c.Name):
		case c.Alone:
			alone = append(alone, c)
		default:
			parallel = append(parallel, c)
		}
	}
	var results []Result
	var mu sync.Mutex
	report := func(res Result) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, res)
		b, _ := json.Marshal(res)
		fmt.Fprintf(cfg.Out, "%s\n", b)
	}
	cases := make(chan *Case)
	var wg sync.WaitGroup
	for range cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range cases {
				report(r.runCase(ctx, c))
			}
		}()
	}
	for _, c := range parallel {
		cases <- c
	}
	close(cases)
	wg.Wait()
	for _, c := range alone {
		report(r.runCase(ctx, c))
	}

	sum := Summary{Summary: true, Cases: len(results), Failed: []string{}}
	for _, res := range results {
		if res.OK() {
			sum.Passed++
		} else {
			sum.Failed = append(sum.Failed, res.Case)
		}
	}
	sort.Strings(sum.Failed)
	sum.Canary = r.canary.stop()
	r.cleanup(ctx)
	sum.Seconds = time.Since(start).Seconds()
	b, _ := json.Marshal(sum)
	fmt.Fprintf(cfg.Out, "%s\n", b)
	if len(sum.Failed) > 0 {
		return sum, ErrFailed
	}
	return sum, nil
}

// runner is one run of the suite against one server.
type runner struct {
	cfg    Config
	id     string // run id: names and module bytes are unique per run
	conn   *grpc.ClientConn
	api    api
	audit  *auditLog
	canary *canary
	eg     *egressSetup // nil without Config.Policy
	mu     sync.Mutex
	undo   []func(context.Context) // what the run leaves to clean up at the end
}

func newRunner(ctx context.Context, cfg Config) (*runner, error) {
	id := make([]byte, 3)
	rand.Read(id)
	r := &runner{cfg: cfg, id: hex.EncodeToString(id)}
	al, err := openAudit(filepath.Join(cfg.DataDir, "audit", "audit.log"))
	if err != nil {
		return nil, fmt.Errorf("%w (point --data at the server's data directory)", err)
	}
	r.audit = al
	if r.conn, err = dial(cfg.Addr, cfg.Token, nil); err != nil {
		return nil, err
	}
	r.api = newAPI(r.conn)
	if cfg.Policy != "" {
		if r.eg, err = startEgress(cfg.Policy, cfg.Token); err != nil {
			r.conn.Close()
			return nil, err
		}
	}
	if r.canary, err = startCanary(ctx, r); err != nil {
		r.close()
		return nil, fmt.Errorf("canary: %w", err)
	}
	return r, nil
}

func (r *runner) close() {
	r.conn.Close()
	if r.eg != nil {
		r.eg.close()
	}
}

// later registers fn to run when the suite ends.
func (r *runner) later(fn func(context.Context)) {
	r.mu.Lock()
	r.undo = append(r.undo, fn)
	r.mu.Unlock()
}

// cleanup deletes what the run left on the server, newest first.
func (r *runner) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	r.mu.Lock()
	undo := r.undo
	r.undo = nil
	r.mu.Unlock()
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i](ctx)
	}
}

// runCase runs c and judges it.
func (r *runner) runCase(ctx context.Context, c *Case) Result {
	start := time.Now()
	res := Result{Case: c.Name, Behaviour: c.Behaviour}
	seq, err := r.audit.last()
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	cr := &caseRun{r: r, c: c, vars: map[string]string{}, start: start, seq: seq}
	o := exercises[c.Exercise](ctx, cr)
	res.Stage, res.Code = o.stage, o.code
	var detail []string
	res.Stopped, detail = judge(c.Expect, o)
	var ad string
	res.Audited, ad = r.checkAudit(ctx, c, cr.vars, seq)
	detail = append(detail, ad)
	var cd string
	res.CanaryOK, cd = r.canary.check(ctx, start)
	if cd != "" {
		detail = append(detail, cd)
	}
	cr.cleanup(ctx)
	res.Seconds = float64(time.Since(start).Milliseconds()) / 1000
	res.Detail = strings.Join(detail, "; ")
	return res
}

// judge compares what happened with what must happen.
func judge(e Expect, o outcome) (bool, []string) {
	var why []string
	switch {
	case o.stage == "" || !e.Stage.equal(o.stage):
		where := "nowhere"
		if o.stage != "" {
			where = "at " + o.stage
		}
		why = append(why, fmt.Sprintf("NOT STOPPED at %s (stopped %s)", strings.Join(e.Stage, "|"), where))
	case !e.Code.equal(o.code):
		why = append(why, fmt.Sprintf("NOT STOPPED as expected: code %s, want %s", o.code, strings.Join(e.Code, "|")))
	case !e.Message.within(o.msg):
		why = append(why, fmt.Sprintf("NOT STOPPED as expected: message does not contain %q", strings.Join(e.Message, "|")))
	case e.WithinMS > 0 && o.took > time.Duration(e.WithinMS)*time.Millisecond:
		why = append(why, fmt.Sprintf("NOT STOPPED in time: took %s, limit %dms", o.took.Round(time.Millisecond), e.WithinMS))
	}
	for _, f := range o.fails {
		why = append(why, "NOT STOPPED: "+f)
	}
	ok := len(why) == 0
	desc := o.describe()
	if ok {
		why = append(why, "stopped "+desc)
	} else {
		why = append(why, "observed "+desc)
	}
	return ok, append(why, o.notes...)
}

// checkAudit waits briefly for the case's audit record.
func (r *runner) checkAudit(ctx context.Context, c *Case, vars map[string]string, seq uint64) (bool, string) {
	if c.Audit == nil {
		return true, "no audit expected: " + c.NoAudit
	}
	m, err := c.Audit.Resolve(vars)
	if err != nil {
		return false, "NOT AUDITED: " + err.Error()
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		recs, err := r.audit.since(seq)
		if err != nil {
			return false, "NOT AUDITED: " + err.Error()
		}
		for _, rec := range recs {
			if m.Match(rec) {
				return true, fmt.Sprintf("audited as record %d (%s)", rec.Seq, rec.Type)
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, "NOT AUDITED: no record with " + m.String() + nearMisses(recs, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nearMisses lists records of the wanted type, to show what did appear.
func nearMisses(recs []Record, m AuditMatch) string {
	var out []string
	for _, rec := range recs {
		if m.typeMatch(rec.Type) && (m.Resource == "" || rec.Resource == m.Resource || rec.Pod == m.Pod) {
			out = append(out, fmt.Sprintf("%d %s %s %q", rec.Seq, rec.Type, rec.Resource, rec.Reason))
		}
	}
	if len(out) == 0 {
		return ""
	}
	if len(out) > 3 {
		out = out[:3]
	}
	return " (near misses: " + strings.Join(out, "; ") + ")"
}
