package main

import (
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	base := []string{"-server-socket", "/run/api.sock", "-parent-id", "spiffe://hexr.local/node/pod-a", "-contexts", "/c"}
	o, s, err := parseFlags(append(base, "-contexts", "/d", "-x509-svid-ttl", "2h", "-jwt-svid-ttl", "90s",
		"-revoke-url", "http://127.0.0.1:15080/revoke", "-workload-socket", "/run/agent.sock", "-watch", "2s"))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.contextDirs) != 2 || s.X509SVIDTTL != 7200 || s.JWTSVIDTTL != 90 || s.ParentID != "spiffe://hexr.local/node/pod-a" ||
		o.workloadSocket != "unix:///run/agent.sock" || o.revokeAudience != "hexr-credential-injector" || o.watch != 2*time.Second {
		t.Fatalf("%+v %+v", o, s)
	}
	for name, args := range map[string][]string{
		"no server socket":      {"-parent-id", "spiffe://hexr.local/node/pod-a", "-contexts", "/c"},
		"no contexts":           {"-server-socket", "/s", "-parent-id", "spiffe://hexr.local/node/pod-a"},
		"no parent":             {"-server-socket", "/s", "-contexts", "/c"},
		"parent without a path": {"-server-socket", "/s", "-contexts", "/c", "-parent-id", "spiffe://hexr.local"},
		"parent not spiffe":     {"-server-socket", "/s", "-contexts", "/c", "-parent-id", "https://hexr.local/node"},
		"revoke without socket": append(base, "-revoke-url", "http://127.0.0.1/revoke"),
		"revoke not http":       append(base, "-revoke-url", "ftp://x/revoke", "-workload-socket", "/s"),
		"fractional ttl":        append(base, "-jwt-svid-ttl", "1.5s"),
		"negative ttl":          append(base, "-x509-svid-ttl", "-1h"),
		"negative watch":        append(base, "-watch", "-1s"),
		"extra argument":        append(base, "extra"),
	} {
		if _, _, err := parseFlags(args); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
