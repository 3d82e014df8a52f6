package main

// The diff between the entries the contexts want and the ones SPIRE has: a pure function.

import (
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Entry is a SPIRE registration entry, reduced to what the registrar sets and compares.
type Entry struct {
	ID            string // SPIRE's entry ID; empty for an entry still to create
	SPIFFEID      string
	ParentID      string
	Selectors     []string // "type:value", e.g. "unix:uid:61001", sorted
	X509SVIDTTL   int32    // seconds; 0 is the server's default
	JWTSVIDTTL    int32
	Hint          string
	Admin         bool
	Downstream    bool
	StoreSVID     bool
	FederatesWith []string
	DNSNames      []string
	ExpiresAt     int64
}

// Settings are the registrar's flags that shape every entry.
type Settings struct {
	ParentID    string
	X509SVIDTTL int32
	JWTSVIDTTL  int32
}

// Plan is what to do to make SPIRE's entries match the contexts.
type Plan struct {
	Create []Entry
	Update []Entry // each with the ID of the existing entry it rewrites
	Delete []Entry
	// Revoke lists the SPIFFE IDs that no owned entry carries once Delete is done: credentials
	// issued to them must be revoked (duplicates of a still-wanted entry are deleted, not revoked).
	Revoke []string
}

// Empty tells whether there is nothing to do.
func (p Plan) Empty() bool {
	return len(p.Create)+len(p.Update)+len(p.Delete)+len(p.Revoke) == 0
}

// WantedEntry is the entry one context asks for: the process running as its uid (and primary gid
// of the same number) gets its SPIFFE ID.
func WantedEntry(c ProcessContext, s Settings) Entry {
	uid := strconv.FormatInt(c.UnixUID, 10)
	return Entry{
		SPIFFEID:    c.SPIFFEID,
		ParentID:    s.ParentID,
		Selectors:   []string{"unix:gid:" + uid, "unix:uid:" + uid},
		X509SVIDTTL: s.X509SVIDTTL,
		JWTSVIDTTL:  s.JWTSVIDTTL,
		Hint:        c.ProcessRole,
	}
}

// Owned tells whether the registrar manages an entry: its parent is the registrar's parent ID and
// its SPIFFE ID is an agent's (path /agent/...) in the parent's trust domain. Every other entry
// (the stack's own services, other nodes' agents) is never created, changed or deleted.
func Owned(parentID string, e Entry) bool {
	return e.ParentID == parentID && strings.HasPrefix(e.SPIFFEID, trustDomainOf(parentID)+"/agent/")
}

// trustDomainOf returns "spiffe://td" of "spiffe://td/path".
func trustDomainOf(id string) string {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "\x00" // matches nothing
	}
	td, _, _ := strings.Cut(rest, "/")
	return "spiffe://" + td
}

// Diff plans the changes from existing to wanted. wanted entries must be owned (the contexts'
// validation sees to it); existing may hold anything: what is not owned is left alone.
func Diff(parentID string, wanted, existing []Entry) Plan {
	have := map[string][]Entry{}
	for _, e := range existing {
		if Owned(parentID, e) {
			have[e.SPIFFEID] = append(have[e.SPIFFEID], e)
		}
	}
	var plan Plan
	want := map[string]bool{}
	for _, w := range wanted {
		if !Owned(parentID, w) || want[w.SPIFFEID] {
			continue
		}
		want[w.SPIFFEID] = true
		current := have[w.SPIFFEID]
		if len(current) == 0 {
			plan.Create = append(plan.Create, w)
			continue
		}
		sort.Slice(current, func(i, j int) bool { return current[i].ID < current[j].ID })
		keep := slices.IndexFunc(current, func(e Entry) bool { return Same(w, e) })
		if keep < 0 {
			keep = 0
			update := w
			update.ID = current[0].ID
			plan.Update = append(plan.Update, update)
		}
		for i, e := range current {
			if i != keep {
				plan.Delete = append(plan.Delete, e) // a duplicate: the identity stays
			}
		}
	}
	for id, entries := range have {
		if !want[id] {
			plan.Delete = append(plan.Delete, entries...)
			plan.Revoke = append(plan.Revoke, id)
		}
	}
	sortEntries(plan.Create)
	sortEntries(plan.Update)
	sortEntries(plan.Delete)
	sort.Strings(plan.Revoke)
	return plan
}

// WithoutDeletes is the plan when some context is unknown: create and update, delete nothing.
func (p Plan) WithoutDeletes() Plan {
	return Plan{Create: p.Create, Update: p.Update}
}

// Same compares everything the registrar sets (selectors as a set).
func Same(a, b Entry) bool {
	return a.SPIFFEID == b.SPIFFEID && a.ParentID == b.ParentID &&
		slices.Equal(sorted(a.Selectors), sorted(b.Selectors)) &&
		a.X509SVIDTTL == b.X509SVIDTTL && a.JWTSVIDTTL == b.JWTSVIDTTL && a.Hint == b.Hint &&
		a.Admin == b.Admin && a.Downstream == b.Downstream && a.StoreSVID == b.StoreSVID &&
		slices.Equal(sorted(a.FederatesWith), sorted(b.FederatesWith)) &&
		slices.Equal(sorted(a.DNSNames), sorted(b.DNSNames)) &&
		a.ExpiresAt == b.ExpiresAt
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func sortEntries(entries []Entry) {
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].SPIFFEID != entries[j].SPIFFEID {
			return entries[i].SPIFFEID < entries[j].SPIFFEID
		}
		return entries[i].ID < entries[j].ID
	})
}
