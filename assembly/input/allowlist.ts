// The local resources allow-list, the sidecar's copy of @hexr_agent(resources=[...]): a service
// not listed for the caller is refused here, before anything leaves the proxy. OPA stays the
// authority upstream; an identity with no entry is not restricted locally.
import { SpiffeId } from "./spiffe-id";

export class AllowList {
  /** "{tenant}/{agent}" or "{tenant}/{agent}/{role}" → index into `lists`. */
  private entries: Map<string, i32> = new Map<string, i32>();
  /** The services each entry allows (scopes stripped: "aws_s3:read" is OPA's business). */
  private lists: string[][] = [];

  get isEmpty(): bool {
    return this.entries.size == 0;
  }

  add(entry: string, services: string[]): void {
    this.entries.set(entry, this.lists.length);
    this.lists.push(services);
  }

  allows(id: SpiffeId, service: string): bool {
    if (this.entries.size == 0) return true;
    const agentEntry = id.tenant + "/" + id.agent;
    const roleEntry = agentEntry + "/" + id.role;
    const entry = this.entries.has(roleEntry) ? roleEntry : agentEntry;
    if (!this.entries.has(entry)) return true;
    return this.lists[this.entries.get(entry)].includes(service);
  }
}
