import type { SagaView, TimelineBar } from '../timeline';
import { formatDuration } from './format';
import type { Html } from './html';
import { html } from './html';

/**
 * One saga as bars over time: a lane per step for its action attempts and, when it was undone, a
 * lane for its compensation (and replays). Colours say the outcome; each bar's tooltip has the
 * details. Drawn on the server as SVG: no script, readable in any browser.
 */

export const OUTCOME_COLOURS: Readonly<Record<string, string>> = {
  success: '#2e9d5b',
  rejected: '#d64545',
  retryable: '#e39b2d',
  'no answer': '#8a8f98',
  'in flight': '#3b7dd8',
};

const WIDTH = 1100;
const LABEL_WIDTH = 170;
const RIGHT = 70;
const TOP = 34;
const LANE = 30;
const BAR = 16;

interface Lane {
  readonly step: string;
  readonly lane: TimelineBar['lane'];
  readonly bars: TimelineBar[];
}

function lanesOf(view: SagaView, stepOrder: readonly string[]): Lane[] {
  const order = [...stepOrder];
  for (const b of view.bars) if (!order.includes(b.step)) order.push(b.step);
  const lanes: Lane[] = [];
  for (const step of order) {
    for (const lane of ['action', 'compensation'] as const) {
      const bars = view.bars.filter((b) => b.step === step && b.lane === lane);
      if (bars.length > 0 || lane === 'action') lanes.push({ step, lane, bars });
    }
  }
  return lanes;
}

/** Tick spacing of 1, 2 or 5 × 10^k ms giving about six ticks. */
function tickStep(spanMs: number): number {
  const raw = spanMs / 6;
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? power * 10;
}

export function timelineSvg(view: SagaView, stepOrder: readonly string[]): Html {
  const lanes = lanesOf(view, stepOrder);
  const span = Math.max(view.endedAt - view.startedAt, 1);
  const plot = WIDTH - LABEL_WIDTH - RIGHT;
  const x = (t: number): number => LABEL_WIDTH + ((t - view.startedAt) / span) * plot;
  const height = TOP + lanes.length * LANE + 16;
  const step = tickStep(span);
  const ticks: number[] = [];
  for (let t = 0; t <= span; t += step) ticks.push(t);

  const axis = html`<g class="axis"
    >${ticks.map(
      (t) =>
        html`<line
            x1="${x(view.startedAt + t)}"
            x2="${x(view.startedAt + t)}"
            y1="${TOP - 6}"
            y2="${height - 10}"
            stroke="#e6e9ef"
          />
          <text x="${x(view.startedAt + t)}" y="${TOP - 12}" text-anchor="middle"
            >${formatDuration(t)}</text
          >`,
    )}</g
  >`;

  const rows = lanes.map((lane, i) => {
    const y = TOP + i * LANE;
    const label = lane.lane === 'action' ? lane.step : `${lane.step} · undo`;
    const bars = lane.bars.map((b) => {
      const left = x(b.start);
      const width = Math.max(x(b.end) - left, 3);
      const colour = OUTCOME_COLOURS[b.outcome] ?? '#8a8f98';
      const what = b.replay ? 'replay' : b.kind;
      const tip = [
        `${b.step} ${what} #${b.attempt}: ${b.outcome}${b.httpStatus !== undefined ? ` (HTTP ${b.httpStatus})` : ''}`,
        `${formatDuration(b.start - view.startedAt)} → ${formatDuration(b.end - view.startedAt)} (${formatDuration(b.end - b.start)})`,
        ...(b.error ? [`${b.error.code}: ${b.error.message}`] : []),
      ].join('\n');
      const text = `#${b.attempt}${b.replay ? ' replay' : ''}${b.httpStatus !== undefined ? ` ${b.httpStatus}` : ''}`;
      return html`<g
        class="bar"
        data-step="${b.step}"
        data-kind="${b.kind}"
        data-lane="${b.lane}"
        data-replay="${b.replay}"
        data-outcome="${b.outcome}"
      >
        <title>${tip}</title>
        <rect
          x="${left}"
          y="${y + (LANE - BAR) / 2}"
          width="${width}"
          height="${BAR}"
          rx="3"
          fill="${colour}"
          ${lane.lane === 'compensation' ? html` stroke="#1d2330" stroke-dasharray="3 2"` : ''}
        />
        ${
          // Inside a bar wide enough to hold it, otherwise just right of it.
          width > text.length * 7 + 8
            ? html`<text x="${left + 4}" y="${y + LANE / 2 + 4}" style="fill:#fff">${text}</text>`
            : html`<text x="${left + width + 4}" y="${y + LANE / 2 + 4}">${text}</text>`
        }
      </g>`;
    });
    return html`<g class="lane"
      ><text x="10" y="${y + LANE / 2 + 4}" font-weight="${lane.lane === 'action' ? '600' : '400'}"
        >${label}</text
      >${bars}</g
    >`;
  });

  const backgrounds = lanes.map(
    (_, i) =>
      html`<rect
        x="0"
        y="${TOP + i * LANE}"
        width="${WIDTH}"
        height="${LANE}"
        fill="${i % 2 ? '#f4f6f8' : '#ffffff'}"
      />`,
  );
  const marks = view.marks.map(
    (m) =>
      html`<g class="mark"
        ><line
          x1="${x(m.at)}"
          x2="${x(m.at)}"
          y1="${TOP - 4}"
          y2="${height - 10}"
          stroke="#1d2330"
          stroke-dasharray="4 3"
        />
        ${
          x(m.at) > WIDTH - RIGHT - 60
            ? html`<text x="${x(m.at) - 3}" y="${height - 2}" font-size="11" text-anchor="end"
                >${m.label}</text
              >`
            : html`<text x="${x(m.at) + 3}" y="${height - 2}" font-size="11">${m.label}</text>`
        }</g
      >`,
  );

  return html`<svg
      class="timeline"
      role="img"
      aria-label="saga timeline"
      viewBox="0 0 ${WIDTH} ${height + 4}"
      xmlns="http://www.w3.org/2000/svg"
    >
      ${backgrounds}${axis}${rows}${marks}
    </svg>
    <div class="legend">
      ${Object.entries(OUTCOME_COLOURS).map(
        ([outcome, colour]) => html`<span><i style="background:${colour}"></i>${outcome}</span>`,
      )}<span><i style="background:#fff;border:1px dashed #1d2330"></i>compensation lane</span>
    </div>`;
}
