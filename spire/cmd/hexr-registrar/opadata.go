package main

// The grants of the contexts as an OPA data document: data.hexr.registered, shaped like the
// operator's data.hexr.tenants (policy/data.json), which policy/exchange.rego reads.

import (
	"encoding/json"

	"github.com/hexr-dev/hexr/spire/internal/atomicfile"
)

type opaRoles struct {
	Roles map[string][]string `json:"roles"`
}

type opaTenant struct {
	Agents map[string]opaRoles `json:"agents"`
}

// RenderOPAData renders {"hexr": {"registered": {"tenants": {T: {"agents": {A: {"roles": {R:
// [resources]}}}}}}}}. The output is deterministic (sorted keys and lists), so equal contexts give
// equal bytes.
func RenderOPAData(contexts []ProcessContext) []byte {
	tenants := map[string]opaTenant{}
	for _, c := range contexts {
		tenant, ok := tenants[c.Tenant]
		if !ok {
			tenant = opaTenant{Agents: map[string]opaRoles{}}
			tenants[c.Tenant] = tenant
		}
		agent, ok := tenant.Agents[c.AgentName]
		if !ok {
			agent = opaRoles{Roles: map[string][]string{}}
			tenant.Agents[c.AgentName] = agent
		}
		resources := c.Resources
		if resources == nil {
			resources = []string{}
		}
		agent.Roles[c.ProcessRole] = resources
	}
	doc := map[string]any{"hexr": map[string]any{"registered": map[string]any{"tenants": tenants}}}
	out, err := json.MarshalIndent(doc, "", "  ") // maps marshal with sorted keys
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return append(out, '\n')
}

// WriteOPAData writes the document to path (atomically) unless path holds it already. It reports
// whether it wrote.
func WriteOPAData(path string, contexts []ProcessContext) (bool, error) {
	return atomicfile.WriteIfChanged(path, RenderOPAData(contexts), 0o644)
}
