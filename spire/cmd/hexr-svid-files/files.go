package main

// Writing SVIDs and bundles to files: each write atomic (a temporary file in the same directory,
// then a rename), keys and tokens readable by the owner only.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hexr-dev/hexr/spire/internal/atomicfile"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

const (
	publicMode = 0o644 // certificates and bundles
	secretMode = 0o600 // the private key and the token
)

// Paths are the files to keep fresh; an empty path is not written.
type Paths struct {
	X509Cert   string // the X.509-SVID's certificate chain, PEM, leaf first
	X509Key    string // its private key, PKCS#8 PEM
	X509Bundle string // the X.509 bundle of the SVID's trust domain, PEM
	JWTFile    string // the JWT-SVID, the token alone (no newline)
	JWTBundle  string // the JWT bundle of the SVID's trust domain, a JWKS ({"keys": [...]})
}

// Changes says what a write changed, for the one log line per rotation.
type Changes struct {
	SVID, Bundle bool
}

// WriteX509 writes the default (first) X.509-SVID of the context and its trust domain's bundle.
// The bundle goes first, then the key, then the certificate: a reader that sees the new
// certificate already finds the CA and the key it needs.
func (p Paths) WriteX509(x *workloadapi.X509Context) (Changes, error) {
	var changes Changes
	svid := x.DefaultSVID()
	if svid == nil {
		return changes, errors.New("the Workload API sent no X.509-SVID")
	}
	if p.X509Bundle != "" {
		bundle, err := x.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
		if err != nil {
			return changes, fmt.Errorf("X.509 bundle of %s: %w", svid.ID.TrustDomain(), err)
		}
		pem, err := bundle.Marshal()
		if err != nil {
			return changes, fmt.Errorf("X.509 bundle of %s: %w", svid.ID.TrustDomain(), err)
		}
		if changes.Bundle, err = atomicfile.WriteIfChanged(p.X509Bundle, pem, publicMode); err != nil {
			return changes, err
		}
	}
	if p.X509Cert == "" {
		return changes, nil
	}
	certs, key, err := svid.Marshal()
	if err != nil {
		return changes, fmt.Errorf("X.509-SVID %s: %w", svid.ID, err)
	}
	keyChanged, err := atomicfile.WriteIfChanged(p.X509Key, key, secretMode)
	if err != nil {
		return changes, err
	}
	certChanged, err := atomicfile.WriteIfChanged(p.X509Cert, certs, publicMode)
	changes.SVID = keyChanged || certChanged
	return changes, err
}

// WriteJWT writes the token alone, as stock SDKs' token files expect it.
func (p Paths) WriteJWT(svid *jwtsvid.SVID) (bool, error) {
	return atomicfile.WriteIfChanged(p.JWTFile, []byte(svid.Marshal()), secretMode)
}

// WriteJWTBundle writes the JWT bundle of trustDomain as a JWKS.
func (p Paths) WriteJWTBundle(set *jwtbundle.Set, trustDomain spiffeid.TrustDomain) (bool, error) {
	bundle, ok := set.Get(trustDomain)
	if !ok {
		return false, fmt.Errorf("the Workload API sent no JWT bundle for %s", trustDomain)
	}
	jwks, err := bundle.Marshal()
	if err != nil {
		return false, fmt.Errorf("JWT bundle of %s: %w", trustDomain, err)
	}
	return atomicfile.WriteIfChanged(p.JWTBundle, append(jwks, '\n'), publicMode)
}

// checkDirs fails early, with the path, when a file's directory is missing.
func (p Paths) checkDirs() error {
	for _, path := range []string{p.X509Cert, p.X509Key, p.X509Bundle, p.JWTFile, p.JWTBundle} {
		if path == "" {
			continue
		}
		dir := filepath.Dir(path)
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			return fmt.Errorf("the directory of %s (%s) does not exist", path, dir)
		}
	}
	return nil
}
