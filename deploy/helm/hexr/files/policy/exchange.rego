# Which agent process may exchange its SPIFFE identity for which cloud service.
#
# Queried by the Credential Injector at POST /v1/data/hexr/exchange/decision (with its OPA token:
# policy/system/authz.rego) with
#   input = {spiffe_id, tenant, agent, role, service, region, revoked_prefixes}
# and answers {allow, scopes, reasons}:
#   allow   - true only when no rule below denies
#   scopes  - [] for full access to the service; otherwise the scopes granted in the
#             "service:scope" form (e.g. ["read"] for "aws_s3:read"), which the injector enforces;
#             for an llm_* service the scopes are models ("llm_openai:gpt-4o" → ["gpt-4o"]), which
#             the injector hands to the sidecar's LLM route as the models it may forward
#   reasons - why it was denied (no credentials or tokens are ever part of the input)
#
# Grants live in data.hexr.tenants (policy/data.json): per tenant, per agent, per process role,
# a list of services. A role without its own list falls back to the agent's "*" list. Agents the
# registrar registered from `hexr build` bring their grants in data.hexr.registered (same shape).
# Grants are always looked up under the tenant named in the SPIFFE ID itself, and the tenant,
# agent and role the caller claims must be the ones in the SPIFFE ID: one tenant's identities
# can never reach another tenant's grants.
#
# Regions come from the shared contract (contract/contract.json, loaded by OPA itself under
# data.hexr.contract: `opa run ... hexr.contract:contract/contract.json`), the same allow-list the
# filter and the injector enforce; a tenant may narrow it further. Revocations come with every
# question: input.revoked_prefixes lists the credential-key prefixes revoked within the
# injector's deny window (revocation.deny_seconds), and a key under one of them is denied.
package hexr.exchange

required_fields := ["spiffe_id", "tenant", "agent", "role", "service", "region"]

# spiffe://{trust-domain}/agent/{tenant}/{agent-name}/{process-role}
identity := {"trust_domain": parts[0], "tenant": parts[2], "agent": parts[3], "role": parts[4]} if {
	startswith(input.spiffe_id, "spiffe://")
	parts := split(substring(input.spiffe_id, count("spiffe://"), -1), "/")
	count(parts) == 5
	parts[1] == "agent"
	every part in parts {
		part != ""
	}
}

tenant_policy := data.hexr.tenants[identity.tenant]

role_grants := object.get(agent_roles, identity.role, object.get(agent_roles, "*", []))

agent_roles := tenant_policy.agents[identity.agent].roles

# The registrar's grants (data.hexr.registered, from `hexr build`'s process contexts: each role's
# `resources`) count for an agent the operator's data does not list, under a tenant it does: the
# operator onboards tenants and may override any agent.
agent_roles := data.hexr.registered.tenants[identity.tenant].agents[identity.agent].roles if {
	tenant_policy
	not tenant_policy.agents[identity.agent]
}

default full_access := false

full_access if {
	some grant in role_grants
	grant == input.service
}

scoped_grants contains scope if {
	some grant in role_grants
	[service, scope] := split(grant, ":")
	service == input.service
}

deny contains "input must be an object" if not input_is_object

input_is_object if is_object(input)

deny contains sprintf("input.%s is missing or not a string", [field]) if {
	some field in required_fields
	not is_string(object.get(input, field, null))
}

deny contains "spiffe_id is not an agent SPIFFE ID (spiffe://{trust-domain}/agent/{tenant}/{agent}/{role})" if {
	is_string(input.spiffe_id)
	not identity
}

deny contains sprintf("trust domain %q is not trusted", [identity.trust_domain]) if {
	not identity.trust_domain in data.hexr.trust_domains
}

deny contains sprintf("%s %q does not match the SPIFFE ID", [field, input[field]]) if {
	some field in ["tenant", "agent", "role"]
	input[field] != identity[field]
}

deny contains sprintf("tenant %q has no policy", [identity.tenant]) if {
	not tenant_policy
}

# A tenant may narrow the regions its agents use; without a "regions" list, the contract's apply.
deny contains sprintf("region %q is not allowed for tenant %q", [input.region, identity.tenant]) if {
	regions := tenant_policy.regions
	not input.region in regions
}

# ---- regions: the contract's allow-list per provider ------------------------------------------

contract := data.hexr.contract

deny contains "the shared contract is not loaded (data.hexr.contract)" if {
	input_is_object
	not contract.regions
}

# "aws_s3" -> "aws": the service grammar is {provider}{separator}{name}.
provider := split(input.service, contract.grammar.service.separator)[0] if is_string(input.service)

deny contains sprintf("region %q is not served for %s", [input.region, provider]) if {
	is_string(input.region)
	not region_served
}

region_served if input.region in contract.regions[provider]

# Load tests only: OPA's own data may lift the allow-list for a provider (the stack does so when
# its sidecars accept any region, `regions: {"aws": "any"}`). Never set in a deployment.
region_served if provider in data.hexr.unrestricted_regions

# ---- revocations -----------------------------------------------------------------------------

# cred:{spiffe-id}:{service}:{region}, the key the filter and the bridge use (contract.keys).
credential_key := concat("", [keys.credential_prefix, input.spiffe_id, keys.separator, input.service, keys.separator, input.region]) if {
	keys := contract.keys
	every field in ["spiffe_id", "service", "region"] {
		is_string(input[field])
	}
}

deny contains "this identity has been revoked" if {
	some prefix in input.revoked_prefixes
	is_string(prefix)
	startswith(credential_key, prefix)
}

# The injector always sends the list (empty when nothing is revoked); without it nothing is known
# about revocations, so nothing is allowed.
deny contains "input.revoked_prefixes is missing or not a list of strings" if {
	input_is_object
	not revoked_prefixes_valid
}

revoked_prefixes_valid if {
	is_array(input.revoked_prefixes)
	every prefix in input.revoked_prefixes {
		is_string(prefix)
	}
}

# ---- grants ----------------------------------------------------------------------------------

deny contains sprintf("%s is not granted to %s/%s/%s", [input.service, identity.tenant, identity.agent, identity.role]) if {
	tenant_policy
	is_string(input.service)
	not granted
}

granted if full_access

granted if count(scoped_grants) > 0

# Allowed only on a positive grant with nothing against it (no input at all grants nothing).
default allow := false

allow if {
	granted
	count(deny) == 0
}

granted_scopes := [] if full_access

granted_scopes := sort(scoped_grants) if not full_access

decision := {"allow": allow, "scopes": granted_scopes, "reasons": sort(deny)}
