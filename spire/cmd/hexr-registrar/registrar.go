package main

// One reconciliation: list the owned entries, diff, apply, revoke what was deleted.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
)

type Registrar struct {
	API      EntryAPI
	Settings Settings
	Revoker  *Revoker // nil: deleted identities are not revoked
	Log      *log.Logger
	// pending holds deleted identities whose revocation failed in a way worth retrying: tried
	// again on every reconciliation until it succeeds or is refused.
	pending map[string]bool
}

// Reconcile makes the owned entries match contexts. complete is false when some context file could
// not be read: entries are then created and updated but none deleted. The error joins every
// failure; what could be done is done.
func (r *Registrar) Reconcile(ctx context.Context, contexts []ProcessContext, complete bool) error {
	var wanted []Entry
	for _, c := range contexts {
		wanted = append(wanted, WantedEntry(c, r.Settings))
	}
	existing, err := r.API.ListByParent(ctx, r.Settings.ParentID)
	if err != nil {
		return err
	}
	plan := Diff(r.Settings.ParentID, wanted, existing)
	if !complete && len(plan.Delete) > 0 {
		r.Log.Printf("holding %d deletion(s) until every context file can be read", len(plan.Delete))
		plan = plan.WithoutDeletes()
	}
	var failures []error
	apply := func(what string, entries []Entry, call func(context.Context, []Entry) ([]error, error)) map[string]bool {
		failed := map[string]bool{}
		if len(entries) == 0 {
			return failed
		}
		errs, callErr := call(ctx, entries)
		for i, e := range entries {
			err := callErr
			if err == nil {
				err = errs[i]
			}
			if err != nil {
				failures = append(failures, fmt.Errorf("%s %s: %w", what, e.SPIFFEID, err))
				failed[e.SPIFFEID] = true
			} else {
				r.Log.Printf("%sd %s", what, e.SPIFFEID)
			}
		}
		return failed
	}
	apply("create", plan.Create, r.API.Create)
	apply("update", plan.Update, r.API.Update)
	notDeleted := apply("delete", plan.Delete, r.API.Delete)
	if r.Revoker != nil {
		if r.pending == nil {
			r.pending = map[string]bool{}
		}
		for _, id := range plan.Revoke {
			if !notDeleted[id] { // deleted first: no new SVIDs, then revoke the issued ones
				r.pending[id] = true
			}
		}
		failures = append(failures, r.revokePending(ctx)...)
	}
	return errors.Join(failures...)
}

// revokePending revokes every pending identity that no entry carries any more (another node's
// registrar may still register it: then it is not revoked).
func (r *Registrar) revokePending(ctx context.Context) []error {
	ids := make([]string, 0, len(r.pending))
	for id := range r.pending {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var failures []error
	for _, id := range ids {
		still, err := r.API.ListBySPIFFEID(ctx, id)
		if err != nil {
			failures = append(failures, fmt.Errorf("revoke %s: %w", id, err))
			continue
		}
		if len(still) > 0 {
			r.Log.Printf("not revoking %s: still registered (parent %s)", id, still[0].ParentID)
			delete(r.pending, id)
			continue
		}
		err = r.Revoker.Revoke(ctx, id)
		var revokeErr *RevokeError
		switch {
		case err == nil:
			r.Log.Printf("revoked %s", id)
			delete(r.pending, id)
		case errors.As(err, &revokeErr) && revokeErr.Permanent:
			delete(r.pending, id)
			failures = append(failures, err)
		default:
			failures = append(failures, err) // stays pending
		}
	}
	return failures
}
