package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// head is the start of most test files: one public and one private
// environment (lines 1-6).
const head = `org: acme
environments:
  - name: pub
    visibility: public
  - name: priv
    visibility: private
`

// tok32 is a token just long enough.
const tok32 = "0123456789abcdef0123456789abcdef"

type tokenFile struct {
	content string
	mode    os.FileMode
}

// TestParseErrors: every problem a file can have is one line naming the
// file, the line and column of the node it is about, the field and the
// problem.
func TestParseErrors(t *testing.T) {
	principal := func(cred string) string {
		return head + "principals:\n  - name: x\n    " + cred + "\n    roles: {pub: admin}\n"
	}
	tests := []struct {
		name   string
		yaml   string
		tokens map[string]tokenFile
		want   string
	}{
		// Syntax, and what the parser itself refuses.
		{"syntax", "org: [\n", nil, `p.yaml:1:6: sequence end token ']' not found`},
		{"duplicate key", "org: acme\norg: b\n", nil, `p.yaml:2:1: mapping key "org" already defined at [1:1]`},
		{"empty", "", nil, "p.yaml:1:1: the policy file is empty; it needs at least org and environments"},
		{"comments only", "# nothing\n", nil, "p.yaml:1:1: the policy file is empty; it needs at least org and environments"},
		{"two documents", head + "---\norg: b\n", nil, "p.yaml:8:1: a policy file holds one YAML document; this is a second"},
		{"not a mapping", "- a\n", nil, "p.yaml:1:1: a policy file is a mapping of org, environments, networks, pools, principals, connections; got a list"},
		{"a scalar", "acme\n", nil, `p.yaml:1:1: a policy file is a mapping of org, environments, networks, pools, principals, connections; got "acme"`},
		{"one unknown key", "colour: red\n", nil, `p.yaml:1:1: colour: unknown field "colour"; known fields: org, environments, networks, pools, principals, connections`},
		{"empty environments before a network naming one", "org: acme\nenvironments: []\nnetworks:\n  - {name: l, listen: \"127.0.0.1:1\", environments: [a]}\n", nil,
			"p.yaml:2:15: environments: required: at least one"},

		// Unknown fields, at every level.
		{"unknown top-level field", head + "colour: red\n", nil,
			`p.yaml:7:1: colour: unknown field "colour"; known fields: org, environments, networks, pools, principals, connections`},
		{"unknown environment field", "org: acme\nenvironments:\n  - name: a\n    visibility: public\n    colour: red\n", nil,
			`p.yaml:5:5: environments[0].colour: unknown field "colour"; known fields: name, visibility`},
		{"unknown network field", head + "networks:\n  - {name: l, listen: \"127.0.0.1:1\", environments: [priv], tls: on}\n", nil,
			`p.yaml:8:60: networks[0].tls: unknown field "tls"; known fields: name, listen, environments, client_ca`},
		{"unknown pool field (a typo)", head + "pools:\n  - name: p\n    environment: pub\n    memroy_pages: 1\n", nil,
			`p.yaml:10:5: pools[0].memroy_pages: unknown field "memroy_pages"; known fields: name, environment, interrupt, memory_pages, batch_deadline, instances_per_worker, queue_per_worker, max_batch_rows, max_batch_bytes, max_artifact_bytes, quarantine_after, quarantine_window, max_pods, egress_timeout, egress_max_request_bytes, egress_max_response_bytes, egress_requests_per_pod`},
		{"unknown principal field", principal("token: x"), nil,
			`p.yaml:9:5: principals[0].token: unknown field "token"; known fields: name, token_file, token_sha256, spiffe_id, roles`},
		{"unknown field, not a word", head + "\"a\\nb\": 1\n", nil,
			`p.yaml:7:1: "a\nb": unknown field "a\nb"; known fields: org, environments, networks, pools, principals, connections`},
		{"a long value is cut short", "org: " + strings.Repeat("x", 100) + "\nenvironments: []\n", nil,
			`p.yaml:1:6: org: must match ^[a-z0-9][a-z0-9-]{0,62}$, got "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"… (100 bytes)`},
		{"merge key", head + "pools:\n  - name: p\n    environment: pub\n    <<: {memory_pages: 1}\n", nil,
			"p.yaml:10:5: pools[0]: merge keys (<<) are not supported; write the fields out"},

		// Types.
		{"org a list", "org: [a]\nenvironments: []\n", nil, `p.yaml:1:6: org: want a string, got a list`},
		{"environments a mapping", "org: acme\nenvironments: {a: b}\n", nil, `p.yaml:2:15: environments: want a list, got a mapping`},
		{"null visibility", "org: acme\nenvironments:\n  - name: a\n    visibility:\n", nil,
			`p.yaml:4:17: environments[0].visibility: want a string, got nothing (null)`},
		{"limit not an integer", head + "pools:\n  - {name: p, environment: pub, memory_pages: lots}\n", nil,
			`p.yaml:8:47: pools[0].memory_pages: want an integer, got "lots"`},

		// Required fields.
		{"no org", "environments: []\n", nil, `p.yaml:1:1: org: required; it must match ^[a-z0-9][a-z0-9-]{0,62}$`},
		{"no environments", "org: acme\n", nil, "p.yaml:1:1: environments: required: at least one"},
		{"empty environments", "org: acme\nenvironments: []\n", nil, "p.yaml:2:15: environments: required: at least one"},
		{"environment without name", "org: acme\nenvironments:\n  - visibility: public\n", nil, "p.yaml:3:5: environments[0].name: required"},
		{"environment without visibility", "org: acme\nenvironments:\n  - name: a\n", nil,
			"p.yaml:3:5: environments[0].visibility: required: public or private (private is irreversible)"},
		{"bad visibility", "org: acme\nenvironments:\n  - name: a\n    visibility: secret\n", nil,
			`p.yaml:4:17: environments[0].visibility: want public or private, got "secret"`},

		// Names, by the grammars of internal/names.
		{"bad org", "org: Acme\nenvironments: []\n", nil, `p.yaml:1:6: org: must match ^[a-z0-9][a-z0-9-]{0,62}$, got "Acme"`},
		{"org with a dot", "org: acme.corp\nenvironments: []\n", nil, `p.yaml:1:6: org: must match ^[a-z0-9][a-z0-9-]{0,62}$, got "acme.corp"`},
		{"bad environment name", "org: acme\nenvironments:\n  - {name: Pay_ments, visibility: public}\n", nil,
			`p.yaml:3:12: environments[0].name: must match ^[a-z0-9][a-z0-9-]{0,62}$, got "Pay_ments"`},
		{"bad pool name", head + "pools:\n  - {name: -p, environment: pub}\n", nil,
			`p.yaml:8:12: pools[0].name: must match ^[a-z0-9][a-z0-9-]{0,62}$, got "-p"`},
		{"bad network name", head + "networks:\n  - {name: \"l l\", listen: \"127.0.0.1:1\", environments: [priv]}\n", nil,
			`p.yaml:8:12: networks[0].name: must match ^[a-z0-9][a-z0-9-]{0,62}$, got "l l"`},
		{"bad principal name", head + "principals:\n  - {name: Ops, spiffe_id: \"spiffe://a/b\", roles: {pub: admin}}\n", nil,
			`p.yaml:8:12: principals[0].name: must match ^[a-z0-9][a-z0-9-]{0,62}$, got "Ops"`},
		{"reserved principal name", head + "principals:\n  - {name: udfhost, spiffe_id: \"spiffe://a/b\", roles: {pub: admin}}\n", nil,
			`p.yaml:8:12: principals[0].name: "udfhost" is the server's own name in the audit log; choose another`},

		// Duplicate names.
		{"duplicate environment", head + "  - name: pub\n    visibility: private\n", nil, `p.yaml:7:11: environments[2].name: environment "pub" is listed twice`},
		{"duplicate network", head + "networks:\n  - {name: l, listen: \"127.0.0.1:1\", environments: [priv]}\n  - {name: l, listen: \"127.0.0.1:2\", environments: [priv]}\n", nil,
			`p.yaml:9:12: networks[1].name: network "l" is listed twice`},
		{"public network twice", head + "networks:\n  - name: public\n  - name: public\n", nil, `p.yaml:9:11: networks[1].name: network "public" is listed twice`},
		{"duplicate pool in an environment", head + "pools:\n  - {name: p, environment: pub}\n  - {name: p, environment: pub}\n", nil,
			`p.yaml:9:12: pools[1].name: pool "p" is listed twice in environment "pub"`},
		{"duplicate principal", head + "principals:\n  - {name: x, spiffe_id: \"spiffe://a/b\", roles: {pub: admin}}\n  - {name: x, spiffe_id: \"spiffe://a/c\", roles: {pub: admin}}\n", nil,
			`p.yaml:9:12: principals[1].name: principal "x" is listed twice`},
		{"duplicate SPIFFE ID", head + "principals:\n  - {name: x, spiffe_id: \"spiffe://a/b\", roles: {pub: admin}}\n  - {name: y, spiffe_id: \"spiffe://a/b\", roles: {pub: admin}}\n", nil,
			`p.yaml:9:26: principals[1].spiffe_id: principal "x" has the same SPIFFE ID`},
		{"duplicate token, by file and by hash", head + "principals:\n  - {name: x, token_file: t, roles: {pub: admin}}\n" +
			"  - {name: y, token_sha256: 3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9, roles: {pub: admin}}\n",
			map[string]tokenFile{"t": {tok32 + "\n", 0o600}}, `p.yaml:9:29: principals[1].token_sha256: principal "x" has the same token`},
		{"duplicate token", head + "principals:\n  - {name: x, token_file: t, roles: {pub: admin}}\n  - {name: y, token_file: u, roles: {pub: admin}}\n",
			map[string]tokenFile{"t": {tok32, 0o600}, "u": {tok32 + "\n", 0o600}}, `p.yaml:9:27: principals[1].token_file: principal "x" has the same token`},
		{"duplicate role key", head + "principals:\n  - {name: x, spiffe_id: \"spiffe://a/b\", roles: {pub: admin, pub: auditor}}\n", nil,
			`p.yaml:8:62: mapping key "pub" already defined at [8:50]`},

		// References to environments.
		{"unknown environment in roles", head + "principals:\n  - name: x\n    spiffe_id: spiffe://a/b\n    roles: {pub: admin, billing: admin}\n", nil,
			`p.yaml:10:25: principals[0].roles.billing: no environment "billing" in this file ("*" is every environment)`},
		{"unknown role", head + "principals:\n  - name: x\n    spiffe_id: spiffe://a/b\n    roles: {pub: owner}\n", nil,
			`p.yaml:10:18: principals[0].roles.pub: unknown role "owner"; want admin, developer, invoker or auditor`},
		{"no roles", head + "principals:\n  - name: x\n    spiffe_id: spiffe://a/b\n", nil,
			`p.yaml:8:5: principals[0].roles: required: {environment or "*": role}, e.g. {"*": auditor}`},
		{"empty roles", head + "principals:\n  - name: x\n    spiffe_id: spiffe://a/b\n    roles: {}\n", nil,
			`p.yaml:10:12: principals[0].roles: a principal needs a role in at least one environment`},
		{"pool in an unknown environment", head + "pools:\n  - name: p\n    environment: billing\n", nil,
			`p.yaml:9:18: pools[0].environment: no environment "billing" in this file`},
		{"pool without environment", head + "pools:\n  - name: p\n", nil,
			`p.yaml:8:5: pools[0].environment: required: a pool belongs to exactly one environment`},
		{"network for an unknown environment", head + "networks:\n  - name: l\n    listen: 127.0.0.1:1\n    environments: [priv, billing]\n", nil,
			`p.yaml:10:26: networks[0].environments[1]: no environment "billing" in this file`},
		{"private network for a public environment", head + "networks:\n  - name: l\n    listen: 127.0.0.1:1\n    environments: [pub]\n", nil,
			`p.yaml:10:20: networks[0].environments[0]: environment "pub" is public; a private network serves only private environments (the public network reaches public ones)`},
		{"environment twice on a network", head + "networks:\n  - name: l\n    listen: 127.0.0.1:1\n    environments: [priv, priv]\n", nil,
			`p.yaml:10:26: networks[0].environments[1]: environment "priv" is listed twice`},

		// Networks.
		{"two networks on one address", head + "networks:\n  - {name: l, listen: \"127.0.0.1:7445\", environments: [priv]}\n  - {name: m, listen: \"127.0.0.1:7445\", environments: [priv]}\n", nil,
			`p.yaml:9:23: networks[1].listen: address 127.0.0.1:7445 is already network "l"'s (127.0.0.1:7445)`},
		{"a network on every address and one on loopback", head + "networks:\n  - {name: l, listen: \"0.0.0.0:7445\", environments: [priv]}\n  - {name: m, listen: \"127.0.0.1:7445\", environments: [priv]}\n", nil,
			`p.yaml:9:23: networks[1].listen: address 127.0.0.1:7445 is already network "l"'s (0.0.0.0:7445)`},
		{"two networks on any free port", head + "networks:\n  - {name: l, listen: \"127.0.0.1:0\", environments: [priv]}\n  - {name: m, listen: \"127.0.0.1:0\", environments: [priv]}\n", nil, ""},
		{"two networks on one port of two hosts", head + "networks:\n  - {name: l, listen: \"127.0.0.1:7445\", environments: [priv]}\n  - {name: m, listen: \"127.0.0.2:7445\", environments: [priv]}\n", nil, ""},
		{"private network without listen", head + "networks:\n  - name: l\n    environments: [priv]\n", nil,
			`p.yaml:8:5: networks[0].listen: required: the host:port a private network is served on`},
		{"private network without environments", head + "networks:\n  - name: l\n    listen: 127.0.0.1:1\n", nil,
			`p.yaml:8:5: networks[0].environments: required: the private environments this network serves`},
		{"private network with no environments", head + "networks:\n  - name: l\n    listen: 127.0.0.1:1\n    environments: []\n", nil,
			`p.yaml:10:19: networks[0].environments: a private network serves at least one private environment`},
		{"bad listen", head + "networks:\n  - name: l\n    listen: localhost\n    environments: [priv]\n", nil,
			`p.yaml:9:13: networks[0].listen: want host:port, got "localhost"`},
		{"bad port", head + "networks:\n  - name: l\n    listen: localhost:https\n    environments: [priv]\n", nil,
			`p.yaml:9:13: networks[0].listen: port "https" is not a number in 0..65535`},
		{"public network with listen", head + "networks:\n  - name: public\n    listen: 127.0.0.1:1\n", nil,
			`p.yaml:9:5: networks[0].listen: the public network is served on --listen and reaches every environment the matrix allows; it takes no listen`},
		{"public network with environments", head + "networks:\n  - name: public\n    environments: [pub]\n", nil,
			`p.yaml:9:5: networks[0].environments: the public network is served on --listen and reaches every environment the matrix allows; it takes no environments`},
		{"client_ca on the public network", head + "networks:\n  - name: public\n    client_ca: ca.pem\n", nil,
			`p.yaml:9:5: networks[0].client_ca: the public network is served on --listen and reaches every environment the matrix allows; it takes no client_ca`},
		{"client_ca missing", head + "networks:\n  - {name: l, listen: \"127.0.0.1:1\", environments: [priv], client_ca: nope.pem}\n", nil,
			`p.yaml:8:71: networks[0].client_ca: client CA: open DIR/nope.pem: no such file or directory`},
		{"client_ca not PEM", head + "networks:\n  - {name: l, listen: \"127.0.0.1:1\", environments: [priv], client_ca: ca.pem}\n", map[string]tokenFile{"ca.pem": {"not PEM", 0o644}},
			`p.yaml:8:71: networks[0].client_ca: client CA DIR/ca.pem holds no PEM certificate`},

		// Limits out of range.
		{"memory_pages too large", head + "pools:\n  - name: p\n    environment: pub\n    memory_pages: 65537\n", nil,
			`p.yaml:10:19: pools[0].memory_pages: 65537 is out of range 1..65536 (64 KiB pages)`},
		{"memory_pages zero", head + "pools:\n  - name: p\n    environment: pub\n    memory_pages: 0\n", nil,
			`p.yaml:10:19: pools[0].memory_pages: 0 is out of range 1..65536 (64 KiB pages)`},
		{"instances_per_worker", head + "pools:\n  - {name: p, environment: pub, instances_per_worker: 65}\n", nil,
			`p.yaml:8:55: pools[0].instances_per_worker: 65 is out of range 1..64 (batches)`},
		{"queue_per_worker negative", head + "pools:\n  - {name: p, environment: pub, queue_per_worker: -1}\n", nil,
			`p.yaml:8:51: pools[0].queue_per_worker: -1 is out of range 0..4096 (batches)`},
		{"max_batch_rows", head + "pools:\n  - {name: p, environment: pub, max_batch_rows: 16777217}\n", nil,
			`p.yaml:8:49: pools[0].max_batch_rows: 16777217 is out of range 1..16777216 (rows)`},
		{"max_batch_bytes past a message", head + "pools:\n  - {name: p, environment: pub, max_batch_bytes: 83886080}\n", nil,
			`p.yaml:8:50: pools[0].max_batch_bytes: 83886080 is out of range 1024..67108864 (bytes)`},
		{"max_artifact_bytes", head + "pools:\n  - {name: p, environment: pub, max_artifact_bytes: 1}\n", nil,
			`p.yaml:8:53: pools[0].max_artifact_bytes: 1 is out of range 1024..1073741824 (bytes)`},
		{"quarantine_after", head + "pools:\n  - {name: p, environment: pub, quarantine_after: 1001}\n", nil,
			`p.yaml:8:51: pools[0].quarantine_after: 1001 is out of range 0..1000 (violations; 0 disables quarantine)`},
		{"max_pods", head + "pools:\n  - {name: p, environment: pub, max_pods: 5000}\n", nil,
			`p.yaml:8:43: pools[0].max_pods: 5000 is out of range 0..4096 (pods; 0 derives the cap from the host's memory)`},
		{"integer overflow", head + "pools:\n  - {name: p, environment: pub, max_pods: 18446744073709551615}\n", nil,
			`p.yaml:8:43: pools[0].max_pods: 18446744073709551615 is not a 64-bit integer`},
		{"batch_deadline too long", head + "pools:\n  - name: p\n    environment: pub\n    batch_deadline: 1h\n", nil,
			`p.yaml:10:21: pools[0].batch_deadline: 1h0m0s is out of range 1ms..10m0s`},
		{"batch_deadline zero", head + "pools:\n  - name: p\n    environment: pub\n    batch_deadline: 0s\n", nil,
			`p.yaml:10:21: pools[0].batch_deadline: 0s is out of range 1ms..10m0s`},
		{"batch_deadline without a unit", head + "pools:\n  - name: p\n    environment: pub\n    batch_deadline: 5\n", nil,
			`p.yaml:10:21: pools[0].batch_deadline: "5" is not a duration; write e.g. 500ms, 2s or 10m`},
		{"quarantine_window negative", head + "pools:\n  - {name: p, environment: pub, quarantine_window: -1m}\n", nil,
			`p.yaml:8:52: pools[0].quarantine_window: -1m0s is out of range 0s..720h0m0s`},
		{"interrupt", head + "pools:\n  - {name: p, environment: pub, interrupt: signal}\n", nil,
			`p.yaml:8:44: pools[0].interrupt: want process or wasm, got "signal"`},

		// Credentials.
		{"no credential", principal("# none"), nil,
			`p.yaml:8:5: principals[0]: principal "x" needs exactly one of token_file, token_sha256, spiffe_id`},
		{"two credentials", head + "principals:\n  - name: x\n    spiffe_id: spiffe://a/b\n    token_file: t\n    roles: {pub: admin}\n",
			map[string]tokenFile{"t": {tok32, 0o600}},
			`p.yaml:10:5: principals[0].token_file: a principal has exactly one of token_file, token_sha256, spiffe_id; this one already has spiffe_id`},
		{"token_sha256 short", principal("token_sha256: abcd"), nil,
			`p.yaml:9:19: principals[0].token_sha256: want the 64 hex digits of a sha256, got "abcd"`},
		{"token_sha256 not hex", principal("token_sha256: " + strings.Repeat("g", 64)), nil,
			`p.yaml:9:19: principals[0].token_sha256: want the 64 hex digits of a sha256, got "gggggggggggggggggggggggggggggggggggggggg"… (64 bytes)`},
		{"spiffe_id not spiffe", principal("spiffe_id: https://acme.example/x"), nil,
			`p.yaml:9:16: principals[0].spiffe_id: not a SPIFFE ID (scheme is missing or invalid): "https://acme.example/x"`},
		{"spiffe_id upper case", principal("spiffe_id: spiffe://Acme.example/x"), nil,
			`p.yaml:9:16: principals[0].spiffe_id: not a SPIFFE ID (trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores): "spiffe://Acme.example/x"`},
		{"token file missing", principal("token_file: tokens/none"), nil,
			`p.yaml:9:17: principals[0].token_file: token file: open DIR/tokens/none: no such file or directory`},
		{"token file readable by others", principal("token_file: t"), map[string]tokenFile{"t": {tok32, 0o644}},
			`p.yaml:9:17: principals[0].token_file: token file DIR/t is readable or writable by group or others (mode 0644); chmod 600 it`},
		{"token file readable by group", principal("token_file: t"), map[string]tokenFile{"t": {tok32, 0o640}},
			`p.yaml:9:17: principals[0].token_file: token file DIR/t is readable or writable by group or others (mode 0640); chmod 600 it`},
		{"token file writable by group", principal("token_file: t"), map[string]tokenFile{"t": {tok32, 0o620}},
			`p.yaml:9:17: principals[0].token_file: token file DIR/t is readable or writable by group or others (mode 0620); chmod 600 it`},
		{"token too short", principal("token_file: t"), map[string]tokenFile{"t": {tok32[1:] + "\n", 0o600}},
			`p.yaml:9:17: principals[0].token_file: token file DIR/t holds 31 characters; a token has at least 32`},
		{"token with a space", principal("token_file: t"), map[string]tokenFile{"t": {tok32 + " " + tok32, 0o600}},
			`p.yaml:9:17: principals[0].token_file: token file DIR/t: a token is printable ASCII without spaces`},
		{"token file a directory", principal("token_file: ."), nil,
			`p.yaml:9:17: principals[0].token_file: token file DIR is not a regular file`},
		{"token file unreadable", principal("token_file: t"), map[string]tokenFile{"t": {tok32, 0o000}}, ""}, // root reads it anyway; see TestTokenFileUnreadable
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, tf := range tc.tokens {
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, []byte(tf.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tf.mode); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Parse("p.yaml", []byte(tc.yaml), dir)
			got := ""
			if err != nil {
				got = strings.ReplaceAll(err.Error(), dir, "DIR")
				var pe *Error
				if !errors.As(err, &pe) {
					t.Errorf("error %T, want *Error", err)
				}
			}
			if got != tc.want {
				t.Errorf("Parse:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestPoolDefaults: a pool takes Default()'s pool's limits for every one
// it leaves out, and the file's for the rest.
func TestPoolDefaults(t *testing.T) {
	p, err := Parse("p.yaml", []byte(head+`pools:
  - name: p
    environment: priv
    memory_pages: 2048
    batch_deadline: 1s
    interrupt: wasm
    instances_per_worker: 4
    queue_per_worker: 0
    max_batch_rows: 1000
    max_batch_bytes: 1048576
    max_artifact_bytes: 2097152
    quarantine_after: 0
    quarantine_window: 0s
    max_pods: 3
    egress_timeout: 750ms
    egress_max_request_bytes: 4096
    egress_max_response_bytes: 65536
    egress_requests_per_pod: 2
  - name: d
    environment: pub
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := Pool{Name: "p", Env: "priv", MemoryLimitPages: 2048, BatchDeadline: time.Second, InstancesPerWorker: 4,
		Interrupt: InterruptWasm, QueuePerWorker: 0, MaxBatchRows: 1000, MaxBatchBytes: 1 << 20, MaxArtifactBytes: 2 << 20,
		QuarantineAfter: 0, QuarantineWindow: 0, MaxPods: 3,
		EgressTimeout: 750 * time.Millisecond, EgressMaxRequestBytes: 4096, EgressMaxResponseBytes: 65536, EgressRequestsPerPod: 2}
	if got, _ := p.Pool("priv", "p"); *got != want {
		t.Errorf("every limit set:\n got %+v\nwant %+v", *got, want)
	}
	def := *Default().Pools["default/default"]
	def.Name, def.Env = "d", "pub"
	if got, _ := p.Pool("pub", "d"); *got != def {
		t.Errorf("no limit set:\n got %+v\nwant %+v", *got, def)
	}
	if len(poolLimits)+3 != len(poolKeys()) {
		t.Errorf("poolKeys %v", poolKeys())
	}
}

// TestDefaultUnchanged pins the embedded policy serve runs without
// --policy: the quickstart and make demo depend on it.
func TestDefaultUnchanged(t *testing.T) {
	p := Default()
	if p.Org != "default" || len(p.Environments) != 1 || *p.Environments["default"] != (Environment{Name: "default", Visibility: Public}) {
		t.Errorf("org %q, environments %v", p.Org, p.Environments)
	}
	want := Pool{Name: "default", Env: "default", MemoryLimitPages: 4096, BatchDeadline: 2 * time.Second, InstancesPerWorker: 2,
		Interrupt: InterruptProcess, QueuePerWorker: 62, MaxBatchRows: 1 << 20, MaxBatchBytes: 64 << 20, MaxArtifactBytes: 100 << 20,
		QuarantineAfter: 3, QuarantineWindow: 10 * time.Minute,
		EgressTimeout: 5 * time.Second, EgressMaxRequestBytes: 1 << 20, EgressMaxResponseBytes: 4 << 20, EgressRequestsPerPod: 8}
	if len(p.Pools) != 1 || *p.Pools["default/default"] != want {
		t.Errorf("pools %v, want only %+v", p.Pools, want)
	}
	if len(p.Networks) != 1 || !p.Networks[PublicNetwork].Public() || p.Networks[PublicNetwork].Listen != "" {
		t.Errorf("networks %v, want only the public one", p.Networks)
	}
	if p.Principals != nil || p.MaxLivePods != 0 || p.File != "" || p.Edge != DefaultEdge() {
		t.Errorf("principals %v, max live pods %d, file %q, edge %+v", p.Principals, p.MaxLivePods, p.File, p.Edge)
	}
}

// TestTokenFileUnreadable needs a user other than root, who reads any
// file: it runs only then.
func TestTokenFileUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads a mode-0 file")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "t"), []byte(tok32), 0o000)
	_, err := Parse("p.yaml", []byte(head+"principals:\n  - name: x\n    token_file: t\n    roles: {pub: admin}\n"), dir)
	if err == nil || !strings.Contains(err.Error(), "p.yaml:9:17: principals[0].token_file: token file: open ") || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Parse = %v", err)
	}
}

// TestDocsListEveryLimit: docs/POLICY.md has a row for every pool limit
// with its range and its default.
func TestDocsListEveryLimit(t *testing.T) {
	b, err := os.ReadFile("../docs/POLICY.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	documented := ""
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 5 && strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = cells
		}
	}
	for _, l := range poolLimits {
		row, ok := rows[l.key]
		if !ok {
			t.Errorf("docs/POLICY.md has no row for pool limit %s", l.key)
			continue
		}
		if got := strings.TrimSpace(row[4]); got != l.rangeText() {
			t.Errorf("docs/POLICY.md: %s's range %q, want %q", l.key, got, l.rangeText())
		}
		documented += "    " + l.key + ": " + strings.Fields(row[3])[0] + "\n"
	}
	// A pool with every limit set to its documented default is a pool
	// with none set.
	p, err := Parse("p.yaml", []byte(head+"pools:\n  - name: a\n    environment: pub\n"+documented+"  - name: b\n    environment: pub\n"), t.TempDir())
	if err != nil {
		t.Fatalf("the documented defaults: %v", err)
	}
	a, def := *p.Pools["pub/a"], *p.Pools["pub/b"]
	a.Name = def.Name
	if a != def {
		t.Errorf("docs/POLICY.md's defaults make\n%+v\nnot Default()'s\n%+v", a, def)
	}
}
