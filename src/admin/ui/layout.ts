import { Html, html } from './html';

/** The page shell of the admin UI: one stylesheet inline, no scripts, nothing fetched from elsewhere. */

const STYLE = `
:root { --fg:#1d2330; --muted:#5d6675; --line:#d9dde3; --bg:#f6f7f9; --card:#fff;
  --ok:#2e9d5b; --bad:#d64545; --warn:#e39b2d; --info:#3b7dd8; --idle:#8a8f98; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header.top { background:#1d2330; color:#fff; padding:10px 24px; display:flex; gap:24px; align-items:baseline; }
header.top a { color:#fff; text-decoration:none; font-weight:600; }
header.top .sub { color:#aab2c0; font-size:13px; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 28px 0 10px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px; }
table { border-collapse: collapse; width: 100%; background:var(--card); }
th, td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); vertical-align: top; }
th { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
a { color:#2359b5; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; background:var(--idle); }
.badge.succeeded { background:var(--ok); } .badge.compensated { background:var(--warn); }
.badge.stuck, .badge.failed { background:var(--bad); } .badge.running, .badge.compensating { background:var(--info); }
.facts { display:grid; grid-template-columns: max-content 1fr; gap:4px 16px; margin:0; }
.facts dt { color:var(--muted); } .facts dd { margin:0; }
form.filters { display:flex; gap:12px; align-items:end; margin-bottom:14px; flex-wrap: wrap; }
form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); gap:2px; }
form.filters select, form.filters input { font: inherit; padding:4px 6px; border:1px solid var(--line); border-radius:4px; background:#fff; }
form.filters button { font: inherit; padding:5px 14px; border-radius:4px; border:1px solid #2359b5; background:#2359b5; color:#fff; }
.empty { color:var(--muted); padding: 24px; text-align:center; }
.error { color: var(--bad); }
svg.timeline { width:100%; height:auto; background:var(--card); border:1px solid var(--line); border-radius:8px; }
svg.timeline text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg.timeline .axis text { fill: var(--muted); font-size: 11px; }
.legend { display:flex; gap:16px; font-size:12px; color:var(--muted); margin:6px 0 0; flex-wrap: wrap; }
.legend i { display:inline-block; width:12px; height:10px; border-radius:2px; margin-right:5px; vertical-align:-1px; }
.chart { font-size: 12px; }
.chart .state { border:1px solid #9aa3b1; border-radius:8px; background:#fff; padding:6px 8px; margin:4px; }
.chart .state > .name { font-weight:600; }
.chart .state > .name .kind { font-weight:400; color:var(--muted); font-size:11px; margin-left:6px; }
.chart .state.final { border-width:3px; border-style:double; }
.chart .state.initial > .name::before { content:"● "; color:#1d2330; }
.chart .state.visited { background:#eef5ff; border-color:var(--info); }
.chart .state.parallel > .children { display:grid; grid-auto-flow: column; grid-auto-columns: 1fr; }
.chart .state.parallel > .children > .state + .state { border-left:2px dashed #9aa3b1; }
.chart .state.compound > .children { display:flex; flex-wrap:wrap; align-items:flex-start; }
.chart .state.compound > .children > .state.compound, .chart .state.compound > .children > .state.parallel { flex-basis: 100%; }
.chart ul { list-style:none; margin:2px 0 0; padding:0; color:var(--muted); font-size:11px; }
.chart ul li b { color: var(--fg); font-weight:600; }
details summary { cursor: pointer; color:#2359b5; margin: 10px 0; }
pre { background:#1d2330; color:#e6e9ef; padding:12px; border-radius:6px; overflow:auto; font-size:12px; }
`;

export function page(title: string, body: Html, options: { refreshSeconds?: number } = {}): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        ${options.refreshSeconds ? html`<meta http-equiv="refresh" content="${options.refreshSeconds}" />` : ''}
        <title>${title} · sagamesh</title>
        <style>
          ${new Html(STYLE)}
        </style>
      </head>
      <body>
        <header class="top"><a href="/ui">sagamesh</a><span class="sub">sagas · read-only</span></header>
        <main>${body}</main>
      </body>
    </html> `.value;
}
