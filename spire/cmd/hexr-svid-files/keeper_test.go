package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	td = spiffeid.RequireTrustDomainFromString("hexr.local")
	id = spiffeid.RequireFromString("spiffe://hexr.local/agent/acme-corp/content-crew/researcher")
)

// authority is a CA that issues X.509-SVIDs and signs JWT-SVIDs.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newAuthority(t *testing.T) *authority {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, URIs: []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &authority{cert: cert, key: key}
}

func (a *authority) x509Context(t *testing.T, serial int64) *workloadapi.X509Context {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, URIs: []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	svid := &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf}, PrivateKey: key}
	return &workloadapi.X509Context{SVIDs: []*x509svid.SVID{svid}, Bundles: x509bundle.NewSet(x509bundle.FromX509Authorities(td, []*x509.Certificate{a.cert}))}
}

func (a *authority) jwtSVID(t *testing.T, audience string, lifetime time.Duration) *jwtsvid.SVID {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: a.key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.Claims{Subject: id.String(), Audience: jwt.Audience{audience}, Expiry: jwt.NewNumericDate(time.Now().Add(lifetime)), IssuedAt: jwt.NewNumericDate(time.Now())}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	svid, err := jwtsvid.ParseInsecure(token, []string{audience})
	if err != nil {
		t.Fatal(err)
	}
	return svid
}

func (a *authority) jwtBundles() *jwtbundle.Set {
	return jwtbundle.NewSet(jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k1": &a.key.PublicKey}))
}

// fakeSource pushes what its channels receive, as the Workload API would.
type fakeSource struct {
	x509       chan *workloadapi.X509Context
	x509Err    error
	bundles    chan *jwtbundle.Set
	jwt        func() (*jwtsvid.SVID, error)
	jwtFetches atomic.Int32
}

func (f *fakeSource) WatchX509Context(ctx context.Context, w workloadapi.X509ContextWatcher) error {
	if f.x509Err != nil {
		w.OnX509ContextWatchError(f.x509Err)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case x := <-f.x509:
			w.OnX509ContextUpdate(x)
		}
	}
}

func (f *fakeSource) WatchJWTBundles(ctx context.Context, w workloadapi.JWTBundleWatcher) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case set := <-f.bundles:
			w.OnJWTBundlesUpdate(set)
		}
	}
}

func (f *fakeSource) FetchJWTSVID(ctx context.Context, params jwtsvid.Params) (*jwtsvid.SVID, error) {
	f.jwtFetches.Add(1)
	return f.jwt()
}

func allPaths(dir string) Paths {
	return Paths{
		X509Cert: filepath.Join(dir, "svid.pem"), X509Key: filepath.Join(dir, "svid-key.pem"), X509Bundle: filepath.Join(dir, "bundle.pem"),
		JWTFile: filepath.Join(dir, "token.jwt"), JWTBundle: filepath.Join(dir, "jwt-bundle.json"),
	}
}

// syncBuffer is a log destination the test reads while the keeper writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mode(t *testing.T, path string) os.FileMode {
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestOnceWritesEveryFile(t *testing.T) {
	ca := newAuthority(t)
	dir := t.TempDir()
	jwt := ca.jwtSVID(t, "hexr-credential-injector", 5*time.Minute)
	source := &fakeSource{x509: make(chan *workloadapi.X509Context, 1), bundles: make(chan *jwtbundle.Set, 1), jwt: func() (*jwtsvid.SVID, error) { return jwt, nil }}
	source.x509 <- ca.x509Context(t, 100)
	source.bundles <- ca.jwtBundles()
	var logs syncBuffer
	k := &Keeper{Source: source, Paths: allPaths(dir), Audiences: []string{"hexr-credential-injector"}, Log: log.New(&logs, "", 0), Quiet: true}
	if err := k.Run(context.Background(), true, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p := allPaths(dir)
	certs, _ := os.ReadFile(p.X509Cert)
	block, _ := pem.Decode(certs)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil || leaf.URIs[0].String() != id.String() || leaf.SerialNumber.Int64() != 100 {
		t.Fatalf("certificate: %v %v", err, leaf)
	}
	keyPEM, _ := os.ReadFile(p.X509Key)
	block, _ = pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key is not PKCS#8 PEM: %q", keyPEM)
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Fatal(err)
	}
	bundle, _ := os.ReadFile(p.X509Bundle)
	if block, _ := pem.Decode(bundle); block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("bundle: %q", bundle)
	}
	if token, _ := os.ReadFile(p.JWTFile); string(token) != jwt.Marshal() {
		t.Fatalf("token file holds %q", token)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	raw, _ := os.ReadFile(p.JWTBundle)
	if err := json.Unmarshal(raw, &jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != "k1" || jwks.Keys[0]["kty"] != "EC" {
		t.Fatalf("JWT bundle %s: %v", raw, err)
	}
	for path, want := range map[string]os.FileMode{p.X509Cert: 0o644, p.X509Key: 0o600, p.X509Bundle: 0o644, p.JWTFile: 0o600, p.JWTBundle: 0o644} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 5 {
		t.Fatalf("%d files in the directory (temporary files left?)", len(entries))
	}
	if strings.Contains(logs.String(), jwt.Marshal()) || strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Fatal("the log shows a secret")
	}
}

func TestOnceFailsClearlyWhenNotRegistered(t *testing.T) {
	source := &fakeSource{x509: make(chan *workloadapi.X509Context), x509Err: status.Error(codes.PermissionDenied, "no identity issued")}
	k := &Keeper{Source: source, Paths: Paths{X509Bundle: filepath.Join(t.TempDir(), "b.pem")}, Log: log.New(io.Discard, "", 0), Quiet: true}
	err := k.Run(context.Background(), true, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no X.509-SVID for this process: is it registered?") || !strings.Contains(err.Error(), "no identity issued") {
		t.Fatalf("%v", err)
	}
}

func TestOnceNamesAMissingJWTSVID(t *testing.T) {
	ca := newAuthority(t)
	source := &fakeSource{x509: make(chan *workloadapi.X509Context, 1), jwt: func() (*jwtsvid.SVID, error) {
		return nil, status.Error(codes.PermissionDenied, "no identity issued")
	}}
	source.x509 <- ca.x509Context(t, 1)
	k := &Keeper{Source: source, Paths: Paths{JWTFile: filepath.Join(t.TempDir(), "t.jwt")}, Audiences: []string{"aud"}, Log: log.New(io.Discard, "", 0), Quiet: true}
	err := k.Run(context.Background(), true, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no JWT-SVID for audience aud") || strings.Contains(err.Error(), "X.509") {
		t.Fatalf("%v", err)
	}
}

// Running: each rotation replaces the files atomically, with one log line.
func TestRotationReplacesTheFiles(t *testing.T) {
	ca := newAuthority(t)
	dir := t.TempDir()
	source := &fakeSource{x509: make(chan *workloadapi.X509Context), bundles: make(chan *jwtbundle.Set)}
	p := Paths{X509Cert: filepath.Join(dir, "svid.pem"), X509Key: filepath.Join(dir, "svid-key.pem"), X509Bundle: filepath.Join(dir, "bundle.pem")}
	var logs syncBuffer
	k := &Keeper{Source: source, Paths: p, Log: log.New(&logs, "", 0)}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan error)
	go func() { finished <- k.Run(ctx, false, 0) }()

	source.x509 <- ca.x509Context(t, 1)
	waitFor(t, func() bool { return strings.Count(logs.String(), "X.509-SVID") == 1 })
	oldKey, err := os.Open(p.X509Key)
	if err != nil {
		t.Fatal(err)
	}
	defer oldKey.Close()
	firstKey, _ := os.ReadFile(p.X509Key)
	source.x509 <- ca.x509Context(t, 2)
	waitFor(t, func() bool { return strings.Count(logs.String(), "X.509-SVID") == 2 })
	if still, _ := io.ReadAll(oldKey); string(still) != string(firstKey) {
		t.Fatal("a reader of the old key saw it change under it")
	}
	if newKey, _ := os.ReadFile(p.X509Key); string(newKey) == string(firstKey) || mode(t, p.X509Key) != 0o600 {
		t.Fatal("the key was not replaced with mode 0600")
	}
	if strings.Count(logs.String(), "X.509 bundle of hexr.local written") != 1 {
		t.Fatalf("the unchanged bundle was logged again:\n%s", logs.String())
	}
	cancel()
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Fatal("the log shows the key")
	}
}

func TestJWTSVIDIsFetchedAgainBeforeItExpires(t *testing.T) {
	ca := newAuthority(t)
	dir := t.TempDir()
	source := &fakeSource{x509: make(chan *workloadapi.X509Context), jwt: func() (*jwtsvid.SVID, error) {
		return ca.jwtSVID(t, "aud", 2*time.Second), nil // refreshed after about a second
	}}
	var logs syncBuffer
	k := &Keeper{Source: source, Paths: Paths{JWTFile: filepath.Join(dir, "t.jwt")}, Audiences: []string{"aud"}, Log: log.New(&logs, "", 0)}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan error)
	go func() { finished <- k.Run(ctx, false, 0) }()
	waitFor(t, func() bool { return source.jwtFetches.Load() >= 2 })
	cancel()
	<-finished
	token, _ := os.ReadFile(filepath.Join(dir, "t.jwt"))
	if strings.Contains(logs.String(), string(token)) || mode(t, filepath.Join(dir, "t.jwt")) != 0o600 {
		t.Fatalf("token logged or readable by others:\n%s", logs.String())
	}
}

func TestRefreshDelay(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		left, want time.Duration
	}{{5 * time.Minute, 150 * time.Second}, {time.Hour, 30 * time.Minute}, {time.Second, time.Second}, {-time.Minute, time.Second}} {
		if got := RefreshDelay(now, now.Add(tc.left)); got != tc.want {
			t.Errorf("RefreshDelay(%v left) = %v, want %v", tc.left, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	ok := [][]string{
		{"-workload-socket", "/run/agent.sock", "-x509-cert", dir + "/c", "-x509-key", dir + "/k"},
		{"-workload-socket", "unix:///run/agent.sock", "-jwt-file", dir + "/t", "-jwt-audience", "a", "-jwt-audience", "b", "-once"},
		{"-workload-socket", "/s", "-jwt-bundle", dir + "/b.json"},
	}
	for _, args := range ok {
		o, err := parseFlags(args)
		if err != nil || !strings.HasPrefix(o.socket, "unix:///") {
			t.Errorf("%v: %v %q", args, err, o.socket)
		}
	}
	bad := [][]string{
		{"-x509-bundle", dir + "/b"},                         // no socket (and no SPIFFE_ENDPOINT_SOCKET in tests)
		{"-workload-socket", "/s"},                           // nothing to write
		{"-workload-socket", "/s", "-x509-cert", dir + "/c"}, // no key
		{"-workload-socket", "/s", "-jwt-file", dir + "/t"},  // no audience
		{"-workload-socket", "/s", "-jwt-audience", "a", "-x509-bundle", dir + "/b"},
		{"-workload-socket", "/s", "-x509-bundle", dir + "/missing/b.pem"},
		{"-workload-socket", "/s", "-x509-bundle", dir + "/b", "extra"},
	}
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	for _, args := range bad {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
