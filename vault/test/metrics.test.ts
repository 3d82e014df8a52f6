// The vault's Prometheus metrics (vault/metrics.ts): off unless `metrics` is configured; then a
// plain-HTTP listener of its own serves GET /metrics, with requests by operation, status and
// outcome, audit records appended and the store's latency, and never a secret's name, value or an
// identity.
import { describe, expect, it } from "vitest";
import { engineFixture, OTHER_AGENT, SIDECAR_ACME, startTestVault, tempDir, testIdentity, vaultConfig, WRITER } from "./helpers.ts";

describe("GET /metrics", () => {
  it("counts reads, puts and denials, audit records and store calls, with no secret in them", async () => {
    const fixture = engineFixture("sqlite");
    const keys = tempDir();
    const id = await testIdentity();
    const store = await fixture.freshStore();
    const off = await startTestVault(vaultConfig(id, store, keys.dir));
    expect(off.metricsUrl, "off unless configured").toBeNull();
    await off.close();
    const vault = await startTestVault(vaultConfig(id, store, keys.dir, { metrics: { host: "127.0.0.1", port: 0 } }));
    try {
      expect(vault.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const acme = await vault.client(SIDECAR_ACME);
      const value = `sk-metrics-${Date.now()}`;
      expect((await acme.put("METRICS_SECRET_NAME", value, { scope: "researcher" })).status).toBe(201);
      expect((await acme.get("METRICS_SECRET_NAME")).status).toBe(200);
      expect((await acme.get("METRICS_SECRET_NAME", { as: WRITER, token: true })).status).toBe(403);
      expect((await acme.get("METRICS_SECRET_NAME", { as: OTHER_AGENT })).status).toBe(404);

      const scrape = await fetch(vault.metricsUrl!);
      expect(scrape.status).toBe(200);
      const text = await scrape.text();
      expect(text).toMatch(/^hexr_vault_requests_total\{operation="put",status="201",outcome="ok"\} 1$/m);
      expect(text).toMatch(/^hexr_vault_requests_total\{operation="get",status="200",outcome="ok"\} 1$/m);
      expect(text).toMatch(/^hexr_vault_requests_total\{operation="get",status="403",outcome="denied"\} 1$/m);
      expect(text).toMatch(/^hexr_vault_requests_total\{operation="get",status="404",outcome="not_found"\} 1$/m);
      expect(text).toMatch(/^hexr_vault_audit_appends_total\{result="ok"\} 4$/m);
      expect(text).toMatch(/^hexr_vault_audit_appends_total\{result="failed"\} 0$/m);
      expect(text).toMatch(/^hexr_vault_store_duration_seconds_count\{method="read",result="ok"\} 3$/m);
      expect(text).toMatch(/^hexr_vault_request_duration_seconds_count\{operation="get"\} 3$/m);
      for (const secret of [value, "METRICS_SECRET_NAME", "spiffe://"]) expect(text.includes(secret), secret).toBe(false);
    } finally {
      await vault.close();
      await fixture.close();
      keys.remove();
    }
  });
});
