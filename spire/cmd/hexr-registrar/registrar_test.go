package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeServer is an EntryAPI in memory that records the order of calls.
type fakeServer struct {
	entries []Entry
	calls   *[]string
	nextID  int
	failAll error // every call fails with this
}

func (f *fakeServer) record(call string) {
	*f.calls = append(*f.calls, call)
}

func (f *fakeServer) ListByParent(_ context.Context, parentID string) ([]Entry, error) {
	if f.failAll != nil {
		return nil, f.failAll
	}
	var out []Entry
	for _, e := range f.entries {
		if e.ParentID == parentID {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeServer) ListBySPIFFEID(_ context.Context, id string) ([]Entry, error) {
	var out []Entry
	for _, e := range f.entries {
		if e.SPIFFEID == id {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeServer) Create(_ context.Context, entries []Entry) ([]error, error) {
	errs := make([]error, len(entries))
	for _, e := range entries {
		f.nextID++
		e.ID = "new-" + string(rune('0'+f.nextID))
		f.entries = append(f.entries, e)
		f.record("create " + e.SPIFFEID)
	}
	return errs, nil
}

func (f *fakeServer) Update(_ context.Context, entries []Entry) ([]error, error) {
	errs := make([]error, len(entries))
	for i, e := range entries {
		for j := range f.entries {
			if f.entries[j].ID == e.ID {
				f.entries[j] = e
			}
		}
		f.record("update " + entries[i].SPIFFEID)
	}
	return errs, nil
}

func (f *fakeServer) Delete(_ context.Context, entries []Entry) ([]error, error) {
	errs := make([]error, len(entries))
	for _, d := range entries {
		f.entries = slicesDeleteID(f.entries, d.ID)
		f.record("delete " + d.SPIFFEID)
	}
	return errs, nil
}

func slicesDeleteID(entries []Entry, id string) []Entry {
	var out []Entry
	for _, e := range entries {
		if e.ID != id {
			out = append(out, e)
		}
	}
	return out
}

func TestReconcileDeletesBeforeRevokingAndLeavesOthersAlone(t *testing.T) {
	var calls []string
	envoy := Entry{ID: "envoy", SPIFFEID: "spiffe://hexr.local/envoy", ParentID: parent, Selectors: []string{"unix:uid:1"}}
	elsewhere := Entry{ID: "pod-b", SPIFFEID: agentID("shared"), ParentID: "spiffe://hexr.local/node/pod-b"}
	server := &fakeServer{calls: &calls, entries: []Entry{
		envoy, elsewhere, existingFor("e-gone", "gone", 61009), existingFor("e-shared", "shared", 61008),
	}}
	revocations := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		calls = append(calls, "revoke "+string(body))
	}))
	defer revocations.Close()
	var logs strings.Builder
	reg := &Registrar{API: server, Settings: settings, Revoker: testRevoker(revocations.URL), Log: log.New(&logs, "", 0)}
	contexts := []ProcessContext{{SPIFFEID: agentID("researcher"), ProcessRole: "researcher", UnixUID: 61001}}
	if err := reg.Reconcile(context.Background(), contexts, true); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create " + agentID("researcher"),
		"delete " + agentID("gone"),
		"delete " + agentID("shared"),
		`revoke {"spiffe_id":"` + agentID("gone") + `"}`, // shared is still registered under pod-b
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	for _, line := range []string{"created " + agentID("researcher"), "deleted " + agentID("gone"), "revoked " + agentID("gone"), "not revoking " + agentID("shared")} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs.String())
		}
	}
	if len(server.entries) != 3 || server.entries[0].ID != "envoy" || server.entries[1].ID != "pod-b" {
		t.Fatalf("entries %+v", server.entries)
	}
	// A second pass has nothing to do.
	calls = nil
	if err := reg.Reconcile(context.Background(), contexts, true); err != nil || len(calls) != 0 {
		t.Fatalf("second pass: %v %v", calls, err)
	}
}

func TestReconcileHoldsDeletionsWhenContextsAreIncomplete(t *testing.T) {
	var calls []string
	server := &fakeServer{calls: &calls, entries: []Entry{existingFor("e-gone", "gone", 61009)}}
	reg := &Registrar{API: server, Settings: settings, Log: log.New(io.Discard, "", 0)}
	contexts := []ProcessContext{{SPIFFEID: agentID("researcher"), ProcessRole: "researcher", UnixUID: 61001}}
	if err := reg.Reconcile(context.Background(), contexts, false); err != nil {
		t.Fatal(err)
	}
	if strings.Join(calls, ",") != "create "+agentID("researcher") {
		t.Fatalf("%v", calls)
	}
}

func TestReconcileKeepsRetryableRevocationsPending(t *testing.T) {
	var calls []string
	server := &fakeServer{calls: &calls, entries: []Entry{existingFor("e-gone", "gone", 61009)}}
	status := http.StatusServiceUnavailable
	revocations := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer revocations.Close()
	reg := &Registrar{API: server, Settings: settings, Revoker: testRevoker(revocations.URL), Log: log.New(io.Discard, "", 0)}
	var revokeErr *RevokeError
	if err := reg.Reconcile(context.Background(), nil, true); !errors.As(err, &revokeErr) || revokeErr.Permanent {
		t.Fatalf("%v", err)
	}
	status = http.StatusOK
	if err := reg.Reconcile(context.Background(), nil, true); err != nil || len(reg.pending) != 0 {
		t.Fatalf("%v, pending %v", err, reg.pending)
	}
}

func TestReconcileReportsAnUnreachableServer(t *testing.T) {
	var calls []string
	server := &fakeServer{calls: &calls, failAll: errors.New("connection refused")}
	reg := &Registrar{API: server, Settings: settings, Log: log.New(io.Discard, "", 0)}
	if err := reg.Reconcile(context.Background(), nil, true); err == nil || len(calls) != 0 {
		t.Fatalf("%v %v", err, calls)
	}
}
