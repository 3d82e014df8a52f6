// scope.ts, exhaustively: every (existing scope, requested scope, caller role) combination over a
// small universe of roles, checked against the rules written out longhand, plus properties over
// arbitrary roles (fast-check).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CONTRACT, expandCharClass, parseAgentSpiffeId } from "../../contract/index.ts";
import {
  AGENT_SCOPE, decidePut, includes, isListed, isScope, mayDelete, mayRead, namespaceOf, requestedScope, scopeSpiffeId, type PutDecision,
} from "../scope.ts";

const ROLES = ["researcher", "writer", "main"];
const SCOPES = [AGENT_SCOPE, ...ROLES];
const segmentChars = expandCharClass(CONTRACT.grammar.path_segment.chars);
const role = fc.string({ unit: fc.constantFrom(...segmentChars), minLength: 1, maxLength: 20 }).filter((r) => r !== "." && r !== "..");

describe("namespaces", () => {
  it("are the caller's trust domain, tenant and agent: every role of an agent shares one", () => {
    const researcher = parseAgentSpiffeId("spiffe://hexr.local/agent/acme-corp/my-agent/researcher")!;
    const writer = parseAgentSpiffeId("spiffe://hexr.local/agent/acme-corp/my-agent/writer")!;
    const other = parseAgentSpiffeId("spiffe://hexr.local/agent/acme-corp/other-agent/researcher")!;
    const globex = parseAgentSpiffeId("spiffe://hexr.local/agent/globex/my-agent/researcher")!;
    expect(namespaceOf(researcher)).toEqual({ trustDomain: "hexr.local", tenant: "acme-corp", agent: "my-agent" });
    expect(namespaceOf(writer)).toEqual(namespaceOf(researcher));
    expect(namespaceOf(other)).not.toEqual(namespaceOf(researcher));
    expect(namespaceOf(globex)).not.toEqual(namespaceOf(researcher));
  });

  it("name a scope's SPIFFE ID as the seeds do", () => {
    const ns = { trustDomain: "hexr.cloud", tenant: "acme", agent: "my-agent" };
    expect(scopeSpiffeId(ns, "*")).toBe("spiffe://hexr.cloud/agent/acme/my-agent/*");
    expect(scopeSpiffeId(ns, "researcher")).toBe("spiffe://hexr.cloud/agent/acme/my-agent/researcher");
  });
});

describe("scopes", () => {
  it("are * or an agent SPIFFE ID path segment; absent means agent-level", () => {
    expect(requestedScope(undefined)).toBe("*");
    expect(requestedScope("*")).toBe("*");
    expect(requestedScope("researcher")).toBe("researcher");
    for (const bad of ["", "..", ".", "a/b", "**", "role with space", "x".repeat(300), "é"]) {
      expect(requestedScope(bad)).toBeUndefined();
      expect(isScope(bad)).toBe(false);
    }
  });

  it("include a role exactly when agent-level or that role", () => {
    for (const scope of SCOPES) {
      for (const r of ROLES) expect(includes(scope, r)).toBe(scope === "*" || scope === r);
    }
  });

  it("decide read, delete and list by the one rule", () => {
    for (const scope of SCOPES) {
      for (const r of ROLES) {
        const inside = scope === "*" || scope === r;
        expect([mayRead(scope, r), mayDelete(scope, r), isListed(scope, r)]).toEqual([inside, inside, inside]);
      }
    }
  });

  it("decide every put: create inside one's scope only, 403 outside the secret, 409 on a scope change", () => {
    const table: string[] = [];
    for (const existing of [undefined, ...SCOPES]) {
      for (const requested of SCOPES) {
        for (const r of ROLES) {
          const expected: PutDecision =
            existing === undefined
              ? requested === "*" || requested === r ? { kind: "create" } : { kind: "denied" }
              : existing !== "*" && existing !== r
                ? { kind: "denied" }
                : requested !== existing ? { kind: "conflict", existing } : { kind: "update" };
          expect(decidePut(existing, requested, r)).toEqual(expected);
          table.push(`${existing ?? "-"} ${requested} ${r} ${expected.kind}`);
        }
      }
    }
    expect(table).toHaveLength(4 * 4 * 3 + 4 * 3);
    // The seeds' case, spelled out.
    expect(decidePut("researcher", "researcher", "writer")).toEqual({ kind: "denied" });
    expect(mayRead("researcher", "writer")).toBe(false);
    expect(mayRead("*", "writer")).toBe(true);
  });

  it("never let a put widen or narrow a secret, nor a role touch another role's secret (properties)", () => {
    fc.assert(
      fc.property(fc.option(fc.oneof(fc.constant("*"), role), { nil: undefined }), fc.oneof(fc.constant("*"), role), role, (existing, requested, r) => {
        const decision = decidePut(existing, requested, r);
        if (decision.kind === "update") expect(requested).toBe(existing);
        if (decision.kind === "update" || decision.kind === "conflict") expect(includes(existing!, r)).toBe(true);
        if (decision.kind === "create") {
          expect(existing).toBeUndefined();
          expect(includes(requested, r)).toBe(true);
        }
        if (existing !== undefined && !includes(existing, r)) expect(decision.kind).toBe("denied");
        // Whatever is written is readable by its writer.
        if (decision.kind === "create" || decision.kind === "update") expect(mayRead(requested, r)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("keep role-level secrets to their role (property)", () => {
    fc.assert(
      fc.property(role, role, (owner, other) => {
        expect(mayRead(owner, owner)).toBe(true);
        expect(mayRead(owner, other)).toBe(owner === other);
        expect(mayRead("*", other)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
