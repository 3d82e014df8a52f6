package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func goodContext() map[string]any {
	return map[string]any{
		"agent_name": "content-crew", "tenant": "acme-corp", "process_role": "researcher", "framework": "crewai",
		"trust_domain": "hexr.local", "spiffe_id": "spiffe://hexr.local/agent/acme-corp/content-crew/researcher",
		"resources": []any{"gcp_bigquery:read"}, "unix_uid": 61001, "source": "content_crew.py",
	}
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseContextAcceptsTheSDKsFormat(t *testing.T) {
	c, err := ParseContext("researcher.json", encode(t, goodContext()), "hexr.local")
	if err != nil {
		t.Fatal(err)
	}
	want := ProcessContext{
		File: "researcher.json", AgentName: "content-crew", Tenant: "acme-corp", ProcessRole: "researcher",
		TrustDomain: "hexr.local", SPIFFEID: "spiffe://hexr.local/agent/acme-corp/content-crew/researcher",
		UnixUID: 61001, Resources: []string{"gcp_bigquery:read"},
	}
	if c.File != want.File || c.SPIFFEID != want.SPIFFEID || c.UnixUID != want.UnixUID || c.ProcessRole != want.ProcessRole ||
		c.AgentName != want.AgentName || c.Tenant != want.Tenant || !slices.Equal(c.Resources, want.Resources) {
		t.Fatalf("got %+v", c)
	}
}

func TestParseContextResources(t *testing.T) {
	for _, tc := range []struct {
		value any
		want  []string
	}{
		{nil, []string{}},
		{[]any{}, []string{}},
		{[]any{"aws_s3", "gcp_bigquery:read", "aws_s3"}, []string{"aws_s3", "gcp_bigquery:read"}},
	} {
		in := goodContext()
		in["resources"] = tc.value
		c, err := ParseContext("f.json", encode(t, in), "hexr.local")
		if err != nil || !slices.Equal(c.Resources, tc.want) || c.Resources == nil {
			t.Errorf("resources %v: got %#v, %v", tc.value, c.Resources, err)
		}
	}
	in := goodContext()
	delete(in, "resources")
	if c, err := ParseContext("f.json", encode(t, in), "hexr.local"); err != nil || len(c.Resources) != 0 {
		t.Errorf("absent resources: %v %v", c.Resources, err)
	}
}

// Every bad field is refused with an error naming the file and the field.
func TestParseContextRefusesEachBadField(t *testing.T) {
	cases := []struct {
		name  string
		field string
		value any // nil with remove: the field is absent
		drop  bool
	}{
		{"agent missing", "agent_name", nil, true},
		{"agent not a string", "agent_name", 7, false},
		{"agent with a slash", "agent_name", "content/crew", false},
		{"agent dot-dot", "agent_name", "..", false},
		{"agent too long", "agent_name", strings.Repeat("a", 129), false},
		{"tenant empty", "tenant", "", false},
		{"tenant with a space", "tenant", "acme corp", false},
		{"tenant null", "tenant", nil, false},
		{"role dot", "process_role", ".", false},
		{"role with a colon", "process_role", "a:b", false},
		{"role missing", "process_role", nil, true},
		{"trust domain upper case", "trust_domain", "Hexr.local", false},
		{"trust domain of another parent", "trust_domain", "other.local", false},
		{"trust domain missing", "trust_domain", nil, true},
		{"spiffe id of another role", "spiffe_id", "spiffe://hexr.local/agent/acme-corp/content-crew/writer", false},
		{"spiffe id not an agent's", "spiffe_id", "spiffe://hexr.local/service/acme-corp/content-crew/researcher", false},
		{"spiffe id trailing slash", "spiffe_id", "spiffe://hexr.local/agent/acme-corp/content-crew/researcher/", false},
		{"spiffe id missing", "spiffe_id", nil, true},
		{"uid zero", "unix_uid", 0, false},
		{"uid negative", "unix_uid", -5, false},
		{"uid too large", "unix_uid", 1 << 31, false},
		{"uid fractional", "unix_uid", 61001.5, false},
		{"uid a string", "unix_uid", "61001", false},
		{"uid missing", "unix_uid", nil, true},
		{"resources a string", "resources", "aws_s3", false},
		{"resources unknown provider", "resources", []any{"ibm_cos"}, false},
		{"resources two scopes", "resources", []any{"aws_s3:read:extra"}, false},
		{"resources not strings", "resources", []any{1}, false},
		{"resources upper case", "resources", []any{"AWS_S3"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := goodContext()
			if tc.drop {
				delete(in, tc.field)
			} else {
				in[tc.field] = tc.value
			}
			_, err := ParseContext("dir/researcher.json", encode(t, in), "hexr.local")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), "dir/researcher.json: "+tc.field+" ") {
				t.Fatalf("error %q does not name the file and %s", err, tc.field)
			}
		})
	}
	if _, err := ParseContext("x.json", []byte("[1]"), "hexr.local"); err == nil || !strings.Contains(err.Error(), "x.json: not a JSON object") {
		t.Fatalf("a JSON array: %v", err)
	}
	if _, err := ParseContext("x.json", []byte(`{"agent_name": "a"`), "hexr.local"); err == nil || !strings.Contains(err.Error(), "x.json: not valid JSON") {
		t.Fatalf("truncated JSON: %v", err)
	}
	long := goodContext()
	seg := strings.Repeat("a", 128)
	long["agent_name"], long["tenant"], long["process_role"] = seg, seg, seg
	long["spiffe_id"] = "spiffe://hexr.local/agent/" + seg + "/" + seg + "/" + seg
	if _, err := ParseContext("x.json", encode(t, long), "hexr.local"); err == nil || !strings.Contains(err.Error(), "spiffe_id is 412 bytes") {
		t.Fatalf("a SPIFFE ID over 400 bytes: %v", err)
	}
}

func writeContext(t *testing.T, dir, name string, fields map[string]any) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), encode(t, fields), 0o644); err != nil {
		t.Fatal(err)
	}
}

func roleContext(role string, uid int) map[string]any {
	c := goodContext()
	c["process_role"] = role
	c["spiffe_id"] = "spiffe://hexr.local/agent/acme-corp/content-crew/" + role
	c["unix_uid"] = uid
	return c
}

func ids(contexts []ProcessContext) []string {
	var out []string
	for _, c := range contexts {
		out = append(out, c.SPIFFEID)
	}
	return out
}

func TestLoaderKeepsTheLastGoodStateOfABadFile(t *testing.T) {
	dir := t.TempDir()
	writeContext(t, dir, "researcher.json", roleContext("researcher", 61001))
	writeContext(t, dir, "writer.json", roleContext("writer", 61002))
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a context"), 0o644)
	os.WriteFile(filepath.Join(dir, ".writer.json.tmp"), []byte("{"), 0o644)
	l := &Loader{Dirs: []string{dir}, TrustDomain: "hexr.local"}
	contexts, problems, complete := l.Load()
	if len(problems) != 0 || !complete || len(contexts) != 2 {
		t.Fatalf("first load: %v %v %v", ids(contexts), problems, complete)
	}
	// The writer's file turns bad: its last good context stays, with a problem reported.
	os.WriteFile(filepath.Join(dir, "writer.json"), []byte(`{"agent_name": `), 0o644)
	contexts, problems, complete = l.Load()
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), "writer.json") || !complete || len(contexts) != 2 {
		t.Fatalf("bad file: %v %v %v", ids(contexts), problems, complete)
	}
	// Removed: gone.
	os.Remove(filepath.Join(dir, "writer.json"))
	contexts, problems, complete = l.Load()
	if len(problems) != 0 || !complete || !slices.Equal(ids(contexts), []string{"spiffe://hexr.local/agent/acme-corp/content-crew/researcher"}) {
		t.Fatalf("removed file: %v %v %v", ids(contexts), problems, complete)
	}
}

func TestLoaderIsIncompleteWhenABadFileHasNoLastGoodState(t *testing.T) {
	dir := t.TempDir()
	writeContext(t, dir, "researcher.json", roleContext("researcher", 61001))
	os.WriteFile(filepath.Join(dir, "writer.json"), []byte(`{`), 0o644)
	l := &Loader{Dirs: []string{dir}, TrustDomain: "hexr.local"}
	contexts, problems, complete := l.Load()
	if complete || len(problems) != 1 || len(contexts) != 1 {
		t.Fatalf("%v %v %v", ids(contexts), problems, complete)
	}
	// An unreadable directory: its files' last good contexts stay, and nothing may be deleted.
	l2 := &Loader{Dirs: []string{dir}, TrustDomain: "hexr.local"}
	os.Remove(filepath.Join(dir, "writer.json"))
	l2.Load()
	os.RemoveAll(dir)
	contexts, problems, complete = l2.Load()
	if complete || len(problems) != 1 || len(contexts) != 1 {
		t.Fatalf("missing directory: %v %v %v", ids(contexts), problems, complete)
	}
}

func TestLoaderRefusesTwoFilesClaimingOneIdentityOrUID(t *testing.T) {
	dir := t.TempDir()
	writeContext(t, dir, "a.json", roleContext("researcher", 61001))
	writeContext(t, dir, "b.json", roleContext("researcher", 61002)) // same SPIFFE ID
	writeContext(t, dir, "c.json", roleContext("writer", 61001))     // same uid
	l := &Loader{Dirs: []string{dir}, TrustDomain: "hexr.local"}
	contexts, problems, _ := l.Load()
	if len(contexts) != 1 || contexts[0].File != filepath.Join(dir, "a.json") || len(problems) != 2 {
		t.Fatalf("%v %v", ids(contexts), problems)
	}
	if !strings.Contains(problems[0].Error(), "b.json: spiffe_id") || !strings.Contains(problems[1].Error(), "c.json: unix_uid 61001") {
		t.Fatalf("problems: %v", problems)
	}
}
