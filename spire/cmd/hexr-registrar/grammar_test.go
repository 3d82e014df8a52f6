package main

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// The grammar constants are contract/contract.json's.
func TestGrammarMatchesTheContract(t *testing.T) {
	data, err := os.ReadFile("../../../contract/contract.json")
	if err != nil {
		t.Skipf("contract/contract.json is not beside this module: %v", err)
	}
	var contract struct {
		Providers []string `json:"providers"`
		Grammar   struct {
			Service struct {
				Separator string `json:"separator"`
				NameFirst string `json:"name_first"`
				NameRest  string `json:"name_rest"`
				NameMax   int    `json:"name_max"`
			} `json:"service"`
			TrustDomain struct {
				Chars string `json:"chars"`
				Min   int    `json:"min"`
				Max   int    `json:"max"`
			} `json:"trust_domain"`
			PathSegment struct {
				Chars     string   `json:"chars"`
				Min       int      `json:"min"`
				Max       int      `json:"max"`
				Forbidden []string `json:"forbidden"`
			} `json:"path_segment"`
			AgentSPIFFEID struct {
				Kind string `json:"kind"`
				Max  int    `json:"max"`
			} `json:"agent_spiffe_id"`
		} `json:"grammar"`
	}
	if err := json.Unmarshal(data, &contract); err != nil {
		t.Fatal(err)
	}
	g := contract.Grammar
	if !slices.Equal(contract.Providers, providers) {
		t.Errorf("providers %v, contract %v", providers, contract.Providers)
	}
	if g.PathSegment.Chars != segmentChars || g.PathSegment.Max != segmentMax || g.PathSegment.Min != 1 ||
		!slices.Equal(g.PathSegment.Forbidden, []string{".", ".."}) {
		t.Errorf("path_segment %+v", g.PathSegment)
	}
	if g.TrustDomain.Chars != trustDomainChars || g.TrustDomain.Max != trustDomainMax || g.TrustDomain.Min != 1 {
		t.Errorf("trust_domain %+v", g.TrustDomain)
	}
	if g.AgentSPIFFEID.Max != agentIDMax || g.AgentSPIFFEID.Kind != "agent" {
		t.Errorf("agent_spiffe_id %+v", g.AgentSPIFFEID)
	}
	if g.Service.Separator != "_" || g.Service.NameFirst != "a-z0-9" || g.Service.NameRest != "a-z0-9_-" || g.Service.NameMax != serviceNameMax {
		t.Errorf("service %+v", g.Service)
	}
}

func TestGrammar(t *testing.T) {
	for s, want := range map[string]bool{"acme-corp": true, "A.b_c-9": true, ".": false, "..": false, "...": true, "": false, "a/b": false, "a b": false} {
		if isPathSegment(s) != want {
			t.Errorf("isPathSegment(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"hexr.local": true, "Hexr.local": false, "": false, "a_b-c.9": true} {
		if isTrustDomain(s) != want {
			t.Errorf("isTrustDomain(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{
		"aws_s3": true, "gcp_bigquery:read": true, "azure_openai": true, "aws_dynamodb:query": true,
		"aws_": false, "aws": false, "ibm_cos": false, "aws_S3": false, "aws_-s3": false, "aws_s3:": false,
		"aws_s3:read:x": false, "aws_s3:re ad": false,
	} {
		if isResource(s) != want {
			t.Errorf("isResource(%q) = %v", s, !want)
		}
	}
}
