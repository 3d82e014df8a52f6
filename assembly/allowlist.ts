// The local resources allow-list, the sidecar's copy of @hexr_agent(resources=[...]): a service
// not listed for the caller is refused here, before anything leaves the proxy. OPA stays the
// authority upstream; an identity with no entry is not restricted locally.
import { FilterConfig } from "./config";
import { SpiffeId } from "./identity";

export function isAllowedLocally(config: FilterConfig, id: SpiffeId, service: string): bool {
  if (config.resources.size == 0) return true;
  const agentKey = id.tenant + "/" + id.agent;
  const roleKey = agentKey + "/" + id.role;
  const key = config.resources.has(roleKey) ? roleKey : agentKey;
  if (!config.resources.has(key)) return true;
  return config.resourceLists[config.resources.get(key)].includes(service);
}
