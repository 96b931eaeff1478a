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

	o.notes = append(o.notes, fmt.Sprintf("%d forged PUTs in %s", n, o.took.Round(time.Millisecond)))
	cr.checkAggregated(ctx, &o, func(r Record) bool {
		return r.Resource == "upload-url" && strings.Contains(r.Reason, "signature")
	}, n, "refused PUTs", size0, 20)
	return o
}
