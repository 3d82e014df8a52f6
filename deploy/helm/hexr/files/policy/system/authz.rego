# Who may use OPA's own REST API. OPA runs with --authentication=token --authorization=basic, so
# every request (the health check included) is first put to this policy, with
#   input = {identity: the bearer token or undefined, method, path: ["v1", "data", ...], params, headers, ...}
#
# Only the Credential Injector, which presents its token (Authorization: Bearer ...), and only to
#   - ask for decisions under data.hexr:   POST /v1/data/hexr/<rule path>
#   - check readiness:                     GET  /health
# and without query parameters (no explain, metrics, instrument or provenance). Everything else is
# refused with 401, whoever asks: reading data (GET /v1/data), writing data or policies (PUT/PATCH/
# DELETE /v1/data, /v1/policies), ad-hoc queries (/v1/query, POST /), compile, config, status.
# Revocations reach the policy in each decision's input, so the injector needs no write either.
#
# The token is compared by its SHA-256, which OPA reads from data.hexr_authz.token_sha256 (a file
# the deployment generates with the token: support/opa.ts). The token itself is never in OPA's
# data, on a command line or in the environment; without that data nothing is allowed.
package system.authz

default allow := false

allow if {
	injector
	input.method == "POST"
	count(input.path) >= 4
	array.slice(input.path, 0, 3) == ["v1", "data", "hexr"]
	every segment in input.path {
		segment != ""
	}
	no_parameters
}

allow if {
	injector
	input.method == "GET"
	input.path == ["health"]
	no_parameters
}

injector if {
	is_string(input.identity)
	expected := data.hexr_authz.token_sha256
	is_string(expected)
	count(expected) == 64
	crypto.sha256(input.identity) == expected
}

no_parameters if count(object.get(input, "params", {})) == 0
