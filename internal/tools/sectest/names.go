package sectest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// hostileName is a name no API may accept, and what it is.
type hostileName struct{ label, name string }

// hostileNames are the names hostile_names tries, each made unique to the
// run and case by prefix (but the empty one) so that the audit log can be
// searched for them.
func hostileNamesFor(prefix string) []hostileName {
	return []hostileName{
		{"1 MiB name", prefix + "_" + strings.Repeat("a", 1<<20)},
		{"name starting with ../", "../" + prefix},
		{"name with a slash", prefix + "/b"},
		{"name with a NUL", prefix + "\x00b"},
		{"name with a newline", prefix + "\nb"},
		{"name with an ESC", prefix + "\x1bb"},
		{"empty name", ""},
	}
}

// maxRefusalBytes bounds the message of a refusal: one clear line, with
// the name quoted and cut, not the name itself.
const maxRefusalBytes = 4096

// hostileNamesCase binds the case's module (export, signature) under
// hostile names, and asks for upload URLs, gets and deletes functions by
// them. Every call must be refused with INVALID_ARGUMENT and a one-line
// message (or, for the 1 MiB name only, gRPC's own RESOURCE_EXHAUSTED
// "larger than max" if the server caps such messages); every
// CreateFunction refused by the server audited as a denial (a
// policy.denied or function.* record, decision deny); no function.created
// allow record may name any of them, no worker may start for the module
// they were bound to, and the
// audit log must not swallow the 1 MiB name (params.max_audit_kb). A
// function with an ordinary name on another upload of the same module
// must still be created, to show the refusals are about the names.
func hostileNamesCase(ctx context.Context, cr *caseRun) (o outcome) {
	size0, err := fileSize(cr.r.audit.path)
	if err != nil {
		return setupFailed(err)
	}
	art, err := cr.upload(ctx, "")
	if err != nil {
		return setupFailed(err)
	}
	hostilePod := cr.get("pod") // never to be started: no name bound to it is valid
	okArt, err := cr.upload(ctx, "ok")
	if err != nil {
		return setupFailed(err)
	}
	prefix := cr.name("")
	names := hostileNamesFor(prefix)
	// Wrong answers, grouped by call and problem so that the report stays
	// readable: "GetFunction: NotFound, want InvalidArgument (the 1 MiB
	// name, the empty name; e.g. ...)".
	type wrong struct{ call, problem string }
	var order []wrong
	labels := map[wrong][]string{}
	sample := map[wrong]string{}
	expect := func(call, label string, err error) bool {
		var w wrong
		var msg string
		switch {
		case err == nil:
			w = wrong{call, "accepted"}
		case asFailure(err).code != "InvalidArgument":
			f := asFailure(err)
			w, msg = wrong{call, f.code + ", want InvalidArgument"}, f.msg
		default:
			f := asFailure(err)
			why := notOneLine(f.msg)
			if why == "" {
				return true
			}
			w, msg = wrong{call, "the refusal " + why}, f.msg
		}
		if _, ok := labels[w]; !ok {
			order = append(order, w)
			sample[w] = msg
		}
		labels[w] = append(labels[w], label)
		return err != nil && asFailure(err).code == "InvalidArgument"
	}
	defer func() { // o is the named result: the groups join whatever is returned
		for _, w := range order {
			s := fmt.Sprintf("%s: %s (the %s", w.call, w.problem, strings.Join(labels[w], ", the "))
			if sample[w] != "" {
				s += fmt.Sprintf("; e.g. %.160q", sample[w])
			}
			o.fails = append(o.fails, s+")")
		}
	}()

	seq0, err := cr.r.audit.last()
	if err != nil {
		return setupFailed(err)
	}
	refused, audited := 0, 0
	var first string
	for _, n := range names {
		_, err := cr.r.api.createFunction(ctx, n.name, art.Id, cr.c.Export, cr.c.Signature, cr.c.ABI)
		if err == nil {
			name := n.name
			cr.later(func(ctx context.Context) {
				cr.r.api.fn.DeleteFunction(ctx, &udfhostv1.DeleteFunctionRequest{Name: name, Env: "default"})
			})
		}
		if tooLarge(err) {
			// A server may cap control-plane messages: gRPC itself then
			// refuses the 1 MiB request before any of the server's code
			// (so nothing to audit), which is as good as the grammar.
			refused++
			o.notes = append(o.notes, fmt.Sprintf("CreateFunction with the %s was refused by the message size limit: %.120q", n.label, asFailure(err).msg))
			continue
		}
		audited++
		if expect("CreateFunction", n.label, err) {
			refused++
			if first == "" {
				first = asFailure(err).msg
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	seq1, err := cr.r.audit.last()
	if err != nil {
		return setupFailed(err)
	}

	for _, n := range names {
		data, err := cr.module("url")
		if err != nil {
			return setupFailed(err)
		}
		if n.name != "" { // an upload's name is optional
			if _, err = cr.r.api.requestURL(ctx, n.name, data, 0); !tooLarge(err) {
				expect("CreateUploadURL", n.label, err)
			}
		}
		if _, err = cr.r.api.fn.GetFunction(ctx, &udfhostv1.GetFunctionRequest{Name: n.name, Env: "default"}); !tooLarge(err) {
			expect("GetFunction", n.label, err)
		}
		if _, err = cr.r.api.fn.DeleteFunction(ctx, &udfhostv1.DeleteFunctionRequest{Name: n.name, Env: "default"}); !tooLarge(err) {
			expect("DeleteFunction", n.label, err)
		}
	}

	// The control: an ordinary name on the same code is created.
	okName := prefix + "_ok"
	if _, _, err := cr.functionOf(ctx, okArt, "ok", cr.c.Export, cr.c.Signature, cr.c.ABI); err != nil {
		o.fails = append(o.fails, fmt.Sprintf("the control function %s, an ordinary name, was refused too: %v", okName, err))
	}

	// What the audit log says.
	time.Sleep(500 * time.Millisecond)
	recs, err := cr.r.audit.since(cr.seq)
	if err != nil {
		o.fails = append(o.fails, err.Error())
		return o
	}
	denials := 0
	var allowed []string
	for _, r := range recs {
		switch {
		case r.Seq > seq0 && r.Seq <= seq1 && (r.Type == "policy.denied" || strings.HasPrefix(r.Type, "function.")) && r.Decision == "deny":
			denials++
		case r.Type == "function.created" && r.Decision == "allow" && r.Resource != "function/default/"+okName &&
			(strings.Contains(r.Resource, prefix) || r.Resource == "function/default/"):
			allowed = append(allowed, fmt.Sprintf("%d %.80q", r.Seq, r.Resource))
		case r.Type == "worker.started" && r.Pod == hostilePod:
			o.fails = append(o.fails, fmt.Sprintf("audit record %d: a worker was started (%s) for the module bound only under hostile names: a refused name got as far as a pod", r.Seq, r.Decision))
		}
	}
	if len(allowed) > 0 {
		o.fails = append(o.fails, fmt.Sprintf("%d function.created allow records for functions with hostile names (records %s)", len(allowed), strings.Join(allowed, ", ")))
	}
	if denials < audited {
		o.fails = append(o.fails, fmt.Sprintf("%d of %d refused CreateFunction calls were audited as a denial (a policy.denied or function.* record with decision deny)", denials, audited))
	} else {
		o.notes = append(o.notes, fmt.Sprintf("%d denials audited", denials))
	}
	if size1, err := fileSize(cr.r.audit.path); err == nil {
		grew, limit := (size1-size0)>>10, int64(param(cr.c, "max_audit_kb", 64))
		o.notes = append(o.notes, fmt.Sprintf("the audit log grew by %d KiB", grew))
		if grew > limit {
			o.fails = append(o.fails, fmt.Sprintf("the audit log grew by %d KiB during the case (limit %d KiB): a hostile name was written out whole", grew, limit))
		}
	}
	if refused == len(names) {
		o.stage, o.code, o.msg = "create", "InvalidArgument", first
	} else {
		o.msg = fmt.Sprintf("%d of %d hostile names refused by CreateFunction with InvalidArgument", refused, len(names))
	}
	return o
}

// notOneLine says what is wrong with msg as a one-line refusal, or "".
func notOneLine(msg string) string {
	if len(msg) > maxRefusalBytes {
		return fmt.Sprintf("message is %d bytes long (at most %d: quote and cut the name)", len(msg), maxRefusalBytes)
	}
	for _, r := range msg {
		if unicode.IsControl(r) {
			return fmt.Sprintf("message carries the control character %q: %.200q", r, msg)
		}
	}
	return ""
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// asFailure is err as a *failure: one already, or a gRPC status.
func asFailure(err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	return grpcFailure("", err)
}

// tooLarge reports whether err is gRPC's own refusal of a message over the
// server's receive limit.
func tooLarge(err error) bool {
	if err == nil {
		return false
	}
	f := asFailure(err)
	return f.code == "ResourceExhausted" && strings.Contains(f.msg, "larger than max")
}
