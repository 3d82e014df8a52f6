// The filter configuration of a SPIRE stack: registered roles join the allow-list where the
// operator has not listed the agent, and the registrar becomes a revocation admin.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REGISTRAR_SPIFFE_ID, withRegisteredGrants } from "./spire-identity.ts";

const dir = mkdtempSync(path.join(tmpdir(), "hexr-grants-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function grantsFile(tenants: object): string {
  const file = path.join(dir, `grants-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ hexr: { registered: { tenants } } }));
  return file;
}

describe("withRegisteredGrants", () => {
  it("adds each registered role's grants, keeps the operator's list for agents it names, and makes the registrar an admin", () => {
    const file = grantsFile({
      "acme-corp": {
        agents: {
          "built-crew": { roles: { researcher: ["gcp_bigquery:read"], writer: ["aws_s3"], editor: [] } },
          "content-crew": { roles: { researcher: ["aws_s3", "gcp_bigquery"] } },
          "data-pipeline": { roles: { main: ["aws_ec2"] } },
        },
      },
    });
    const operator = {
      resources: { "acme-corp/content-crew/researcher": ["gcp_bigquery:read"], "acme-corp/data-pipeline": ["aws_s3:read"] },
      revocation: { path: "/admin/revoke", admin_spiffe_ids: ["spiffe://hexr.local/agent/hexr-system/operator/main"] },
    };
    const merged = withRegisteredGrants(operator, file);
    expect(merged.resources).toEqual({
      ...operator.resources,
      "acme-corp/built-crew/researcher": ["gcp_bigquery:read"],
      "acme-corp/built-crew/writer": ["aws_s3"],
      "acme-corp/built-crew/editor": [],
    });
    expect(merged.revocation).toEqual({
      path: "/admin/revoke",
      admin_spiffe_ids: ["spiffe://hexr.local/agent/hexr-system/operator/main", REGISTRAR_SPIFFE_ID],
    });
  });

  it("opens the revocation door at /revoke when the filter had none", () => {
    const merged = withRegisteredGrants({}, grantsFile({}));
    expect(merged.resources).toEqual({});
    expect(merged.revocation).toEqual({ path: "/revoke", admin_spiffe_ids: [REGISTRAR_SPIFFE_ID] });
  });
});
