package main

// The SPIRE Server's entry API (entry/v1), over the server's local admin socket.

import (
	"context"
	"fmt"
	"strings"

	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// EntryAPI is what the registrar needs of the server; a fake in the tests. Each batch call returns
// one error (nil for success) per entry given, in order.
type EntryAPI interface {
	ListByParent(ctx context.Context, parentID string) ([]Entry, error)
	ListBySPIFFEID(ctx context.Context, spiffeID string) ([]Entry, error)
	Create(ctx context.Context, entries []Entry) ([]error, error)
	Update(ctx context.Context, entries []Entry) ([]error, error)
	Delete(ctx context.Context, entries []Entry) ([]error, error)
}

const (
	pageSize  = 500
	batchSize = 50
)

// everyManagedField is the update mask: on an owned entry the registrar sets all of these.
var everyManagedField = &types.EntryMask{
	Selectors: true, X509SvidTtl: true, JwtSvidTtl: true, Hint: true, Admin: true, Downstream: true,
	StoreSvid: true, FederatesWith: true, DnsNames: true, ExpiresAt: true,
}

type spireServer struct {
	conn    *grpc.ClientConn
	entries entryv1.EntryClient
}

// dialServer connects to the server API's unix socket (the local admin API: no credentials; the
// socket's file mode is the access control).
func dialServer(socketPath string) (*spireServer, error) {
	conn, err := grpc.NewClient("unix://"+socketPath, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("spire server socket %s: %w", socketPath, err)
	}
	return &spireServer{conn: conn, entries: entryv1.NewEntryClient(conn)}, nil
}

func (s *spireServer) Close() error { return s.conn.Close() }

func (s *spireServer) ListByParent(ctx context.Context, parentID string) ([]Entry, error) {
	id, err := toSPIFFEID(parentID)
	if err != nil {
		return nil, err
	}
	return s.list(ctx, &entryv1.ListEntriesRequest_Filter{ByParentId: id})
}

func (s *spireServer) ListBySPIFFEID(ctx context.Context, spiffeID string) ([]Entry, error) {
	id, err := toSPIFFEID(spiffeID)
	if err != nil {
		return nil, err
	}
	return s.list(ctx, &entryv1.ListEntriesRequest_Filter{BySpiffeId: id})
}

func (s *spireServer) list(ctx context.Context, filter *entryv1.ListEntriesRequest_Filter) ([]Entry, error) {
	var out []Entry
	token := ""
	for {
		resp, err := s.entries.ListEntries(ctx, &entryv1.ListEntriesRequest{Filter: filter, PageSize: pageSize, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list entries: %w", err)
		}
		for _, e := range resp.Entries {
			out = append(out, fromAPI(e))
		}
		if token = resp.NextPageToken; token == "" {
			return out, nil
		}
	}
}

func (s *spireServer) Create(ctx context.Context, entries []Entry) ([]error, error) {
	return inBatches(entries, func(batch []Entry) ([]*types.Status, error) {
		req := &entryv1.BatchCreateEntryRequest{OutputMask: &types.EntryMask{}}
		for _, e := range batch {
			req.Entries = append(req.Entries, toAPI(e))
		}
		resp, err := s.entries.BatchCreateEntry(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("create entries: %w", err)
		}
		var statuses []*types.Status
		for _, r := range resp.Results {
			statuses = append(statuses, r.Status)
		}
		return statuses, nil
	})
}

func (s *spireServer) Update(ctx context.Context, entries []Entry) ([]error, error) {
	return inBatches(entries, func(batch []Entry) ([]*types.Status, error) {
		req := &entryv1.BatchUpdateEntryRequest{InputMask: everyManagedField, OutputMask: &types.EntryMask{}}
		for _, e := range batch {
			req.Entries = append(req.Entries, toAPI(e))
		}
		resp, err := s.entries.BatchUpdateEntry(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("update entries: %w", err)
		}
		var statuses []*types.Status
		for _, r := range resp.Results {
			statuses = append(statuses, r.Status)
		}
		return statuses, nil
	})
}

func (s *spireServer) Delete(ctx context.Context, entries []Entry) ([]error, error) {
	return inBatches(entries, func(batch []Entry) ([]*types.Status, error) {
		req := &entryv1.BatchDeleteEntryRequest{}
		for _, e := range batch {
			req.Ids = append(req.Ids, e.ID)
		}
		resp, err := s.entries.BatchDeleteEntry(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("delete entries: %w", err)
		}
		var statuses []*types.Status
		for _, r := range resp.Results {
			statuses = append(statuses, r.Status)
		}
		return statuses, nil
	})
}

// inBatches calls do on batches of entries and turns the per-entry statuses into errors.
func inBatches(entries []Entry, do func([]Entry) ([]*types.Status, error)) ([]error, error) {
	var out []error
	for start := 0; start < len(entries); start += batchSize {
		batch := entries[start:min(start+batchSize, len(entries))]
		statuses, err := do(batch)
		if err != nil {
			return nil, err
		}
		if len(statuses) != len(batch) {
			return nil, fmt.Errorf("the server answered %d results for %d entries", len(statuses), len(batch))
		}
		for _, st := range statuses {
			if st != nil && codes.Code(st.Code) != codes.OK {
				out = append(out, fmt.Errorf("%s: %s", codes.Code(st.Code), st.Message))
			} else {
				out = append(out, nil)
			}
		}
	}
	return out, nil
}

func toAPI(e Entry) *types.Entry {
	spiffeID, _ := toSPIFFEID(e.SPIFFEID)
	parentID, _ := toSPIFFEID(e.ParentID)
	out := &types.Entry{
		Id: e.ID, SpiffeId: spiffeID, ParentId: parentID, X509SvidTtl: e.X509SVIDTTL, JwtSvidTtl: e.JWTSVIDTTL,
		Hint: e.Hint, Admin: e.Admin, Downstream: e.Downstream, StoreSvid: e.StoreSVID,
		FederatesWith: e.FederatesWith, DnsNames: e.DNSNames, ExpiresAt: e.ExpiresAt,
	}
	for _, s := range e.Selectors {
		kind, value, _ := strings.Cut(s, ":")
		out.Selectors = append(out.Selectors, &types.Selector{Type: kind, Value: value})
	}
	return out
}

func fromAPI(e *types.Entry) Entry {
	out := Entry{
		ID: e.Id, SPIFFEID: fromSPIFFEID(e.SpiffeId), ParentID: fromSPIFFEID(e.ParentId),
		X509SVIDTTL: e.X509SvidTtl, JWTSVIDTTL: e.JwtSvidTtl, Hint: e.Hint, Admin: e.Admin,
		Downstream: e.Downstream, StoreSVID: e.StoreSvid, FederatesWith: e.FederatesWith,
		DNSNames: e.DnsNames, ExpiresAt: e.ExpiresAt,
	}
	for _, s := range e.Selectors {
		out.Selectors = append(out.Selectors, s.Type+":"+s.Value)
	}
	return out
}

func toSPIFFEID(id string) (*types.SPIFFEID, error) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return nil, fmt.Errorf("%q is not a SPIFFE ID", id)
	}
	td, path, _ := strings.Cut(rest, "/")
	if path != "" {
		path = "/" + path
	}
	return &types.SPIFFEID{TrustDomain: td, Path: path}, nil
}

func fromSPIFFEID(id *types.SPIFFEID) string {
	if id == nil {
		return ""
	}
	return "spiffe://" + id.TrustDomain + id.Path
}
