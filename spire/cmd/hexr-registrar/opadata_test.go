package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func contentCrew() []ProcessContext {
	return []ProcessContext{
		{Tenant: "acme-corp", AgentName: "content-crew", ProcessRole: "writer", Resources: []string{"aws_s3"}},
		{Tenant: "acme-corp", AgentName: "content-crew", ProcessRole: "researcher", Resources: []string{"gcp_bigquery:read"}},
		{Tenant: "acme-corp", AgentName: "content-crew", ProcessRole: "editor", Resources: []string{}},
		{Tenant: "globex", AgentName: "analyst", ProcessRole: "main"}, // nil resources: an empty grant
	}
}

func TestRenderOPAData(t *testing.T) {
	var got any
	if err := json.Unmarshal(RenderOPAData(contentCrew()), &got); err != nil {
		t.Fatal(err)
	}
	var want any
	json.Unmarshal([]byte(`{"hexr": {"registered": {"tenants": {
		"acme-corp": {"agents": {"content-crew": {"roles": {"researcher": ["gcp_bigquery:read"], "writer": ["aws_s3"], "editor": []}}}},
		"globex": {"agents": {"analyst": {"roles": {"main": []}}}}}}}}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestRenderOPADataIsDeterministic(t *testing.T) {
	a := RenderOPAData(contentCrew())
	reversed := contentCrew()
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	if b := RenderOPAData(reversed); string(a) != string(b) {
		t.Fatalf("order changed the output:\n%s\n%s", a, b)
	}
	if empty := string(RenderOPAData(nil)); empty != "{\n  \"hexr\": {\n    \"registered\": {\n      \"tenants\": {}\n    }\n  }\n}\n" {
		t.Fatalf("no contexts: %q", empty)
	}
}

func TestWriteOPADataOnlyWhenItChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registered.json")
	if wrote, err := WriteOPAData(path, contentCrew()); err != nil || !wrote {
		t.Fatalf("%v %v", wrote, err)
	}
	if wrote, err := WriteOPAData(path, contentCrew()); err != nil || wrote {
		t.Fatalf("unchanged: %v %v", wrote, err)
	}
	if wrote, err := WriteOPAData(path, contentCrew()[:1]); err != nil || !wrote {
		t.Fatalf("changed: %v %v", wrote, err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", info.Mode().Perm())
	}
}
