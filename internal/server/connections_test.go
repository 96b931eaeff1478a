package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/udfhost/udfhost/artifacts"
	"github.com/udfhost/udfhost/policies"
)

func TestCheckConnections(t *testing.T) {
	pol, err := policies.Parse("p.yaml", []byte(`org: acme
environments:
  - {name: pub, visibility: public}
  - {name: other, visibility: public}
connections:
  - {name: lookup, environment: pub, destination: "http://127.0.0.1:18080", methods: [GET], cluster: public}
  - {name: sink, environment: pub, destination: "http://127.0.0.1:18081", methods: [POST], cluster: public}
  - {name: theirs, environment: other, destination: "http://127.0.0.1:18082", methods: [GET], cluster: public}
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	connector := &artifacts.Artifact{ID: "art-0123456789abcdef", Kind: artifacts.KindConnector}
	udf := &artifacts.Artifact{ID: "art-0123456789abcdef", Kind: artifacts.KindUDF}
	tests := []struct {
		name string
		art  *artifacts.Artifact
		want []string
		ok   string // joined result, or "" for an error
		err  string
	}{
		{"none", udf, nil, "", ""},
		{"two in order", connector, []string{"sink", "lookup"}, "sink,lookup", ""},
		{"another environment's", connector, []string{"theirs"}, "", `environment "pub" has no connection "theirs"`},
		{"unknown", connector, []string{"nope"}, "", `environment "pub" has no connection "nope"`},
		{"twice", connector, []string{"lookup", "lookup"}, "", `connection "lookup" is named twice`},
		{"bad name", connector, []string{"a/b"}, "", "connection:"},
		{"a udf", udf, []string{"lookup"}, "", "only a connector artifact may use connections"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkConnections(pol, tc.art, "pub", tc.want)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, errInvalid) {
					t.Fatalf("err = %v, want INVALID_ARGUMENT containing %q", err, tc.err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != tc.ok {
				t.Fatalf("got %v, %v; want %q", got, err, tc.ok)
			}
		})
	}
}
