package main

import (
	"slices"
	"testing"
)

const parent = "spiffe://hexr.local/node/pod-a"

var settings = Settings{ParentID: parent, X509SVIDTTL: 3600, JWTSVIDTTL: 300}

func agentID(role string) string { return "spiffe://hexr.local/agent/acme-corp/content-crew/" + role }

func wantedFor(role string, uid int64) Entry {
	return WantedEntry(ProcessContext{SPIFFEID: agentID(role), ProcessRole: role, UnixUID: uid}, settings)
}

func existingFor(id, role string, uid int64) Entry {
	e := wantedFor(role, uid)
	e.ID = id
	return e
}

func spiffeIDs(entries []Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.SPIFFEID)
	}
	return out
}

func TestWantedEntry(t *testing.T) {
	e := wantedFor("researcher", 61001)
	if !slices.Equal(e.Selectors, []string{"unix:gid:61001", "unix:uid:61001"}) || e.Hint != "researcher" ||
		e.ParentID != parent || e.X509SVIDTTL != 3600 || e.JWTSVIDTTL != 300 || e.Admin || e.Downstream {
		t.Fatalf("%+v", e)
	}
}

func TestDiffCreatesUpdatesAndDeletes(t *testing.T) {
	wanted := []Entry{wantedFor("researcher", 61001), wantedFor("writer", 61002), wantedFor("editor", 61003)}
	changedUID := existingFor("e-writer", "writer", 61999)
	changedTTL := existingFor("e-editor", "editor", 61003)
	changedTTL.JWTSVIDTTL = 60
	existing := []Entry{changedUID, changedTTL, existingFor("e-gone", "gone", 61004)}
	plan := Diff(parent, wanted, existing)
	if !slices.Equal(spiffeIDs(plan.Create), []string{agentID("researcher")}) {
		t.Fatalf("create %v", spiffeIDs(plan.Create))
	}
	if !slices.Equal(spiffeIDs(plan.Update), []string{agentID("editor"), agentID("writer")}) ||
		plan.Update[0].ID != "e-editor" || plan.Update[0].JWTSVIDTTL != 300 ||
		plan.Update[1].ID != "e-writer" || !slices.Equal(plan.Update[1].Selectors, []string{"unix:gid:61002", "unix:uid:61002"}) {
		t.Fatalf("update %+v", plan.Update)
	}
	if len(plan.Delete) != 1 || plan.Delete[0].ID != "e-gone" || !slices.Equal(plan.Revoke, []string{agentID("gone")}) {
		t.Fatalf("delete %+v revoke %v", plan.Delete, plan.Revoke)
	}
}

func TestDiffOfMatchingEntriesIsEmpty(t *testing.T) {
	existing := existingFor("e1", "researcher", 61001)
	existing.Selectors = []string{"unix:uid:61001", "unix:gid:61001"} // order does not matter
	if plan := Diff(parent, []Entry{wantedFor("researcher", 61001)}, []Entry{existing}); !plan.Empty() {
		t.Fatalf("%+v", plan)
	}
}

func TestDiffResetsWhatTheRegistrarDoesNotSet(t *testing.T) {
	for _, change := range []func(*Entry){
		func(e *Entry) { e.Admin = true },
		func(e *Entry) { e.Downstream = true },
		func(e *Entry) { e.DNSNames = []string{"x"} },
		func(e *Entry) { e.FederatesWith = []string{"other.org"} },
		func(e *Entry) { e.Hint = "other" },
		func(e *Entry) { e.ExpiresAt = 1 },
		func(e *Entry) { e.Selectors = append(e.Selectors, "unix:uid:0") },
	} {
		e := existingFor("e1", "researcher", 61001)
		change(&e)
		plan := Diff(parent, []Entry{wantedFor("researcher", 61001)}, []Entry{e})
		if len(plan.Update) != 1 || plan.Update[0].Admin || len(plan.Update[0].DNSNames) != 0 || len(plan.Delete)+len(plan.Create) != 0 {
			t.Fatalf("%+v", plan)
		}
	}
}

// Entries of another parent, outside /agent/ or of another trust domain are never touched, even
// when nothing is wanted.
func TestDiffNeverTouchesEntriesItDoesNotOwn(t *testing.T) {
	foreign := []Entry{
		{ID: "envoy", SPIFFEID: "spiffe://hexr.local/envoy/pod-a", ParentID: parent, Selectors: []string{"unix:uid:1000"}},
		{ID: "injector", SPIFFEID: "spiffe://hexr.local/service/injector", ParentID: parent},
		{ID: "agentlike", SPIFFEID: "spiffe://hexr.local/agentx/acme-corp/a/b", ParentID: parent},
		{ID: "agent-root", SPIFFEID: "spiffe://hexr.local/agent", ParentID: parent},
		{ID: "pod-b", SPIFFEID: agentID("researcher"), ParentID: "spiffe://hexr.local/node/pod-b"},
		{ID: "other-td", SPIFFEID: "spiffe://other.local/agent/acme-corp/content-crew/researcher", ParentID: parent},
		{ID: "child", SPIFFEID: agentID("researcher"), ParentID: parent + "/child"},
	}
	if plan := Diff(parent, nil, foreign); !plan.Empty() {
		t.Fatalf("touched foreign entries: %+v", plan)
	}
	// Wanting an identity another parent also registers creates ours and leaves theirs.
	plan := Diff(parent, []Entry{wantedFor("researcher", 61001)}, foreign)
	if len(plan.Create) != 1 || len(plan.Update)+len(plan.Delete)+len(plan.Revoke) != 0 {
		t.Fatalf("%+v", plan)
	}
}

func TestDiffDeletesDuplicatesWithoutRevoking(t *testing.T) {
	exact := existingFor("e2", "researcher", 61001)
	stale := existingFor("e1", "researcher", 61001)
	stale.Selectors = []string{"unix:uid:5"}
	stale2 := existingFor("e3", "researcher", 61001)
	stale2.Hint = "x"
	plan := Diff(parent, []Entry{wantedFor("researcher", 61001)}, []Entry{stale, exact, stale2})
	if len(plan.Create)+len(plan.Update)+len(plan.Revoke) != 0 || len(plan.Delete) != 2 ||
		plan.Delete[0].ID != "e1" || plan.Delete[1].ID != "e3" {
		t.Fatalf("%+v", plan)
	}
	// No exact one: the first (by ID) is rewritten, the others deleted.
	plan = Diff(parent, []Entry{wantedFor("researcher", 61001)}, []Entry{stale2, stale})
	if len(plan.Update) != 1 || plan.Update[0].ID != "e1" || len(plan.Delete) != 1 || plan.Delete[0].ID != "e3" || len(plan.Revoke) != 0 {
		t.Fatalf("%+v", plan)
	}
}

func TestDiffRevokesEachGoneIdentityOnce(t *testing.T) {
	plan := Diff(parent, nil, []Entry{existingFor("e1", "gone", 1), existingFor("e2", "gone", 2), existingFor("e3", "also", 3)})
	if len(plan.Delete) != 3 || !slices.Equal(plan.Revoke, []string{agentID("also"), agentID("gone")}) {
		t.Fatalf("%+v", plan)
	}
	if held := plan.WithoutDeletes(); !held.Empty() {
		t.Fatalf("WithoutDeletes: %+v", held)
	}
}

func TestOwned(t *testing.T) {
	for _, tc := range []struct {
		id, parentID string
		owned        bool
	}{
		{agentID("r"), parent, true},
		{agentID("r"), "spiffe://hexr.local/node/pod-b", false},
		{"spiffe://hexr.local/agents/x", parent, false},
		{"spiffe://other.local/agent/a/b/c", parent, false},
		{"spiffe://hexr.localx/agent/a/b/c", parent, false},
		{"hexr.local/agent/a/b/c", parent, false},
	} {
		if got := Owned(parent, Entry{SPIFFEID: tc.id, ParentID: tc.parentID}); got != tc.owned {
			t.Errorf("Owned(%s under %s) = %v", tc.id, tc.parentID, got)
		}
	}
}
