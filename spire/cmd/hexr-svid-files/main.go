// hexr-svid-files keeps a process's X.509-SVID, JWT-SVID and bundles in files, fresh, for programs
// that read files (TLS code that reloads PEM files, stock SDKs' token files). See spire/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	socket  string
	paths   Paths
	aud     []string
	once    bool
	timeout time.Duration
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	logger := log.New(os.Stderr, "hexr-svid-files: ", log.LstdFlags|log.Lmsgprefix)
	opts, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		logger.Print(err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(opts.socket))
	if err != nil {
		logger.Printf("Workload API at %s: %v", opts.socket, err)
		return exitError
	}
	defer client.Close()
	keeper := &Keeper{Source: client, Paths: opts.paths, Audiences: opts.aud, Log: logger, Quiet: opts.once}
	if err := keeper.Run(ctx, opts.once, opts.timeout); err != nil {
		logger.Print(err)
		return exitError
	}
	return exitOK
}

func parseFlags(args []string) (options, error) {
	var o options
	var aud listFlag
	fs := flag.NewFlagSet("hexr-svid-files", flag.ContinueOnError)
	fs.StringVar(&o.socket, "workload-socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "the SPIRE Agent's Workload API: unix:///path or /path (default $SPIFFE_ENDPOINT_SOCKET)")
	fs.StringVar(&o.paths.X509Cert, "x509-cert", "", "write the X.509-SVID's certificate chain here (PEM; with -x509-key)")
	fs.StringVar(&o.paths.X509Key, "x509-key", "", "write the X.509-SVID's private key here (PKCS#8 PEM, mode 0600; with -x509-cert)")
	fs.StringVar(&o.paths.X509Bundle, "x509-bundle", "", "write the X.509 bundle of the SVID's trust domain here (PEM)")
	fs.StringVar(&o.paths.JWTFile, "jwt-file", "", "write a JWT-SVID here (the token alone, mode 0600; with -jwt-audience)")
	fs.Var(&aud, "jwt-audience", "the JWT-SVID's audience (repeatable: the first is the audience, the others extra ones)")
	fs.StringVar(&o.paths.JWTBundle, "jwt-bundle", "", "write the JWT bundle of the SVID's trust domain here (JWKS JSON)")
	fs.BoolVar(&o.once, "once", false, "write every file once, then exit (1 if that takes longer than -timeout)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "with -once: how long to wait for the SVIDs")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.aud = aud
	p := o.paths
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.socket == "":
		return o, errors.New("-workload-socket is required (or SPIFFE_ENDPOINT_SOCKET)")
	case (p.X509Cert == "") != (p.X509Key == ""):
		return o, errors.New("-x509-cert and -x509-key go together")
	case p.JWTFile != "" && len(o.aud) == 0:
		return o, errors.New("-jwt-file needs -jwt-audience")
	case p.JWTFile == "" && len(o.aud) > 0:
		return o, errors.New("-jwt-audience without -jwt-file")
	case p == Paths{}:
		return o, errors.New("nothing to write: give -x509-cert/-x509-key, -x509-bundle, -jwt-file or -jwt-bundle")
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	}
	for _, a := range o.aud {
		if a == "" {
			return o, errors.New("-jwt-audience must not be empty")
		}
	}
	if !strings.Contains(o.socket, "://") {
		o.socket = "unix://" + o.socket
	}
	return o, o.paths.checkDirs()
}
