package main

import "strings"

// The name grammars of contract/contract.json ("grammar"): grammar_test.go checks these constants
// against that file, so the two cannot drift apart.
const (
	segmentChars     = "A-Za-z0-9._-" // grammar.path_segment.chars: tenant, agent and role
	segmentMax       = 128
	trustDomainChars = "a-z0-9._-" // grammar.trust_domain.chars
	trustDomainMax   = 255
	agentIDMax       = 400 // grammar.agent_spiffe_id.max, in bytes
	serviceNameMax   = 48  // grammar.service.name_max
)

// providers is contract.json's "providers": a resource is {provider}_{name}[:{scope}].
var providers = []string{"aws", "gcp", "azure", "llm"}

// isPathSegment: 1 to 128 characters of A-Za-z0-9._-, and not "." or "..".
func isPathSegment(s string) bool {
	return len(s) >= 1 && len(s) <= segmentMax && s != "." && s != ".." && onlyChars(s, isSegmentChar)
}

func isTrustDomain(s string) bool {
	return len(s) >= 1 && len(s) <= trustDomainMax && onlyChars(s, isTrustDomainChar)
}

// isResource: "{provider}_{name}" (full access to the service) or "{provider}_{name}:{scope}" (the
// scope only), the forms policy/exchange.rego reads.
func isResource(s string) bool {
	service, scope, scoped := strings.Cut(s, ":")
	if scoped && !(len(scope) >= 1 && len(scope) <= segmentMax && onlyChars(scope, isSegmentChar)) {
		return false
	}
	provider, name, ok := strings.Cut(service, "_")
	if !ok || !isProvider(provider) || len(name) < 1 || len(name) > serviceNameMax {
		return false
	}
	first := name[0]
	return (isLower(first) || isDigit(first)) && onlyChars(name[1:], func(c byte) bool {
		return isLower(c) || isDigit(c) || c == '_' || c == '-'
	})
}

func isProvider(s string) bool {
	for _, p := range providers {
		if s == p {
			return true
		}
	}
	return false
}

func isSegmentChar(c byte) bool {
	return isLower(c) || isDigit(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-'
}

func isTrustDomainChar(c byte) bool {
	return isLower(c) || isDigit(c) || c == '.' || c == '_' || c == '-'
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func onlyChars(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}
