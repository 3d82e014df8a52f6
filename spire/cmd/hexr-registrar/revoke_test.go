package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var fastRetries = RetryPolicy{Attempts: 4, Initial: time.Millisecond, Max: 4 * time.Millisecond}

func testRevoker(url string) *Revoker {
	r := newRevoker(url, func(context.Context) (string, error) { return "the.jwt.svid", nil })
	r.Policy = fastRetries
	return r
}

// door answers with statuses in turn (the last one from then on), checking each request.
func door(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1))
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/revoke" || r.Header.Get("content-type") != "application/json" ||
			r.Header.Get("authorization") != "Bearer the.jwt.svid" || string(body) != `{"spiffe_id":"`+agentID("gone")+`"}` {
			t.Errorf("unexpected request %s %s %v %s", r.Method, r.URL, r.Header, body)
		}
		w.WriteHeader(statuses[min(n, len(statuses))-1])
		io.WriteString(w, `{"type":"x","message":"y"}`)
	}))
	t.Cleanup(server.Close)
	return server, &calls
}

func TestRevokeRetriesServerErrorsUntil200(t *testing.T) {
	server, calls := door(t, 503, 502, 200)
	if err := testRevoker(server.URL+"/revoke").Revoke(context.Background(), agentID("gone")); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls", calls.Load())
	}
}

func TestRevokeDoesNotRetryA4xx(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404} {
		server, calls := door(t, status)
		err := testRevoker(server.URL+"/revoke").Revoke(context.Background(), agentID("gone"))
		var revokeErr *RevokeError
		if !errors.As(err, &revokeErr) || !revokeErr.Permanent || calls.Load() != 1 {
			t.Fatalf("%d: %v after %d calls", status, err, calls.Load())
		}
		if strings.Contains(err.Error(), "the.jwt.svid") {
			t.Fatalf("the error shows the token: %v", err)
		}
	}
}

func TestRevokeRetries429AndGivesUpAfterTheAttempts(t *testing.T) {
	server, calls := door(t, 429, 500)
	err := testRevoker(server.URL+"/revoke").Revoke(context.Background(), agentID("gone"))
	var revokeErr *RevokeError
	if !errors.As(err, &revokeErr) || revokeErr.Permanent || calls.Load() != 4 {
		t.Fatalf("%v after %d calls", err, calls.Load())
	}
}

func TestRevokeRetriesConnectionErrorsAndTokenErrors(t *testing.T) {
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "http://" + listener.Addr().String() + "/revoke"
	listener.Close() // nothing listens there now
	err := testRevoker(url).Revoke(context.Background(), agentID("gone"))
	var revokeErr *RevokeError
	if !errors.As(err, &revokeErr) || revokeErr.Permanent || !strings.Contains(err.Error(), "after 4 attempts") {
		t.Fatalf("%v", err)
	}

	server, calls := door(t, 200)
	var fetches atomic.Int32
	r := testRevoker(server.URL + "/revoke")
	r.Token = func(context.Context) (string, error) {
		if fetches.Add(1) < 3 {
			return "", errors.New("workload API unavailable")
		}
		return "the.jwt.svid", nil
	}
	if err := r.Revoke(context.Background(), agentID("gone")); err != nil || calls.Load() != 1 || fetches.Load() != 3 {
		t.Fatalf("%v, %d calls, %d token fetches", err, calls.Load(), fetches.Load())
	}
}

func TestRevokeStopsWhenCancelled(t *testing.T) {
	server, _ := door(t, 503)
	r := testRevoker(server.URL + "/revoke")
	r.Policy = RetryPolicy{Attempts: 100, Initial: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := r.Revoke(ctx, agentID("gone")); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
}

func TestRetryPolicyDelays(t *testing.T) {
	p := RetryPolicy{Attempts: 6, Initial: 250 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for attempt := 1; attempt <= 5; attempt++ {
		got = append(got, p.Delay(attempt))
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	for status, retry := range map[int]bool{500: true, 502: true, 503: true, 504: true, 429: true, 400: false, 401: false, 403: false, 404: false, 302: false} {
		if Retryable(status) != retry {
			t.Errorf("Retryable(%d) = %v", status, !retry)
		}
	}
}
