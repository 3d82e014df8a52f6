# opa test policy/ hexr.contract:contract/contract.json   (with policy/exchange_test.rego)
package system.authz_test

import data.system.authz

token := "injector-test-token-0123456789abcdef"

token_data := {"token_sha256": crypto.sha256(token)}

allowed(req) if {
	authz.allow with input as req with data.hexr_authz as token_data
}

as_injector(method, path) := {"identity": token, "method": method, "path": path, "params": {}}

decision_path := ["v1", "data", "hexr", "exchange", "decision"]

test_injector_may_ask_for_decisions if {
	allowed(as_injector("POST", decision_path))
	allowed(as_injector("POST", ["v1", "data", "hexr", "not_loaded", "decision"]))
}

test_injector_may_check_health if {
	allowed(as_injector("GET", ["health"]))
}

test_no_token_no_access if {
	not allowed({"method": "POST", "path": decision_path, "params": {}})
	not allowed({"method": "GET", "path": ["health"], "params": {}})
}

test_wrong_token_no_access if {
	not allowed(object.union(as_injector("POST", decision_path), {"identity": "guess"}))
	not allowed(object.union(as_injector("POST", decision_path), {"identity": crypto.sha256(token)}))
	not allowed(object.union(as_injector("POST", decision_path), {"identity": ""}))
}

test_injector_may_not_write_data_or_policies if {
	not allowed(as_injector("PUT", ["v1", "data", "hexr", "tenants"]))
	not allowed(as_injector("PATCH", ["v1", "data", "hexr"]))
	not allowed(as_injector("DELETE", ["v1", "data", "hexr", "tenants"]))
	not allowed(as_injector("PUT", ["v1", "policies", "grant_all"]))
	not allowed(as_injector("DELETE", ["v1", "policies", "policy", "exchange.rego"]))
}

test_injector_may_not_read_data_or_query if {
	not allowed(as_injector("GET", ["v1", "data"]))
	not allowed(as_injector("GET", decision_path))
	not allowed(as_injector("POST", ["v1", "data"]))
	not allowed(as_injector("POST", ["v1", "data", "hexr"]))
	not allowed(as_injector("POST", ["v1", "data", "hexr_authz", "token_sha256"]))
	not allowed(as_injector("POST", ["v1", "data", "system", "authz", "allow"]))
	not allowed(as_injector("POST", ["v1", "query"]))
	not allowed(as_injector("POST", [""]))
	not allowed(as_injector("GET", ["v1", "policies"]))
	not allowed(as_injector("GET", ["v1", "config"]))
	not allowed(as_injector("GET", ["v1", "status"]))
	not allowed(as_injector("GET", ["metrics"]))
	not allowed(as_injector("POST", ["v1", "compile"]))
}

test_no_query_parameters if {
	not allowed(object.union(as_injector("POST", decision_path), {"params": {"explain": ["full"]}}))
	not allowed(object.union(as_injector("GET", ["health"]), {"params": {"bundles": [""]}}))
}

test_without_the_token_hash_nothing_is_allowed if {
	not authz.allow with input as as_injector("POST", decision_path)
	not authz.allow with input as as_injector("POST", decision_path) with data.hexr_authz as {"token_sha256": ""}
}
