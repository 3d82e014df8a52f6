// Per-identity settings (AWS role ARNs, GCP service accounts, Azure client IDs) keyed by
// "tenant/agent/role", "tenant/agent", "tenant" or "*": the most specific key wins.
import type { AgentSpiffeId } from "../contract/index.ts";
import type { IdentityMap } from "./config.ts";

export function mostSpecific(map: IdentityMap, identity: AgentSpiffeId): string | undefined {
  const { tenant, agent, role } = identity;
  for (const key of [`${tenant}/${agent}/${role}`, `${tenant}/${agent}`, tenant, "*"]) {
    if (Object.hasOwn(map, key)) return map[key];
  }
  return undefined;
}
