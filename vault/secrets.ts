// The secret operations of docs/vault-api.md for an authenticated identity: put, get, list,
// delete, batch. Access decisions come from scope.ts; encryption from crypto/envelope.ts; storage
// from the store, whose write transactions also commit the request's audit record.
//
// Everything the request is about (name, scope, version) is noted in its RequestContext as soon as
// it is known, so the audit record of a refused request says as much as one of a served request.
import { rfc3339, type AuditEntry, type AuditOperation } from "./audit.ts";
import type { Identity } from "./auth.ts";
import { openValue, sealValue } from "./crypto/envelope.ts";
import type { KeyRing } from "./crypto/keyring.ts";
import { denied, IntegrityError, integrityFailure, namespaceFull, notFound, scopeConflict, storeUnavailable } from "./errors.ts";
import { decidePut, isListed, mayDelete, mayRead, namespaceOf } from "./scope.ts";
import type { SecretKey, VaultStore, WriteLimits } from "./store/store.ts";

export interface RequestContext {
  caller: string | null;
  spiffeId: string | null;
  operation: AuditOperation;
  name: string | null;
  scope: string | null;
  version: number | null;
  /** A batch is recorded name by name: one audit record each. */
  items: { name: string; scope: string | null; version: number | null }[] | null;
  /** The audit record is already committed, in the transaction of the write it records. */
  audited: boolean;
}

export interface Reply {
  status: number;
  /** JSON-serialisable; absent for 204. */
  body?: unknown;
}

/** The audit records of a request that got `status`. */
export function auditEntries(context: RequestContext, status: number, time = rfc3339()): AuditEntry[] {
  const base = { time, spiffe_id: context.spiffeId ?? context.caller, caller: context.caller, operation: context.operation, status };
  if (context.items?.length) return context.items.map((item) => ({ ...base, ...item }));
  return [{ ...base, name: context.name, scope: context.scope, version: context.version }];
}

/** How often a put or delete decides again after losing a race to another writer (another replica). */
const WRITE_ATTEMPTS = 5;

export class SecretService {
  /** Writes to one secret from this process queue up here, so they rarely race in the store. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: VaultStore,
    private readonly keyring: KeyRing,
    private readonly limits: WriteLimits,
  ) {}

  async put(identity: Identity, name: string, scope: string, value: string, context: RequestContext): Promise<Reply> {
    const key = keyOf(identity, name);
    return this.serialized(key, async () => {
      for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        const head = await this.store.head(key);
        context.scope = head?.scope ?? scope;
        const decision = decidePut(head?.scope, scope, identity.agent.role);
        if (decision.kind === "denied") {
          throw denied(head ? `secret ${name} is outside the scope of role ${identity.agent.role}` : `role ${identity.agent.role} may not create a secret scoped to role ${scope}`);
        }
        if (decision.kind === "conflict") throw scopeConflict(name, decision.existing);
        const version = (head?.version ?? 0) + 1;
        context.version = version;
        const sealed = await sealValue(value, { ...key, scope, version }, this.keyring);
        const createdAt = rfc3339();
        const outcome = await this.store.putVersion(
          { key, scope, version, createdAt, sealed },
          head?.version ?? null,
          this.limits,
          auditEntries(context, 201),
        );
        if (outcome === "full") throw namespaceFull(this.limits.maxSecrets);
        if (outcome === "stored") {
          context.audited = true;
          return { status: 201, body: { name, scope, version, created_at: createdAt } };
        }
      }
      throw storeUnavailable(); // lost the race WRITE_ATTEMPTS times: contention the caller may retry
    });
  }

  async get(identity: Identity, name: string, version: number | undefined, context: RequestContext): Promise<Reply> {
    const key = keyOf(identity, name);
    const found = await this.store.read(key, version);
    if (!found) throw notFound(`no secret ${name}`);
    context.scope = found.scope;
    if (!mayRead(found.scope, identity.agent.role)) throw denied(`secret ${name} is outside the scope of role ${identity.agent.role}`);
    if (!found.row) throw notFound(`secret ${name} has no version ${version}`);
    context.version = found.row.version;
    const value = await openValue(found.row.sealed, { ...key, scope: found.row.scope, version: found.row.version }, this.keyring);
    return { status: 200, body: { name, scope: found.scope, version: found.row.version, value, created_at: found.row.createdAt } };
  }

  async list(identity: Identity): Promise<Reply> {
    const secrets = (await this.store.list(namespaceOf(identity.agent)))
      .filter((secret) => isListed(secret.scope, identity.agent.role))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((secret) => ({ name: secret.name, scope: secret.scope, version: secret.version, created_at: secret.createdAt }));
    return { status: 200, body: { secrets } };
  }

  async delete(identity: Identity, name: string, context: RequestContext): Promise<Reply> {
    const key = keyOf(identity, name);
    return this.serialized(key, async () => {
      for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        const head = await this.store.head(key);
        if (!head) throw notFound(`no secret ${name}`);
        context.scope = head.scope;
        context.version = head.version;
        if (!mayDelete(head.scope, identity.agent.role)) throw denied(`secret ${name} is outside the scope of role ${identity.agent.role}`);
        if ((await this.store.deleteSecret(key, head.version, auditEntries(context, 204))) === "deleted") {
          context.audited = true;
          return { status: 204 };
        }
      }
      throw storeUnavailable();
    });
  }

  /** All or nothing: the first name (in the request's order) that is missing or denied fails the batch, named. */
  async batch(identity: Identity, names: readonly string[], context: RequestContext): Promise<Reply> {
    const namespace = namespaceOf(identity.agent);
    const found = await this.store.readLatest(namespace, names);
    context.items = names.map((name) => {
      const secret = found.get(name);
      return { name, scope: secret?.scope ?? null, version: secret?.row.version ?? null };
    });
    for (const name of names) {
      const secret = found.get(name);
      if (!secret) throw notFound(`no secret ${name}`);
      if (!mayRead(secret.scope, identity.agent.role)) throw denied(`secret ${name} is outside the scope of role ${identity.agent.role}`);
    }
    const entries = await Promise.all(
      names.map(async (name) => {
        const { scope, row } = found.get(name)!;
        try {
          const value = await openValue(row.sealed, { ...namespace, name, scope: row.scope, version: row.version }, this.keyring);
          return [name, { scope, version: row.version, value, created_at: row.createdAt }] as const;
        } catch (error) {
          throw error instanceof IntegrityError ? integrityFailure(name) : error;
        }
      }),
    );
    return { status: 200, body: { secrets: Object.fromEntries(entries) } };
  }

  private async serialized<T>(key: SecretKey, work: () => Promise<T>): Promise<T> {
    const id = JSON.stringify([key.trustDomain, key.tenant, key.agent, key.name]);
    const previous = this.queues.get(id) ?? Promise.resolve();
    const current = previous.catch(() => {}).then(work);
    this.queues.set(id, current);
    try {
      return await current;
    } finally {
      if (this.queues.get(id) === current) this.queues.delete(id);
    }
  }
}

function keyOf(identity: Identity, name: string): SecretKey {
  return { ...namespaceOf(identity.agent), name };
}
