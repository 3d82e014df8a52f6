package main

// Keeping the files fresh: the X.509 context and the JWT bundles as the Workload API pushes them,
// the JWT-SVID fetched again at half its remaining lifetime.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Source is the Workload API as used here: a *workloadapi.Client, or a fake in the tests.
type Source interface {
	WatchX509Context(ctx context.Context, watcher workloadapi.X509ContextWatcher) error
	WatchJWTBundles(ctx context.Context, watcher workloadapi.JWTBundleWatcher) error
	FetchJWTSVID(ctx context.Context, params jwtsvid.Params) (*jwtsvid.SVID, error)
}

const (
	minRefresh = time.Second
	maxBackoff = 30 * time.Second
)

// Keeper writes Paths from Source. The X.509 context is always watched: its SVID names the
// process's trust domain (whose JWT bundle is written) and tells whether the process is registered.
type Keeper struct {
	Source    Source
	Paths     Paths
	Audiences []string // the JWT-SVID's: the first is its audience, the rest extra ones
	Log       *log.Logger
	Quiet     bool // -once: problems go into the final error, not the log

	mu          sync.Mutex
	trustDomain spiffeid.TrustDomain
	jwtBundles  *jwtbundle.Set
	problems    map[string]string
	ready       map[string]chan struct{}
}

// Run keeps the files fresh until ctx ends (once false), or until every file was written once
// (once true: an error if that takes longer than timeout).
func (k *Keeper) Run(ctx context.Context, once bool, timeout time.Duration) error {
	k.problems = map[string]string{}
	k.ready = map[string]chan struct{}{"x509": make(chan struct{})}
	if k.Paths.JWTFile != "" {
		k.ready["jwt"] = make(chan struct{})
	}
	if k.Paths.JWTBundle != "" {
		k.ready["jwt-bundle"] = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // no write is cut short by the exit
	defer cancel()
	start := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	start(func(ctx context.Context) {
		k.keepWatching(ctx, "x509", func(ctx context.Context) error { return k.Source.WatchX509Context(ctx, x509Watcher{k}) })
	})
	if k.Paths.JWTFile != "" {
		start(k.refreshJWT)
	}
	if k.Paths.JWTBundle != "" {
		start(func(ctx context.Context) {
			k.keepWatching(ctx, "jwt-bundle", func(ctx context.Context) error { return k.Source.WatchJWTBundles(ctx, jwtBundleWatcher{k}) })
		})
	}
	if !once {
		<-ctx.Done()
		return nil
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, what := range []string{"x509", "jwt", "jwt-bundle"} {
		ch, wanted := k.ready[what]
		if !wanted {
			continue
		}
		select {
		case <-ch:
		case <-deadline.C:
			return k.timeoutError(timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// keepWatching runs a watch (which retries by itself) again if it ever returns before ctx ends.
func (k *Keeper) keepWatching(ctx context.Context, what string, watch func(context.Context) error) {
	backoff := minRefresh
	for ctx.Err() == nil {
		if err := watch(ctx); err != nil && ctx.Err() == nil {
			k.problem(what, err)
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

type x509Watcher struct{ k *Keeper }

func (w x509Watcher) OnX509ContextUpdate(x *workloadapi.X509Context) { w.k.onX509(x) }
func (w x509Watcher) OnX509ContextWatchError(err error)              { w.k.problem("x509", err) }

type jwtBundleWatcher struct{ k *Keeper }

func (w jwtBundleWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) { w.k.onJWTBundles(set) }
func (w jwtBundleWatcher) OnJWTBundlesWatchError(err error)      { w.k.problem("jwt-bundle", err) }

func (k *Keeper) onX509(x *workloadapi.X509Context) {
	changes, err := k.Paths.WriteX509(x)
	if err != nil {
		k.problem("x509", err)
		return
	}
	svid := x.DefaultSVID()
	if changes.SVID {
		k.Log.Printf("X.509-SVID %s written (serial %x, expires %s)", svid.ID, svid.Certificates[0].SerialNumber, svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339))
	}
	if changes.Bundle {
		k.Log.Printf("X.509 bundle of %s written", svid.ID.TrustDomain())
	}
	k.mu.Lock()
	k.trustDomain = svid.ID.TrustDomain()
	k.mu.Unlock()
	k.done("x509")
	k.writeJWTBundle() // its trust domain may just have become known
}

func (k *Keeper) onJWTBundles(set *jwtbundle.Set) {
	k.mu.Lock()
	k.jwtBundles = set
	k.mu.Unlock()
	k.writeJWTBundle()
}

func (k *Keeper) writeJWTBundle() {
	if k.Paths.JWTBundle == "" {
		return
	}
	k.mu.Lock()
	set, td := k.jwtBundles, k.trustDomain
	k.mu.Unlock()
	if set == nil || td.IsZero() {
		return
	}
	changed, err := k.Paths.WriteJWTBundle(set, td)
	if err != nil {
		k.problem("jwt-bundle", err)
		return
	}
	if changed {
		k.Log.Printf("JWT bundle of %s written", td)
	}
	k.done("jwt-bundle")
}

// refreshJWT fetches the JWT-SVID, writes it, and fetches again at half its remaining lifetime.
func (k *Keeper) refreshJWT(ctx context.Context) {
	params := jwtsvid.Params{Audience: k.Audiences[0], ExtraAudiences: k.Audiences[1:]}
	backoff := minRefresh
	for {
		wait := backoff
		svid, err := k.Source.FetchJWTSVID(ctx, params)
		if err == nil {
			var changed bool
			if changed, err = k.Paths.WriteJWT(svid); err == nil {
				if changed {
					k.Log.Printf("JWT-SVID %s for %s written (expires %s)", svid.ID, strings.Join(k.Audiences, ","), svid.Expiry.UTC().Format(time.RFC3339))
				}
				k.done("jwt")
				backoff, wait = minRefresh, RefreshDelay(time.Now(), svid.Expiry)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			k.problem("jwt", err)
			backoff = min(2*backoff, maxBackoff)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// RefreshDelay is half the time left before expiry (at least a second).
func RefreshDelay(now, expiry time.Time) time.Duration {
	return max(expiry.Sub(now)/2, minRefresh)
}

func (k *Keeper) done(what string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.problems, what)
	if ch, ok := k.ready[what]; ok {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
}

// problem logs an error once while it lasts (never a token or a key: errors do not carry them).
func (k *Keeper) problem(what string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.problems[what] == err.Error() {
		return
	}
	k.problems[what] = err.Error()
	if !k.Quiet {
		k.Log.Printf("%s: %v", what, err)
	}
}

func (k *Keeper) timeoutError(timeout time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var missing []error
	why := func(what string) string {
		if p := k.problems[what]; p != "" {
			return " (" + p + ")"
		}
		return ""
	}
	isReady := func(what string) bool {
		select {
		case <-k.ready[what]:
			return true
		default:
			return false
		}
	}
	if !isReady("x509") {
		missing = append(missing, fmt.Errorf("no X.509-SVID for this process: is it registered?%s", why("x509")))
	}
	if _, wanted := k.ready["jwt"]; wanted && !isReady("jwt") {
		missing = append(missing, fmt.Errorf("no JWT-SVID for audience %s%s", strings.Join(k.Audiences, ","), why("jwt")))
	}
	if _, wanted := k.ready["jwt-bundle"]; wanted && !isReady("jwt-bundle") {
		missing = append(missing, fmt.Errorf("no JWT bundle for this process's trust domain%s", why("jwt-bundle")))
	}
	return fmt.Errorf("after %v: %w", timeout, errors.Join(missing...))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
