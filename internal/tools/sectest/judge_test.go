package sectest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	deadline := Expect{Stage: OneOf{"invoke"}, Code: OneOf{"DeadlineExceeded"}, Message: OneOf{"deadline"}, WithinMS: 3000}
	tests := []struct {
		name    string
		e       Expect
		o       outcome
		stopped bool
		detail  string
	}{
		{"as expected", deadline, outcome{stage: "invoke", code: "DeadlineExceeded", msg: "batch exceeded its deadline of 2s", took: 2 * time.Second}, true, "stopped at invoke"},
		{"not stopped", deadline, outcome{msg: "answered [1]"}, false, "stopped nowhere"},
		{"stopped elsewhere", deadline, outcome{stage: "create", code: "DeadlineExceeded", msg: "deadline"}, false, "stopped at create"},
		{"other code", deadline, outcome{stage: "invoke", code: "Aborted", msg: "deadline"}, false, "code Aborted"},
		{"other message", deadline, outcome{stage: "invoke", code: "DeadlineExceeded", msg: "cancelled"}, false, "does not contain"},
		{"too slow", deadline, outcome{stage: "invoke", code: "DeadlineExceeded", msg: "deadline", took: 4 * time.Second}, false, "took 4s"},
		{"exercise found a failure", deadline, outcome{stage: "invoke", code: "DeadlineExceeded", msg: "deadline", fails: []string{"the function did not recover"}}, false, "did not recover"},
		{"one of stages and codes", Expect{Stage: OneOf{"create", "invoke"}, Code: OneOf{"InvalidArgument", "Aborted"}},
			outcome{stage: "create", code: "InvalidArgument"}, true, "stopped at create"},
		{"contained", Expect{Stage: OneOf{"contained"}}, outcome{stage: "contained", msg: "got [0]"}, true, "got [0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stopped, detail := judge(tc.e, tc.o)
			if stopped != tc.stopped || !strings.Contains(strings.Join(detail, "; "), tc.detail) {
				t.Errorf("judge = %v, %q; want %v and a detail containing %q", stopped, detail, tc.stopped, tc.detail)
			}
		})
	}
}

func TestSameValues(t *testing.T) {
	tests := []struct {
		got  []any
		want string
		ok   bool
	}{
		{[]any{int64(2), int64(4)}, `[2, 4]`, true},
		{[]any{int64(9223372036854775807)}, `[9223372036854775807]`, true}, // no float64 rounding
		{[]any{int64(9223372036854775806)}, `[9223372036854775807]`, false},
		{[]any{nil, "eA=="}, `[null, "eA=="]`, true},
		{[]any{int64(1)}, `[1, 2]`, false},
	}
	for _, tc := range tests {
		var want []json.RawMessage
		if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
			t.Fatal(err)
		}
		if ok, why := sameValues(tc.got, want); ok != tc.ok {
			t.Errorf("sameValues(%v, %s) = %v (%s), want %v", tc.got, tc.want, ok, why, tc.ok)
		}
	}
}

func TestOneOfJSON(t *testing.T) {
	var e Expect
	if err := json.Unmarshal([]byte(`{"stage":"put","code":["HTTP 403","HTTP 409"]}`), &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Stage) != 1 || !e.Code.equal("HTTP 409") || e.Code.equal("HTTP 200") || !e.Message.within("anything") {
		t.Errorf("decoded %+v", e)
	}
	if err := json.Unmarshal([]byte(`{"stage":3}`), &e); err == nil {
		t.Error("a number was accepted as a stage")
	}
}
