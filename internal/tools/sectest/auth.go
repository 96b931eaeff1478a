package sectest

import (
	"context"
	"fmt"
	"strings"

	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// noToken calls the API without credentials.
func noToken(ctx context.Context, cr *caseRun) outcome { return cr.callAs(ctx, "") }

// badToken calls the API with a forged token of the right shape.
func badToken(ctx context.Context, cr *caseRun) outcome {
	forged := strings.Repeat("0123456789abcdef", 4)
	o := cr.callAs(ctx, forged)
	recs, err := cr.r.audit.since(cr.seq)
	if err != nil {
		o.fails = append(o.fails, err.Error())
	}
	for _, r := range recs {
		if strings.Contains(fmt.Sprint(r), forged[:16]) {
			o.fails = append(o.fails, fmt.Sprintf("audit record %d reveals the token", r.Seq))
		}
	}
	return o
}

// callAs lists artifacts with token on a connection of its own, whose
// client address the audit record must name.
func (cr *caseRun) callAs(ctx context.Context, token string) outcome {
	var la localAddrs
	conn, err := dial(cr.r.cfg.Addr, token, &la)
	if err != nil {
		return refused(err)
	}
	defer conn.Close()
	resp, err := udfhostv1.NewArtifactServiceClient(conn).ListArtifacts(ctx, &udfhostv1.ListArtifactsRequest{})
	if l := la.list(); len(l) > 0 {
		cr.set("local", l[0])
	}
	if err != nil {
		return refused(grpcFailure("auth", err))
	}
	return outcome{msg: "listed " + short(len(resp.Artifacts)) + " artifacts"}
}
