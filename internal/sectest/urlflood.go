package sectest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// anonURLFlood PUTs the case's module params.puts times to its upload URL
// with the signature forged. The upload endpoint is anonymous (the URL is
// the credential), so like a flood of bad tokens every PUT must be refused
// (403), every refusal accounted for in auth.failed records of the
// endpoint within params.wait_s (their counts sum to the PUTs), in at most
// params.max_records records, and the audit log must grow by at most
// params.max_audit_kb KiB.
func anonURLFlood(ctx context.Context, cr *caseRun) outcome {
	n := param(cr.c, "puts", 1000)
	data, up, err := cr.presigned(ctx, 0)
	if err != nil {
		return refused(err)
	}
	forged := forgeSignature(up.Url)
	if forged == up.Url {
		return outcome{code: "error", msg: "no signature parameter found in " + redact(up.Url)}
	}
	size0, err := fileSize(cr.r.audit.path)
	if err != nil {
		return setupFailed(err)
	}
	var o outcome
	statuses := map[string]int{}
	t0 := time.Now()
	for range n {
		res := put(ctx, forged, up.Headers, strings.NewReader(string(data)), int64(len(data)))
		cr.set("local", res.local)
		if res.err != nil {
			statuses[res.err.Error()]++
		} else {
			statuses["HTTP "+strconv.Itoa(res.status)]++
		}
	}
	o.took = time.Since(t0)
	if statuses["HTTP 403"] == n {
		o.stage, o.code, o.msg = "put", "HTTP 403", fmt.Sprintf("all %d forged PUTs refused: signature", n)
	} else {
		o.fails = append(o.fails, fmt.Sprintf("not every forged PUT was refused with 403: %v", statuses))
	}
	cr.commitRefused(ctx, &o, up.UploadId)

	wait := seconds(cr.c.Params["wait_s"], 15)
	var recs, sum int
	for deadline := time.Now().Add(wait); ; {
		all, err := cr.r.audit.since(cr.seq)
		if err != nil {
			o.fails = append(o.fails, err.Error())
			return o
		}
		recs, sum = 0, 0
		for _, r := range all {
			if r.Type != "auth.failed" || r.Resource != "upload-url" || !strings.Contains(r.Reason, "signature") {
				continue
			}
			recs++
			c, err := strconv.Atoi(r.Details["count"])
			if err != nil || c < 1 {
				c = 1
			}
			sum += c
		}
		if sum >= n || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	o.notes = append(o.notes, fmt.Sprintf("%d forged PUTs in %s; %d auth.failed records account for %d", n, o.took.Round(time.Millisecond), recs, sum))
	slack := param(cr.c, "slack", 20)
	switch {
	case sum < n:
		o.fails = append(o.fails, fmt.Sprintf("after %s the audit log accounts for %d of %d refused PUTs: denials were lost", wait, sum, n))
	case sum > n+slack:
		o.fails = append(o.fails, fmt.Sprintf("the audit log accounts for %d refused PUTs, %d were made: denials are counted twice", sum, n))
	}
	if maxRecs := param(cr.c, "max_records", 20); recs > maxRecs {
		o.fails = append(o.fails, fmt.Sprintf("%d auth.failed records for %d forged PUTs of one client (at most %d): repeated failures are not aggregated", recs, n, maxRecs))
	}
	if size1, err := fileSize(cr.r.audit.path); err == nil {
		grew, limit := (size1-size0)>>10, int64(param(cr.c, "max_audit_kb", 64))
		o.notes = append(o.notes, fmt.Sprintf("the audit log grew by %d KiB", grew))
		if grew > limit {
			o.fails = append(o.fails, fmt.Sprintf("the audit log grew by %d KiB for %d forged PUTs (limit %d KiB): an anonymous flood fills the disk", grew, n, limit))
		}
	}
	return o
}
