// The Grafana dashboard shipped in the chart (deploy/helm/hexr/dashboards/hexr.json): its shape,
// that every expression parses (Prometheus' own grammar), and that every metric a panel or variable queries is one the code emits, with the labels the
// query matches on. What is emitted is not read from a list: a real stack (the sidecar with both
// filters, the injector, the bridge and the vault, each serving /metrics) is driven through one
// credential exchange, one secret write and read and one LLM call, then scraped: the sidecar's
// stats listener and each service's /metrics. A renamed counter, a dropped stats_tags entry or an
// instrument removed from a service fails here.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintJwtSvid } from "../../support/dev-identity.ts";
import { startLlmProvider, type LlmProvider } from "../../support/llm-provider.ts";
import { projectRoot } from "../../support/tools.ts";
import { DEMO_AGENT_ID, LLM_ADMIN_ID, startStack, type Stack } from "../../stack/index.ts";
import { eventually, exchange, request, summary } from "../../e2e/helpers.ts";
import { dashboardExprs, exposedSeries, parsePromQL, variableExpr } from "./promql.ts";

const DASHBOARD_FILE = path.join(projectRoot, "deploy", "helm", "hexr", "dashboards", "hexr.json");
const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, "utf8"));
/** Labels Prometheus itself adds when it scrapes a pod (kubernetes_sd relabelling, the target): never emitted by the code. */
const SCRAPE_LABELS = new Set(["namespace", "pod", "job", "instance", "container"]);

function allPanels(panels: any[] = dashboard.panels): any[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}

describe("the dashboard's JSON", () => {
  it("is a Grafana dashboard of schema 39 or later, on a Prometheus data source chosen by a variable", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    const variables = dashboard.templating.list as any[];
    expect(variables.find((v) => v.name === "datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const v of variables.filter((v) => v.type === "query")) expect(v.datasource, `$${v.name}`).toEqual({ type: "prometheus", uid: "${datasource}" });
    const ids = allPanels().map((panel) => panel.id);
    expect(new Set(ids).size, "panel ids are unique").toBe(ids.length);
    for (const panel of allPanels().filter((p) => p.type !== "row")) {
      expect(panel.datasource, panel.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    }
  });

  it("has only expressions Prometheus' grammar parses (@prometheus-io/lezer-promql)", () => {
    const errors = dashboardExprs(dashboard).flatMap(({ where, expr }) => parsePromQL(expr).errors.map((error) => `${where}: ${error}`));
    expect(errors).toEqual([]);
  });

  it("defines every variable its queries use, and filters by namespace, pod and SPIFFE ID", () => {
    const defined = new Set((dashboard.templating.list as any[]).map((v) => v.name));
    expect([...defined]).toEqual(expect.arrayContaining(["datasource", "namespace", "pod", "spiffe_id"]));
    const builtIn = new Set(["__rate_interval", "__range", "__interval"]);
    for (const { where, expr } of dashboardExprs(dashboard)) {
      for (const [, name] of expr.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) {
        expect(defined.has(name) || builtIn.has(name), `${where} uses $${name}`).toBe(true);
      }
    }
  });

  it("has what the issue asks for: tiers and hit ratios, exchanges and failures, coalescing, revocations, secret reads, LLM tokens and cost per role", () => {
    const text = dashboardExprs(dashboard).map(({ expr }) => expr).join("\n");
    for (const metric of [
      "hexr_cache_hits", "hexr_cache_misses", "hexr_injector_exchanges_total", "hexr_coalesced_requests", "hexr_refresh_ahead_exchanges",
      "hexr_stale_served", "hexr_l1_evictions", "hexr_bridge_revocations_total", "hexr_vault_requests_total", "hexr_llm_cost_nanousd",
      "hexr_llm_input_tokens", "hexr_llm_output_tokens", "hexr_tool_invocations", "hexr_request_duration_ms_bucket",
    ]) expect(text, metric).toContain(metric);
    // Per role: the spiffe_id label becomes tenant/agent/role.
    expect(text).toMatch(/label_replace\([^;]*hexr_llm_cost_nanousd[^;]*"role", "\$1", "spiffe_id"/);
  });
});

describe("reading PromQL", () => {
  it("finds metrics with their matchers' labels, grouping labels and label_replace's, and syntax errors", () => {
    expect(parsePromQL('histogram_quantile(0.99, sum by (le, provider) (rate(x_bucket{namespace=~"$namespace",outcome="issued"}[$__rate_interval]))) * 1e9'))
      .toEqual({ errors: [], selectors: [{ metric: "x_bucket", labels: ["namespace", "outcome"] }], grouped: ["le", "provider"], madeUp: [] });
    const joined = parsePromQL('sum by (role) (label_replace(rate(a{spiffe_id=~"$spiffe_id"}[5m]), "role", "$1", "spiffe_id", "spiffe://[^/]+/agent/(.+)")) / ignoring(x) b + on(y) group_left(z) c offset 1h');
    expect(joined.selectors.map((s) => s.metric)).toEqual(["a", "b", "c"]);
    expect(joined.grouped).toEqual(["role", "x", "y", "z"]);
    expect(joined.madeUp).toEqual(["role"]);
    expect(parsePromQL("sum(rate(x[5m])").errors).not.toEqual([]);
    expect(parsePromQL("rate(x{a=}[5m])").errors).not.toEqual([]);
    expect(variableExpr('label_values(hexr_cache_hits{namespace=~"$namespace"}, pod)')).toBe('hexr_cache_hits{namespace=~"$namespace"}');
    expect([...exposedSeries('# TYPE x counter\nx{tier="L1",a="b"} 1\ny 2\nz_bucket{le="+Inf"} 3\n')]).toEqual([["x", new Set(["tier", "a"])], ["y", new Set()], ["z_bucket", new Set(["le"])]]);
  });
});

describe("every metric the dashboard queries is emitted (a running stack, scraped)", () => {
  const RESEARCHER = "spiffe://hexr.local/agent/acme-corp/content-crew/researcher"; // OPA: llm_openai:gpt-4o
  let provider: LlmProvider;
  let stack: Stack;
  let emitted: Map<string, Set<string>>;
  const scrapes: Record<string, string> = {};
  const key = `sk-proj-${randomBytes(24).toString("base64url")}`;

  beforeAll(async () => {
    provider = await startLlmProvider({ keys: { openai: [key] } });
    stack = await startStack({
      metrics: true,
      llm: {
        providers: { openai: provider.url, anthropic: provider.url, azure_openai: provider.url },
        section: { providers: { openai: { models: ["gpt-4o"] } }, prices: { "gpt-4o": { input: 2.5, cached_input: 1.25, output: 10 } }, admin_spiffe_ids: [LLM_ADMIN_ID] },
      },
    });
    const agent = await mintJwtSvid(DEMO_AGENT_ID);
    const researcher = await mintJwtSvid(RESEARCHER);
    // One exchange (L3), then the same from L1.
    for (let i = 0; i < 2; i++) {
      const answer = await exchange(stack.envoy, { token: agent, service: "aws_s3" });
      expect(answer.status, summary(answer)).toBe(200);
    }
    const auth: [string, string] = ["authorization", `Bearer ${researcher}`];
    const put = await request(`${stack.envoy.agentUrl}/v1/secrets/OPENAI_API_KEY`, { method: "PUT", headers: [auth, ["content-type", "application/json"]], body: JSON.stringify({ value: key }) });
    expect(put.status, summary(put)).toBe(201);
    const read = await request(`${stack.envoy.agentUrl}/v1/secrets/OPENAI_API_KEY`, { headers: [auth] });
    expect(read.status, summary(read)).toBe(200);
    const llm = await request(`${stack.envoy.agentUrl}/v1/llm/openai/v1/chat/completions`, {
      method: "POST", headers: [auth, ["content-type", "application/json"]], body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }] }),
    });
    expect(llm.status, summary(llm)).toBe(200);
    // The exchange filter hands its counters to Envoy on its tick (metrics_flush_ms).
    await eventually("the L1 hit in the sidecar's stats", async () => /^hexr_cache_hits\{tier="L1"\} [1-9]/m.test((await request(stack.envoy.statsUrl)).text));
    const urls = { sidecar: stack.envoy.statsUrl, ...stack.metricsUrls! };
    for (const [name, url] of Object.entries(urls)) {
      const answer = await request(url!);
      expect(answer.status, `${name}: ${url}`).toBe(200);
      scrapes[name] = answer.text;
    }
    emitted = new Map();
    for (const text of Object.values(scrapes)) {
      for (const [series, labels] of exposedSeries(text)) emitted.set(series, new Set([...(emitted.get(series) ?? []), ...labels]));
    }
  });

  afterAll(async () => {
    await stack?.stop();
    await provider?.stop();
  });

  it("each service serves its own metrics on /metrics, and nothing secret", () => {
    expect(scrapes.injector).toMatch(/^hexr_injector_exchanges_total\{tool="aws_s3",provider="aws",decision="allow",outcome="issued",status="200"\} 1$/m);
    expect(scrapes.injector).toMatch(/^hexr_injector_exchanges_total\{tool="llm_openai",provider="llm",decision="allow",outcome="issued",status="200"\} 1$/m);
    expect(scrapes.bridge).toMatch(/^hexr_bridge_requests_total\{operation="cred_get",status="404"\} [1-9]/m);
    expect(scrapes.vault).toMatch(/^hexr_vault_requests_total\{operation="get",status="200",outcome="ok"\} [1-9]/m);
    for (const [name, text] of Object.entries(scrapes)) {
      expect(text.includes(key), `${name}: the API key`).toBe(false);
      expect(/eyJ[A-Za-z0-9_-]{10,}\./.test(text), `${name}: a JWT`).toBe(false);
    }
  });

  it("queries only metric names the code emits, with labels those metrics carry", () => {
    const problems: string[] = [];
    for (const { where, expr } of dashboardExprs(dashboard)) {
      const { selectors, grouped, madeUp } = parsePromQL(expr);
      for (const { metric, labels } of selectors) {
        const carried = emitted.get(metric);
        if (!carried) {
          problems.push(`${where}: ${metric || "a selector without a metric name"} is not emitted`);
          continue;
        }
        for (const label of labels) if (!SCRAPE_LABELS.has(label) && !carried.has(label)) problems.push(`${where}: ${metric} has no label ${label}`);
      }
      // Every label it aggregates or matches by is on one of the metrics it selects, or made up by label_replace.
      const carried = new Set(selectors.flatMap(({ metric }) => [...(emitted.get(metric) ?? [])]));
      for (const label of grouped) {
        if (!SCRAPE_LABELS.has(label) && !madeUp.includes(label) && !carried.has(label)) problems.push(`${where}: groups by ${label}, which no metric it selects carries`);
      }
    }
    expect(problems).toEqual([]);
    expect(dashboardExprs(dashboard).length).toBeGreaterThan(40);
  });

  it("would fail on a name the code no longer emits (the flat names before stats_tags, say)", () => {
    expect(emitted.has("hexr_cache_hits_tier_L1")).toBe(false);
    expect(parsePromQL('rate(hexr_cache_hits_tier_L1{pod=~"$pod"}[5m])').selectors.filter(({ metric }) => !emitted.has(metric)).map(({ metric }) => metric)).toEqual(["hexr_cache_hits_tier_L1"]);
  });
});
