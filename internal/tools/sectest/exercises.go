package sectest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"time"
)

// exercise drives one case and reports what the server did.
type exercise func(ctx context.Context, cr *caseRun) outcome

// exercises are the manifest's exercise names. Attacks that need more than
// an upload and a call live in their own files.
var exercises map[string]exercise

func init() {
	exercises = map[string]exercise{
		"commit": commitCase,
		"create": createCase,
		"invoke": invokeCase,
		"values": valuesCase,

		"url_declared_too_large": urlDeclaredTooLarge,
		"url_sha_mismatch":       urlSHAMismatch,
		"url_body_too_large":     urlBodyTooLarge,
		"url_tampered_signature": urlTamperedSignature,
		"url_tampered_size":      urlTamperedSize,
		"url_expired":            urlExpired,
		"url_reused":             urlReused,
		"anon_url_flood":         anonURLFlood,
		"upload_slowloris":       uploadSlowloris,
		"no_token":               noToken,
		"bad_token":              badToken,
		"stream_slowloris":       streamSlowloris,
		"flood":                  flood,
		"cross_tenant":           crossTenant,
		"quarantine":             quarantine,
		"start_hang":             startHang,
		"concurrent_values":      concurrentValues,
		"abandoned_runaway":      abandonedRunaway,
		"hostile_names":          hostileNamesCase,
		"anon_flood":             anonFlood,
		"unauth_big_message":     unauthBigMessage,
		"egress":                 egressCase,
		"egress_flood":           egressFlood,
		"egress_quarantine":      egressQuarantine,
	}
}

// commitCase uploads the module; the server must refuse it.
func commitCase(ctx context.Context, cr *caseRun) outcome {
	t0 := time.Now()
	art, err := cr.upload(ctx, "")
	took := time.Since(t0)
	if err != nil {
		o := refused(err)
		o.took = took
		return o
	}
	return outcome{msg: fmt.Sprintf("accepted as %s after %s", art.Id, took.Round(time.Millisecond)), took: took}
}

// createCase uploads the module (which must be accepted) and creates the
// function; the server must refuse the function.
func createCase(ctx context.Context, cr *caseRun) outcome {
	art, err := cr.upload(ctx, "")
	if err != nil {
		o := refused(err)
		o.fails = append(o.fails, "the upload was refused, so function creation was never tried")
		return o
	}
	f, took, err := cr.function(ctx, art, "")
	if err != nil {
		o := refused(err)
		o.took = took
		return o
	}
	return outcome{msg: fmt.Sprintf("function %s created after %s", f.Name, took.Round(time.Millisecond)), took: took}
}

// invokeCase creates the function and calls it on the case's rows; the
// call must fail. With After, the function must then answer a clean batch.
func invokeCase(ctx context.Context, cr *caseRun) outcome {
	f, err := cr.setup(ctx, "")
	if err != nil {
		return refused(err) // stopped earlier: the case says whether that is right
	}
	t0 := time.Now()
	vals, err := cr.invoke(ctx, f, cr.c.Rows)
	var o outcome
	if err != nil {
		o = refused(err)
		o.took = time.Since(t0)
	} else {
		o = outcome{msg: fmt.Sprintf("answered %s", short(vals))}
	}
	if a := cr.c.After; a != nil {
		got, err := cr.invoke(ctx, f, a.Rows)
		if err != nil {
			o.fails = append(o.fails, "the function did not recover: a clean batch afterwards failed: "+err.Error())
		} else if ok, why := sameValues(got, a.Want); !ok {
			o.fails = append(o.fails, "a clean batch afterwards answered wrongly: "+why)
		} else {
			o.notes = append(o.notes, "a clean batch afterwards was answered correctly")
		}
	}
	return o
}

// valuesCase creates the function and calls it; the call must succeed and
// its results pass the case's check (the guest saw nothing of the host).
func valuesCase(ctx context.Context, cr *caseRun) outcome {
	f, err := cr.setup(ctx, "")
	if err != nil {
		o := refused(err)
		o.fails = append(o.fails, "setup failed, so the call was never made")
		return o
	}
	vals, err := cr.invoke(ctx, f, cr.c.Rows)
	if err != nil {
		o := refused(err)
		o.fails = append(o.fails, "the call failed, so containment could not be checked")
		return o
	}
	name := cr.c.Check
	if name == "" {
		name = "equal"
	}
	ok, why := checks[name](ctx, cr, vals)
	if !ok {
		return outcome{msg: why}
	}
	return outcome{stage: "contained", msg: why}
}

// check decides whether a values case's results show containment.
type check func(ctx context.Context, cr *caseRun, vals []any) (bool, string)

var checks = map[string]check{
	// Per-row values, or {"error": "substring"} for rows that must be
	// per-row errors (guests.go).
	"row_errors": rowErrors,
	"equal": func(_ context.Context, cr *caseRun, vals []any) (bool, string) {
		ok, why := sameValues(vals, cr.c.Want)
		return ok, "results: " + why
	},
	// The guest's clock must be fake: nowhere near the real time.
	"fake_clock": func(_ context.Context, _ *caseRun, vals []any) (bool, string) {
		now := time.Now()
		for _, v := range vals {
			ns, ok := v.(int64)
			if !ok {
				return false, fmt.Sprintf("clock read failed: %v", v)
			}
			if d := now.Sub(time.Unix(0, ns)); math.Abs(d.Hours()) < 24 {
				return false, fmt.Sprintf("the guest read the real time (%s, %s off)", time.Unix(0, ns).UTC().Format(time.RFC3339), d.Round(time.Second))
			}
		}
		return true, fmt.Sprintf("the guest's clock reads %v ns, not the host's", vals)
	},
	// A second pod of the same code must see the same values: the source
	// is deterministic, so nothing of the host's state reaches the guest.
	"same_across_pods": func(ctx context.Context, cr *caseRun, vals []any) (bool, string) {
		f, err := cr.setup(ctx, "b")
		if err != nil {
			return false, "second pod: " + err.Error()
		}
		other, err := cr.invoke(ctx, f, cr.c.Rows)
		if err != nil {
			return false, "second pod: " + err.Error()
		}
		if fmt.Sprint(vals) != fmt.Sprint(other) {
			return false, fmt.Sprintf("two pods of the same code saw different values (%v, %v): host entropy or state reaches guests", vals, other)
		}
		return true, fmt.Sprintf("two pods saw the same values %v", short(vals))
	},
	// Guest output (params.marker) must reach neither the server's log nor
	// its audit log.
	"no_leak": func(_ context.Context, cr *caseRun, vals []any) (bool, string) {
		marker := []byte(cr.c.Params["marker"])
		files := []string{cr.r.audit.path}
		if cr.r.cfg.ServerLog != "" {
			files = append(files, cr.r.cfg.ServerLog)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				return false, err.Error()
			}
			if bytes.Contains(b, marker) {
				return false, fmt.Sprintf("guest output reached %s", p)
			}
		}
		return true, fmt.Sprintf("the guest wrote %v bytes; none reached %v", short(vals), files)
	},
}

// short prints values, cut to a readable length.
func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
