// PromQL as the dashboard's test reads it, with Prometheus' own grammar (@prometheus-io/lezer-promql,
// the parser of Prometheus' web UI): whether an expression parses, which metrics it selects with
// the label names its matchers use, the labels it groups or matches by, and the labels label_replace
// and label_join make up. And the series a Prometheus text scrape holds.
import { parser } from "@prometheus-io/lezer-promql";

type SyntaxNode = ReturnType<typeof parser.parse>["topNode"];

export interface Selector {
  metric: string;
  /** Label names its matchers use, e.g. ["namespace", "tier"] for x{namespace=~"$namespace",tier="L1"}. */
  labels: string[];
}

export interface ParsedExpr {
  /** Where the grammar failed, as "offset N: text around it"; empty when it parses. */
  errors: string[];
  selectors: Selector[];
  /** Labels of `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`, `group_right (...)`. */
  grouped: string[];
  /** Labels label_replace / label_join write (their second argument). */
  madeUp: string[];
}

/** Grafana's interval variables stand where PromQL wants a duration; any duration parses the same. */
export function withoutGrafanaIntervals(expr: string): string {
  return expr.replace(/\$__(?:rate_interval|range|interval)\b|\$\{__(?:rate_interval|range|interval)\}/g, "5m");
}

export function parsePromQL(expr: string): ParsedExpr {
  const text = withoutGrafanaIntervals(expr);
  const tree = parser.parse(text);
  const parsed: ParsedExpr = { errors: [], selectors: [], grouped: [], madeUp: [] };
  const source = (node: SyntaxNode) => text.slice(node.from, node.to);
  const unquote = (literal: string) => literal.slice(1, -1);
  tree.iterate({
    enter(ref) {
      const node = ref.node;
      if (ref.type.isError) {
        parsed.errors.push(`offset ${ref.from}: …${text.slice(Math.max(0, ref.from - 20), ref.to + 20)}…`);
        return;
      }
      switch (ref.name) {
        case "VectorSelector": {
          const identifier = node.getChild("Identifier");
          const matchers = node.getChild("LabelMatchers");
          const labels = matchers ? matchers.getChildren("UnquotedLabelMatcher").map((m) => m.getChild("LabelName")).filter((n): n is SyntaxNode => n !== null).map(source) : [];
          // {__name__="x"} (QuotedLabelMatcher / a name matcher) is not used by the dashboard; a selector without a name is reported as "".
          parsed.selectors.push({ metric: identifier ? source(identifier) : "", labels });
          break;
        }
        case "GroupingLabels":
          parsed.grouped.push(...node.getChildren("LabelName").map(source));
          break;
        case "FunctionCall": {
          const name = node.getChild("FunctionIdentifier");
          if (name && (name.getChild("LabelReplace") || name.getChild("LabelJoin"))) {
            const target = node.getChild("FunctionCallBody")?.getChild("StringLiteral");
            if (target) parsed.madeUp.push(unquote(source(target)));
          }
          break;
        }
      }
    },
  });
  return parsed;
}

/** A Grafana query variable's PromQL: label_values(expr, label) → expr; query_result(expr) → expr; else none. */
export function variableExpr(query: string): string | null {
  const labelValues = /^\s*label_values\(\s*(.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/s.exec(query);
  if (labelValues) return labelValues[1];
  const queryResult = /^\s*query_result\(\s*(.*)\)\s*$/s.exec(query);
  if (queryResult) return queryResult[1];
  return null;
}

/** Series names of a Prometheus text exposition, each with the label names it carries. */
export function exposedSeries(text: string): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s/.exec(line);
    if (!match) continue;
    const labels = series.get(match[1]) ?? new Set<string>();
    for (const label of (match[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) labels.add(label[1]);
    series.set(match[1], labels);
  }
  return series;
}

/** Every PromQL expression of a dashboard: each panel's targets (rows' nested panels too) and each query variable's. */
export function dashboardExprs(dashboard: any): { where: string; expr: string }[] {
  const exprs: { where: string; expr: string }[] = [];
  const visit = (panels: any[] | undefined) => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? []) if (typeof target.expr === "string") exprs.push({ where: `panel "${panel.title}" ${target.refId}`, expr: target.expr });
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== "query") continue;
    const query = typeof variable.query === "string" ? variable.query : variable.query?.query;
    const expr = typeof query === "string" ? variableExpr(query) : null;
    if (expr) exprs.push({ where: `variable $${variable.name}`, expr });
  }
  return exprs;
}
