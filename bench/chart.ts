// The latency chart of the results: one row per scenario (and per L1 size of the growth phase),
// bars for p50, p90 and p99 on a logarithmic axis, since an L1 hit and an STS exchange differ by
// orders of magnitude. Drawn as SVG, rasterised to PNG with resvg.
import { Resvg } from "@resvg/resvg-js";
import { fmtUs, type Results } from "./report.ts";

interface Row {
  label: string;
  p50: number;
  p90: number;
  p99: number;
}

const WIDTH = 1000;
const LEFT = 230;
const RIGHT = 130;
const TOP = 70;
const ROW = 46;
const BAR = 11;
const COLORS = { p50: "#1f5f99", p90: "#5b9bd5", p99: "#b9d3ee" };
const TICKS_US = [10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000];

export function renderChart(results: Results): Buffer {
  const svg = chartSvg(results);
  return new Resvg(svg, { fitTo: { mode: "width", value: WIDTH * 2 }, font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" } })
    .render()
    .asPng();
}

export function chartSvg(results: Results): string {
  const rows: Row[] = [
    ...results.scenarios.map((s) => ({ label: s.title, ...s.latencyUs })),
    ...results.growth.latency.map((g) => ({
      label: `L1 hit, ${g.keys.toLocaleString("en-US")} keys${g.afterSeconds > 5 ? ` (+${g.afterSeconds} s)` : ""}`,
      ...g.wrk.latencyUs,
    })),
  ];
  const values = rows.flatMap((r) => [r.p50, r.p99]).filter((v) => Number.isFinite(v) && v > 0);
  const minUs = Math.max(5, Math.min(...values) / 1.5);
  const maxUs = Math.max(...values) * 1.3;
  const plotWidth = WIDTH - LEFT - RIGHT;
  const x = (us: number) => LEFT + (Math.log(us / minUs) / Math.log(maxUs / minUs)) * plotWidth;
  const height = TOP + rows.length * ROW + 60;
  const floorP50 = results.scenarios.find((s) => s.id === "floor")!.latencyUs.p50;
  const growthStart = results.scenarios.length;

  const parts: string[] = [];
  parts.push(`<rect width="${WIDTH}" height="${height}" fill="white"/>`);
  parts.push(text(LEFT, 28, "Exchange filter latency per tier (1 connection, closed loop)", 17, "start", "bold"));
  parts.push(text(LEFT, 50, `${results.conditions.startedAt.slice(0, 16).replace("T", " ")} UTC · ${results.conditions.envoyVersion} · median of ${results.plan.rounds} rounds (L1 growth rows: one run each) · log scale`, 12, "start", "normal", "#555"));

  for (const us of TICKS_US.filter((t) => t >= minUs && t <= maxUs)) {
    const tx = x(us);
    parts.push(`<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${height - 50}" stroke="#e3e3e3"/>`);
    parts.push(text(tx, height - 32, us >= 1000 ? `${us / 1000} ms` : `${us} µs`, 11, "middle", "normal", "#555"));
  }
  const fx = x(floorP50);
  parts.push(`<line x1="${fx}" y1="${TOP - 6}" x2="${fx}" y2="${height - 50}" stroke="#c0392b" stroke-dasharray="4 3"/>`);
  parts.push(text(fx + 4, TOP - 10, "floor p50", 11, "start", "normal", "#c0392b"));

  rows.forEach((row, i) => {
    const y = TOP + i * ROW + (i >= growthStart ? 12 : 0);
    parts.push(text(LEFT - 10, y + 20, row.label, 13, "end"));
    (["p50", "p90", "p99"] as const).forEach((p, j) => {
      const value = row[p];
      if (!Number.isFinite(value) || value <= 0) return;
      const by = y + 4 + j * (BAR + 1);
      parts.push(`<rect x="${LEFT}" y="${by}" width="${Math.max(1, x(value) - LEFT)}" height="${BAR}" fill="${COLORS[p]}"/>`);
      parts.push(text(x(value) + 4, by + BAR - 1, `${p} ${fmtUs(value)}`, 10, "start", "normal", "#333"));
    });
  });
  if (rows.length > growthStart) {
    const y = TOP + growthStart * ROW + 2;
    parts.push(`<line x1="20" y1="${y}" x2="${WIDTH - 20}" y2="${y}" stroke="#999"/>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="DejaVu Sans, sans-serif">${parts.join("")}</svg>`;
}

function text(x: number, y: number, content: string, size: number, anchor: "start" | "middle" | "end", weight = "normal", fill = "#111"): string {
  const escaped = content.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return `<text x="${x}" y="${y}" font-size="${size}" text-anchor="${anchor}" font-weight="${weight}" fill="${fill}">${escaped}</text>`;
}
