# opa test policy/   (also run by injector/test/policy.test.ts as part of npm test)
package hexr.exchange_test

import data.hexr.exchange

# Grants used by most tests, independent of the shipped policy/data.json.
fixture := {
	"trust_domains": ["hexr.local"],
	"tenants": {
		"acme-corp": {"agents": {
			"data-pipeline": {"roles": {"*": ["aws_s3:read", "gcp_bigquery"]}},
			"content-crew": {"roles": {
				"researcher": ["gcp_bigquery:read"],
				"writer": ["aws_s3"],
				"*": ["azure_storage"],
			}},
			"mixed": {"roles": {"*": ["aws_s3", "aws_s3:read", "aws_dynamodb:read", "aws_dynamodb:query"]}},
		}},
		"globex": {
			"regions": ["eu-west-1"],
			"agents": {"analyst": {"roles": {"*": ["aws_s3"]}}},
		},
	},
}

request(spiffe_id, service) := {
	"spiffe_id": spiffe_id,
	"tenant": parts[2],
	"agent": parts[3],
	"role": parts[4],
	"service": service,
	"region": "us-east-1",
} if {
	parts := split(substring(spiffe_id, count("spiffe://"), -1), "/")
}

decide(req) := d if {
	d := exchange.decision with input as req
		with data.hexr.tenants as fixture.tenants
		with data.hexr.trust_domains as fixture.trust_domains
}

pipeline := "spiffe://hexr.local/agent/acme-corp/data-pipeline/main"

# ---- per-role service allow-lists ------------------------------------------------------------

test_full_grant_allows_without_scopes if {
	decide(request(pipeline, "gcp_bigquery")) == {"allow": true, "scopes": [], "reasons": []}
}

test_read_form_allows_with_read_scope if {
	decide(request(pipeline, "aws_s3")) == {"allow": true, "scopes": ["read"], "reasons": []}
}

test_service_not_in_list_is_denied if {
	d := decide(request(pipeline, "aws_ec2"))
	not d.allow
	d.reasons == ["aws_ec2 is not granted to acme-corp/data-pipeline/main"]
}

test_role_list_wins_over_agent_wildcard if {
	researcher := "spiffe://hexr.local/agent/acme-corp/content-crew/researcher"
	decide(request(researcher, "gcp_bigquery")).scopes == ["read"]
	not decide(request(researcher, "azure_storage")).allow
	not decide(request(researcher, "aws_s3")).allow
}

test_roles_of_one_agent_are_separate if {
	writer := "spiffe://hexr.local/agent/acme-corp/content-crew/writer"
	decide(request(writer, "aws_s3")) == {"allow": true, "scopes": [], "reasons": []}
	not decide(request(writer, "gcp_bigquery")).allow
}

test_role_without_own_list_uses_agent_wildcard if {
	editor := "spiffe://hexr.local/agent/acme-corp/content-crew/editor"
	decide(request(editor, "azure_storage")).allow
	not decide(request(editor, "aws_s3")).allow
}

test_full_grant_beats_scoped_grant if {
	decide(request("spiffe://hexr.local/agent/acme-corp/mixed/main", "aws_s3")).scopes == []
}

test_several_scopes_are_all_reported if {
	decide(request("spiffe://hexr.local/agent/acme-corp/mixed/main", "aws_dynamodb")).scopes == ["query", "read"]
}

test_unknown_agent_is_denied if {
	not decide(request("spiffe://hexr.local/agent/acme-corp/stranger/main", "aws_s3")).allow
}

# ---- tenant isolation ------------------------------------------------------------------------

test_claimed_tenant_must_match_spiffe_id if {
	req := object.union(request(pipeline, "gcp_bigquery"), {"tenant": "globex"})
	d := decide(req)
	not d.allow
	"tenant \"globex\" does not match the SPIFFE ID" in d.reasons
}

test_claimed_agent_and_role_must_match_spiffe_id if {
	d := decide(object.union(request(pipeline, "gcp_bigquery"), {"agent": "content-crew", "role": "writer"}))
	not d.allow
	count(d.reasons) == 2
}

test_other_tenants_grants_are_unreachable if {
	# globex/analyst may use aws_s3; the same agent name under acme-corp has no such grant.
	decide(request("spiffe://hexr.local/agent/globex/analyst/main", "aws_s3")) == {"allow": false, "scopes": [], "reasons": ["region \"us-east-1\" is not allowed for tenant \"globex\""]}
	not decide(request("spiffe://hexr.local/agent/acme-corp/analyst/main", "aws_s3")).allow
}

test_unknown_tenant_is_denied if {
	d := decide(request("spiffe://hexr.local/agent/initech/data-pipeline/main", "aws_s3"))
	not d.allow
	"tenant \"initech\" has no policy" in d.reasons
}

test_untrusted_trust_domain_is_denied if {
	d := decide(request("spiffe://evil.example/agent/acme-corp/data-pipeline/main", "gcp_bigquery"))
	not d.allow
	d.reasons == ["trust domain \"evil.example\" is not trusted"]
}

test_tenant_region_restriction if {
	req := object.union(request("spiffe://hexr.local/agent/globex/analyst/main", "aws_s3"), {"region": "eu-west-1"})
	decide(req) == {"allow": true, "scopes": [], "reasons": []}
}

# ---- malformed input -------------------------------------------------------------------------

test_non_agent_spiffe_id_is_denied if {
	d := decide(object.union(request(pipeline, "gcp_bigquery"), {"spiffe_id": "spiffe://hexr.local/sidecar/acme-corp/pod"}))
	not d.allow
}

test_missing_fields_are_denied if {
	d := decide({"spiffe_id": pipeline})
	not d.allow
	"input.service is missing or not a string" in d.reasons
	"input.region is missing or not a string" in d.reasons
}

test_no_input_grants_nothing if {
	d := exchange.decision with data.hexr.tenants as fixture.tenants
	d == {"allow": false, "scopes": [], "reasons": ["input must be an object"]}
}

test_grant_with_extra_colons_matches_nothing if {
	bad := {"acme-corp": {"agents": {"data-pipeline": {"roles": {"*": ["aws_s3:read:extra"]}}}}}
	not exchange.decision.allow with input as request(pipeline, "aws_s3") with data.hexr.tenants as bad
}

# ---- the shipped policy/data.json follows the seeds' examples --------------------------------

test_shipped_data_read_only_agent if {
	d := exchange.decision with input as request("spiffe://hexr.local/agent/acme-corp/read-only-agent/main", "aws_s3")
	d == {"allow": true, "scopes": ["read"], "reasons": []}
	not exchange.decision.allow with input as request("spiffe://hexr.local/agent/acme-corp/read-only-agent/main", "aws_ec2")
}

test_shipped_data_multi_cloud_analyst if {
	every service in ["aws_s3", "gcp_bigquery", "azure_storage"] {
		exchange.decision.allow with input as request("spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main", service)
	}
}
