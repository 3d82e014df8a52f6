// hexr-registrar turns the process contexts `hexr build` writes (one JSON file per agent role) into
// SPIRE registration entries, keeps them in step, revokes the identities it removes and renders the
// roles' grants for OPA. See spire/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// reconcileTimeout bounds one pass (listing, batches, revocations with their retries).
	reconcileTimeout = 2 * time.Minute
)

type options struct {
	serverSocket   string
	parentID       string
	contextDirs    []string
	x509TTL        time.Duration
	jwtTTL         time.Duration
	opaData        string
	revokeURL      string
	workloadSocket string
	revokeAudience string
	watch          time.Duration
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	logger := log.New(os.Stderr, "hexr-registrar: ", log.LstdFlags|log.Lmsgprefix)
	opts, settings, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		logger.Print(err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	server, err := dialServer(opts.serverSocket)
	if err != nil {
		logger.Print(err)
		return exitError
	}
	defer server.Close()
	reg := &Registrar{API: server, Settings: settings, Log: logger}
	if opts.revokeURL != "" {
		reg.Revoker = newRevoker(opts.revokeURL, workloadToken(opts.workloadSocket, opts.revokeAudience))
	}
	loader := &Loader{Dirs: opts.contextDirs, TrustDomain: trustDomainOf(settings.ParentID)[len("spiffe://"):]}
	if opts.watch > 0 {
		watch(ctx, opts, loader, reg, logger)
		return exitOK
	}
	return once(ctx, opts, loader, reg, logger)
}

// once reconciles one time: nothing changes when a context is bad.
func once(ctx context.Context, opts options, loader *Loader, reg *Registrar, logger *log.Logger) int {
	contexts, problems, _ := loader.Load()
	if len(problems) > 0 {
		for _, p := range problems {
			logger.Print(p)
		}
		logger.Printf("%d problem(s) in the process contexts: nothing changed", len(problems))
		return exitUsage
	}
	if opts.opaData != "" {
		if err := writeOPAData(opts.opaData, contexts, logger); err != nil {
			logger.Print(err)
			return exitError
		}
	}
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	if err := reg.Reconcile(ctx, contexts, true); err != nil {
		logger.Print(err)
		return exitError
	}
	return exitOK
}

// writeOPAData writes the grants first: a grant without an identity grants nothing, and a role's
// grants are gone before its entry is deleted.
func writeOPAData(path string, contexts []ProcessContext, logger *log.Logger) error {
	wrote, err := WriteOPAData(path, contexts)
	if err != nil {
		return fmt.Errorf("OPA data: %w", err)
	}
	if wrote {
		logger.Printf("wrote %s (roles: %d)", path, len(contexts))
	}
	return nil
}

func parseFlags(args []string) (options, Settings, error) {
	var o options
	var dirs listFlag
	fs := flag.NewFlagSet("hexr-registrar", flag.ContinueOnError)
	fs.StringVar(&o.serverSocket, "server-socket", "", "the SPIRE Server API's unix socket (its socket_path) (required)")
	fs.StringVar(&o.parentID, "parent-id", "", "the parent ID of the entries (the node's SPIFFE ID, e.g. spiffe://hexr.local/node/pod-a) (required)")
	fs.Var(&dirs, "contexts", "a directory of process-context *.json files (repeatable; at least one)")
	fs.DurationVar(&o.x509TTL, "x509-svid-ttl", time.Hour, "X.509-SVID lifetime of the entries (0: the server's default)")
	fs.DurationVar(&o.jwtTTL, "jwt-svid-ttl", 5*time.Minute, "JWT-SVID lifetime of the entries (0: the server's default)")
	fs.StringVar(&o.opaData, "opa-data", "", "write the roles' grants to this OPA data file (hexr.registered)")
	fs.StringVar(&o.revokeURL, "revoke-url", "", "a Hexr sidecar's revocation URL: revoke each identity whose entry is deleted")
	fs.StringVar(&o.workloadSocket, "workload-socket", "", "the SPIRE Agent's Workload API (unix:///path or /path) for the registrar's JWT-SVID (required with -revoke-url)")
	fs.StringVar(&o.revokeAudience, "revoke-audience", "hexr-credential-injector", "audience of the registrar's JWT-SVID for -revoke-url")
	fs.DurationVar(&o.watch, "watch", 0, "keep running: reconcile at this interval and when a context directory changes (0: once, then exit)")
	if err := fs.Parse(args); err != nil {
		return o, Settings{}, err
	}
	o.contextDirs = dirs
	switch {
	case fs.NArg() > 0:
		return o, Settings{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.serverSocket == "":
		return o, Settings{}, errors.New("-server-socket is required")
	case len(o.contextDirs) == 0:
		return o, Settings{}, errors.New("-contexts is required")
	case o.watch < 0:
		return o, Settings{}, errors.New("-watch must not be negative")
	case o.revokeURL != "" && o.workloadSocket == "":
		return o, Settings{}, errors.New("-revoke-url needs -workload-socket (the registrar's own JWT-SVID authenticates the revocation)")
	case o.revokeURL != "" && !strings.HasPrefix(o.revokeURL, "http://") && !strings.HasPrefix(o.revokeURL, "https://"):
		return o, Settings{}, fmt.Errorf("-revoke-url %q is not an http(s) URL", o.revokeURL)
	}
	if o.workloadSocket != "" && !strings.Contains(o.workloadSocket, "://") {
		o.workloadSocket = "unix://" + o.workloadSocket
	}
	parent, err := spiffeid.FromString(o.parentID)
	if err != nil || parent.Path() == "" || !isTrustDomain(parent.TrustDomain().Name()) {
		return o, Settings{}, fmt.Errorf("-parent-id %q must be a SPIFFE ID with a path, e.g. spiffe://hexr.local/node/pod-a", o.parentID)
	}
	x509TTL, err := ttlSeconds("-x509-svid-ttl", o.x509TTL)
	if err != nil {
		return o, Settings{}, err
	}
	jwtTTL, err := ttlSeconds("-jwt-svid-ttl", o.jwtTTL)
	if err != nil {
		return o, Settings{}, err
	}
	return o, Settings{ParentID: parent.String(), X509SVIDTTL: x509TTL, JWTSVIDTTL: jwtTTL}, nil
}

func ttlSeconds(name string, d time.Duration) (int32, error) {
	if d < 0 || d%time.Second != 0 || d/time.Second > math.MaxInt32 {
		return 0, fmt.Errorf("%s %v must be a whole number of seconds, 0 or more", name, d)
	}
	return int32(d / time.Second), nil
}
