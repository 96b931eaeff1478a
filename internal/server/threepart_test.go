package server

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udfhost/udfhost/policies"
	udfhostv1 "github.com/udfhost/udfhost/proto/udfhost/v1"
)

// TestThreePartNames: a function named org.env.function, on the tenants'
// server (org acme). inv, an invoker in every environment, plays the
// task manager on payments-link reading the public analytics' function;
// tm, an invoker in payments only, has no role in analytics. Every
// answer is the one env and name given apart get: the three-part name
// goes through the same matrix and roles, and never reaches a private
// environment from the public network.
func TestThreePartNames(t *testing.T) {
	ts := startTenants(t, filepath.Join(t.TempDir(), "data"), policies.Private)
	ts.fixtures() // analytics/norm, payments/charge
	missingAnalytics := statusBytes(t, toStatus(missingEnv("analytics")))

	t.Run("resolves where the matrix and the role allow", func(t *testing.T) {
		for _, env := range []string{"", "analytics"} {
			if err := ts.invoke(netPayments, "inv", env, "acme.analytics.norm"); err != nil {
				t.Errorf("inv on payments-link invokes acme.analytics.norm (env %q): %v", env, err)
			}
		}
		f, err := ts.fns(netPayments).GetFunction(ts.as("inv"), &udfhostv1.GetFunctionRequest{Name: "acme.analytics.norm"})
		if err != nil || f.Env != "analytics" || f.Name != "norm" {
			t.Errorf("GetFunction(acme.analytics.norm) as inv on payments-link = %v, %v; want analytics/norm", f, err)
		}
		if err := ts.invoke(netPayments, "tm", "", "acme.payments.charge"); err != nil {
			t.Errorf("tm on payments-link invokes acme.payments.charge: %v", err)
		}
	})

	t.Run("no role: answered as missing", func(t *testing.T) {
		for _, name := range []string{"norm", "no_such_function"} {
			err := ts.invoke(netPayments, "tm", "", "acme.analytics."+name)
			ts.wantDenied(err, codes.NotFound, "tm", netPayments, "function/analytics/"+name)
			twoPart := ts.invoke(netPayments, "tm", "analytics", name)
			_, gerr := ts.fns(netPayments).GetFunction(ts.as("tm"), &udfhostv1.GetFunctionRequest{Name: "acme.analytics." + name})
			for what, e := range map[string]error{"Invoke": err, "two-part Invoke": twoPart, "GetFunction": gerr} {
				if !bytes.Equal(statusBytes(t, e), missingAnalytics) {
					t.Errorf("%s of analytics/%s as tm = %v, want exactly what a missing environment gets", what, name, e)
				}
			}
		}
	})

	t.Run("a private environment from the public network", func(t *testing.T) {
		for _, who := range []string{"inv", "tm", "admin"} {
			for _, env := range []string{"", "payments"} {
				err := ts.invoke(netPublic, who, env, "acme.payments.charge")
				ts.wantDenied(err, codes.PermissionDenied, who, netPublic, "function/payments/charge")
				if msg := status.Convert(err).Message(); !strings.Contains(msg, `"public"`) {
					t.Errorf("acme.payments.charge as %s from the public network: %q does not name the network", who, msg)
				}
			}
			_, err := ts.fns(netPublic).GetFunction(ts.as(who), &udfhostv1.GetFunctionRequest{Name: "acme.payments.charge"})
			ts.wantDenied(err, codes.PermissionDenied, who, netPublic, "function/payments/charge")
			_, err = ts.fns(netPublic).DeleteFunction(ts.as(who), &udfhostv1.DeleteFunctionRequest{Name: "acme.payments.charge"})
			ts.wantDenied(err, codes.PermissionDenied, who, netPublic, "function/payments/charge")
		}
		if _, err := ts.s.fns.Get("payments", "charge"); err != nil {
			t.Errorf("payments/charge is gone: %v", err)
		}
	})

	t.Run("another org: answered as missing", func(t *testing.T) {
		for _, c := range []struct{ network, who string }{{netPayments, "inv"}, {netPayments, "tm"}, {netPublic, "admin"}} {
			for _, name := range []string{"globex.analytics.norm", "globex.analytics.no_such_function", "acmex.analytics.norm"} {
				err := ts.invoke(c.network, c.who, "", name)
				ts.wantDenied(err, codes.NotFound, c.who, c.network, "function/analytics/"+strings.SplitN(name, ".", 3)[2])
				if !bytes.Equal(statusBytes(t, err), missingAnalytics) {
					t.Errorf("Invoke(%s) as %s on %s = %v, want exactly what a missing environment gets", name, c.who, c.network, err)
				}
				_, gerr := ts.fns(c.network).GetFunction(ts.as(c.who), &udfhostv1.GetFunctionRequest{Name: name})
				if !bytes.Equal(statusBytes(t, gerr), missingAnalytics) {
					t.Errorf("GetFunction(%s) as %s on %s = %v, want exactly what a missing environment gets", name, c.who, c.network, gerr)
				}
			}
		}
		_, err := ts.fns(netPublic).DeleteFunction(ts.as("admin"), &udfhostv1.DeleteFunctionRequest{Name: "globex.analytics.norm"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("DeleteFunction(globex.analytics.norm): %v, want NOT_FOUND", err)
		}
		if _, err := ts.s.fns.Get("analytics", "norm"); err != nil {
			t.Errorf("a delete in another org deleted analytics/norm: %v", err)
		}
	})

	t.Run("env and the middle part disagree", func(t *testing.T) {
		for _, env := range []string{"payments", "default"} {
			err := ts.invoke(netPayments, "inv", env, "acme.analytics.norm")
			msg := status.Convert(err).Message()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(msg, `"analytics"`) || !strings.Contains(msg, `"`+env+`"`) {
				t.Errorf("env %q with acme.analytics.norm: %v, want INVALID_ARGUMENT naming both", env, err)
			}
		}
	})

	t.Run("grammar", func(t *testing.T) {
		for _, name := range []string{"analytics.norm", "x.acme.analytics.norm", "acme..norm", "acme.Analytics.norm", "acme.analytics.9"} {
			err := ts.invoke(netPublic, "admin", "", name)
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "function name: ") {
				t.Errorf("Invoke(%q): %v, want INVALID_ARGUMENT on the function name", name, err)
			}
		}
		_, err := ts.function(netPublic, "admin", "analytics", "acme.analytics.mine", "art-0123456789abcdef")
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("CreateFunction named acme.analytics.mine: %v, want INVALID_ARGUMENT (a new function's name has no dots)", err)
		}
	})

	t.Run("stream batches", func(t *testing.T) {
		batches := []struct {
			network, who, env, fn string
			code                  codes.Code
		}{
			{netPayments, "inv", "", "acme.analytics.norm", codes.OK},
			{netPayments, "inv", "", "globex.analytics.norm", codes.NotFound},
			{netPayments, "inv", "payments", "acme.analytics.norm", codes.InvalidArgument},
			{netPayments, "inv", "analytics", "acme.analytics.norm", codes.OK},
			{netPayments, "tm", "", "acme.analytics.norm", codes.NotFound},
			{netPayments, "tm", "", "acme.payments.charge", codes.OK},
			{netPublic, "inv", "", "acme.payments.charge", codes.PermissionDenied},
			{netPublic, "inv", "", "acme.analytics.norm", codes.OK},
		}
		streams := map[[2]string]udfhostv1.InvokeService_InvokeStreamClient{}
		for i, b := range batches {
			k := [2]string{b.network, b.who}
			st, ok := streams[k]
			if !ok {
				var err error
				if st, err = ts.invoker(b.network).InvokeStream(ts.as(b.who)); err != nil {
					t.Fatal(err)
				}
				streams[k] = st
			}
			req := addRequest(t, b.env, b.fn)
			req.Seq = uint64(i + 1)
			if err := st.Send(req); err != nil {
				t.Fatal(err)
			}
			resp, err := st.Recv()
			if err != nil {
				t.Fatalf("batch %d: %v", i, err)
			}
			if b.code == codes.OK {
				if resp.Error != nil || resp.Result == nil || len(resp.Result.Values) != 8 || binary.LittleEndian.Uint64(resp.Result.Values) != 6 {
					t.Errorf("batch %s (env %q) as %s on %s: %v, want 6", b.fn, b.env, b.who, b.network, resp)
				}
				continue
			}
			if resp.Error == nil || codes.Code(resp.Error.Code) != b.code {
				t.Errorf("batch %s (env %q) as %s on %s: %v, want %s", b.fn, b.env, b.who, b.network, resp, b.code)
			}
			if b.code == codes.NotFound && resp.Error != nil && resp.Error.Message != status.Convert(toStatus(missingEnv("analytics"))).Message() {
				t.Errorf("batch %s as %s: %q, want what a missing environment gets", b.fn, b.who, resp.Error.Message)
			}
		}
		for _, st := range streams {
			st.CloseSend()
		}
	})

	t.Run("delete by three-part name", func(t *testing.T) {
		if _, err := ts.fns(netPayments).DeleteFunction(ts.as("admin"), &udfhostv1.DeleteFunctionRequest{Name: "acme.analytics.norm"}); err != nil {
			t.Fatalf("DeleteFunction(acme.analytics.norm) as admin on payments-link: %v", err)
		}
		if _, err := ts.s.fns.Get("analytics", "norm"); err == nil {
			t.Error("analytics/norm is still there")
		}
	})
}
