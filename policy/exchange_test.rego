# opa test policy/ hexr.contract:contract/contract.json
# (also run by injector/test/policy.test.ts as part of npm test; the contract is loaded as the
# server loads it, so the region tests check the real allow-list)
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
			# LLM API keys: a scope is a model ("llm_openai:gpt-4o"), the bare service every model.
			"chat-agent": {"roles": {
				"*": ["llm_openai:gpt-4o", "llm_anthropic"],
				"batch": ["llm_openai:gpt-4o-mini", "llm_openai:o3"],
			}},
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
	"region": data.hexr.contract.default_regions[split(service, "_")[0]],
	"revoked_prefixes": [],
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

# ---- grants the registrar wrote from `hexr build` (data.hexr.registered) --------------------

registered := {"tenants": {
	"acme-corp": {"agents": {
		"built-crew": {"roles": {"researcher": ["gcp_bigquery:read"], "writer": ["aws_s3"], "editor": []}},
		"data-pipeline": {"roles": {"*": ["aws_ec2"]}},
	}},
	"initech": {"agents": {"built-crew": {"roles": {"writer": ["aws_s3"]}}}},
}}

decide_registered(req) := d if {
	d := exchange.decision with input as req
		with data.hexr.tenants as fixture.tenants
		with data.hexr.trust_domains as fixture.trust_domains
		with data.hexr.registered as registered
}

test_registered_roles_get_their_own_grants if {
	writer := "spiffe://hexr.local/agent/acme-corp/built-crew/writer"
	decide_registered(request(writer, "aws_s3")) == {"allow": true, "scopes": [], "reasons": []}
	not decide_registered(request(writer, "gcp_bigquery")).allow
	decide_registered(request("spiffe://hexr.local/agent/acme-corp/built-crew/researcher", "gcp_bigquery")).scopes == ["read"]
	not decide_registered(request("spiffe://hexr.local/agent/acme-corp/built-crew/editor", "aws_s3")).allow
}

test_operator_grants_win_over_registered_ones if {
	not decide_registered(request(pipeline, "aws_ec2")).allow
	decide_registered(request(pipeline, "gcp_bigquery")).allow
}

test_registered_grants_need_an_onboarded_tenant if {
	d := decide_registered(request("spiffe://hexr.local/agent/initech/built-crew/writer", "aws_s3"))
	not d.allow
	"tenant \"initech\" has no policy" in d.reasons
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

# ---- regions: the contract's allow-list ------------------------------------------------------

writer := "spiffe://hexr.local/agent/acme-corp/content-crew/writer"

# content-crew/editor has no list of its own: the agent's "*" list grants it azure_storage.
editor := "spiffe://hexr.local/agent/acme-corp/content-crew/editor"

in_region(req, region) := object.union(req, {"region": region})

test_served_regions_of_each_provider_are_allowed if {
	decide(in_region(request(writer, "aws_s3"), "eu-central-1")).allow
	decide(in_region(request(writer, "aws_s3"), "us-gov-west-1")).allow
	decide(in_region(request(pipeline, "gcp_bigquery"), "europe-west4")).allow
	decide(in_region(request(editor, "azure_storage"), "westeurope")).allow
}

test_region_not_served_by_the_provider_is_denied if {
	# Valid by the grammar, but no provider serves it.
	d := decide(in_region(request(writer, "aws_s3"), "zz-nowhere-9"))
	d == {"allow": false, "scopes": [], "reasons": ["region \"zz-nowhere-9\" is not served for aws"]}
}

test_region_of_another_provider_is_denied if {
	# us-central1 is a GCP region, eastus an Azure one: neither is served for AWS.
	"region \"us-central1\" is not served for aws" in decide(in_region(request(writer, "aws_s3"), "us-central1")).reasons
	"region \"us-east-1\" is not served for gcp" in decide(in_region(request(pipeline, "gcp_bigquery"), "us-east-1")).reasons
	"region \"us-east-1\" is not served for azure" in decide(in_region(request(editor, "azure_storage"), "us-east-1")).reasons
}

test_the_allow_list_is_the_contracts if {
	# The data the server loads is contract/contract.json itself: no copy to drift apart.
	"us-east-1" in data.hexr.contract.regions.aws
	"us-central1" in data.hexr.contract.regions.gcp
	"eastus" in data.hexr.contract.regions.azure
	not "zz-nowhere-9" in data.hexr.contract.regions.aws
}

test_without_the_contract_nothing_is_allowed if {
	d := exchange.decision with input as request(writer, "aws_s3")
		with data.hexr.tenants as fixture.tenants
		with data.hexr.contract as {}
	not d.allow
	"the shared contract is not loaded (data.hexr.contract)" in d.reasons
}

test_tenant_regions_narrow_the_contracts if {
	# globex may use eu-west-1 only: a served region outside its list is still denied.
	globex := "spiffe://hexr.local/agent/globex/analyst/main"
	d := decide(in_region(request(globex, "aws_s3"), "eu-west-2"))
	d.reasons == ["region \"eu-west-2\" is not allowed for tenant \"globex\""]
}

test_unrestricted_regions_lift_the_allow_list_for_one_provider if {
	# Load tests only (the stack sets it when its sidecars accept any region).
	d := exchange.decision with input as in_region(request(writer, "aws_s3"), "load-test-17")
		with data.hexr.tenants as fixture.tenants
		with data.hexr.trust_domains as fixture.trust_domains
		with data.hexr.unrestricted_regions as ["aws"]
	d.allow
	e := exchange.decision with input as in_region(request(pipeline, "gcp_bigquery"), "load-test-17")
		with data.hexr.tenants as fixture.tenants
		with data.hexr.trust_domains as fixture.trust_domains
		with data.hexr.unrestricted_regions as ["aws"]
	not e.allow
}

# ---- revocations -----------------------------------------------------------------------------

revoked(req, prefixes) := object.union(req, {"revoked_prefixes": prefixes})

test_a_revoked_identity_is_denied if {
	d := decide(revoked(request(writer, "aws_s3"), [sprintf("cred:%s:", [writer])]))
	d == {"allow": false, "scopes": [], "reasons": ["this identity has been revoked"]}
}

test_revocation_by_tenant_and_of_everything if {
	"this identity has been revoked" in decide(revoked(request(writer, "aws_s3"), ["cred:spiffe://hexr.local/agent/acme-corp/"])).reasons
	"this identity has been revoked" in decide(revoked(request(pipeline, "gcp_bigquery"), ["cred:spiffe://"])).reasons
}

test_revocation_is_prefix_precise if {
	# Revoking .../writer leaves .../writer2, another tenant and another identity alone.
	decide(revoked(request(writer, "aws_s3"), [
		"cred:spiffe://hexr.local/agent/acme-corp/content-crew/writer2:",
		"cred:spiffe://hexr.local/agent/acme-corp-evil/",
		sprintf("cred:%s:", [pipeline]),
	])).allow
}

test_revocation_of_one_service_or_region_of_an_identity if {
	prefixes := [sprintf("cred:%s:aws_s3:", [pipeline]), sprintf("cred:%s:gcp_bigquery:europe-west1", [pipeline])]
	"this identity has been revoked" in decide(revoked(request(pipeline, "aws_s3"), prefixes)).reasons
	"this identity has been revoked" in decide(revoked(in_region(request(pipeline, "gcp_bigquery"), "europe-west1"), prefixes)).reasons
	decide(revoked(request(pipeline, "gcp_bigquery"), prefixes)).allow
}

test_missing_revocation_list_allows_nothing if {
	req := object.remove(request(writer, "aws_s3"), ["revoked_prefixes"])
	d := decide(req)
	d == {"allow": false, "scopes": [], "reasons": ["input.revoked_prefixes is missing or not a list of strings"]}
	not decide(revoked(request(writer, "aws_s3"), "cred:spiffe://")).allow
	not decide(revoked(request(writer, "aws_s3"), [7])).allow
}

# ---- LLM API keys: models are the grant's scopes ----------------------------------------------

chat_agent := "spiffe://hexr.local/agent/acme-corp/chat-agent/main"

test_llm_model_grant_allows_that_model_only if {
	# The injector reads OpenAI's key from the vault and hands the filter these scopes as "models".
	d := decide(request(chat_agent, "llm_openai"))
	d == {"allow": true, "scopes": ["gpt-4o"], "reasons": []}
	d.scopes == ["gpt-4o"]
}

test_llm_service_grant_allows_every_model if {
	decide(request(chat_agent, "llm_anthropic")) == {"allow": true, "scopes": [], "reasons": []}
}

test_llm_several_model_grants_are_all_reported if {
	decide(request("spiffe://hexr.local/agent/acme-corp/chat-agent/batch", "llm_openai")).scopes == ["gpt-4o-mini", "o3"]
}

test_llm_region_is_global if {
	# The contract's only region for the llm provider; llm_* requests name no other.
	request(chat_agent, "llm_openai").region == "global"
	"region \"us-east-1\" is not served for llm" in decide(in_region(request(chat_agent, "llm_openai"), "us-east-1")).reasons
}

test_llm_grant_of_another_tenant_is_denied if {
	# The same agent name under another tenant reaches none of acme-corp's grants...
	d := decide(request("spiffe://hexr.local/agent/globex/chat-agent/main", "llm_openai"))
	not d.allow
	d.scopes == []

	# ...and an acme-corp identity cannot claim to be of another tenant either.
	not decide(object.union(request(chat_agent, "llm_openai"), {"tenant": "globex"})).allow
}

test_llm_not_granted_is_denied if {
	d := decide(request(pipeline, "llm_openai"))
	d == {"allow": false, "scopes": [], "reasons": ["llm_openai is not granted to acme-corp/data-pipeline/main"]}
}
