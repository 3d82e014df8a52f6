package main

// Revoking a deleted identity at a Hexr sidecar's revocation door: the JWT-SVIDs SPIRE already
// issued to it stay valid until they expire, and so do the cloud credentials cached for it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// TokenSource returns the registrar's own JWT-SVID (the revocation door's admin credential).
type TokenSource func(ctx context.Context) (string, error)

// workloadToken fetches a JWT-SVID for audience from the Workload API at addr, each time: it is
// short-lived and revocations are rare.
func workloadToken(addr, audience string) TokenSource {
	return func(ctx context.Context) (string, error) {
		svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience}, workloadapi.WithAddr(addr))
		if err != nil {
			return "", fmt.Errorf("the registrar's JWT-SVID (audience %s) from %s: %w", audience, addr, err)
		}
		return svid.Marshal(), nil
	}
}

// RetryPolicy: attempts in all, waiting Initial, then twice as long each time up to Max.
type RetryPolicy struct {
	Attempts int
	Initial  time.Duration
	Max      time.Duration
}

var defaultRetryPolicy = RetryPolicy{Attempts: 6, Initial: 250 * time.Millisecond, Max: 5 * time.Second}

// Delay is the wait before attempt number attempt+1 (attempt counts from 1).
func (p RetryPolicy) Delay(attempt int) time.Duration {
	d := p.Initial
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// RevokeError is a revocation that did not happen. Permanent ones (the door refused: 4xx) are not
// worth trying again; the others (5xx, no connection, no token) are.
type RevokeError struct {
	SPIFFEID  string
	Permanent bool
	Err       error
}

func (e *RevokeError) Error() string {
	return fmt.Sprintf("revoke %s: %v", e.SPIFFEID, e.Err)
}

func (e *RevokeError) Unwrap() error { return e.Err }

// Revoker posts {"spiffe_id": ...} to the revocation URL as the registrar.
type Revoker struct {
	URL    string
	Token  TokenSource
	Client *http.Client
	Policy RetryPolicy
}

func newRevoker(url string, token TokenSource) *Revoker {
	client := &http.Client{
		Timeout: 10 * time.Second,
		// A redirect would carry the token elsewhere: answer with it instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Revoker{URL: url, Token: token, Client: client, Policy: defaultRetryPolicy}
}

// Revoke revokes one SPIFFE ID, trying again on a 5xx, a 429 or a failed connection.
func (r *Revoker) Revoke(ctx context.Context, spiffeID string) error {
	var last error
	for attempt := 1; ; attempt++ {
		retry, err := r.once(ctx, spiffeID)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			return &RevokeError{SPIFFEID: spiffeID, Permanent: true, Err: err}
		}
		if attempt >= r.Policy.Attempts {
			return &RevokeError{SPIFFEID: spiffeID, Err: fmt.Errorf("%w (after %d attempts)", last, attempt)}
		}
		select {
		case <-ctx.Done():
			return &RevokeError{SPIFFEID: spiffeID, Err: errors.Join(last, ctx.Err())}
		case <-time.After(r.Policy.Delay(attempt)):
		}
	}
}

// once makes one attempt: it returns whether a failure is worth another attempt.
func (r *Revoker) once(ctx context.Context, spiffeID string) (retry bool, err error) {
	token, err := r.Token(ctx)
	if err != nil {
		return true, err
	}
	body, _ := json.Marshal(map[string]string{"spiffe_id": spiffeID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("authorization", "Bearer "+token)
	resp, err := r.Client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return false, nil
	}
	return Retryable(resp.StatusCode), fmt.Errorf("%s answered %d %s", r.URL, resp.StatusCode, strings.TrimSpace(string(answer)))
}

// Retryable tells which answers of the door may go away by themselves: 5xx and 429.
func Retryable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests
}
