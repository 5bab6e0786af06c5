import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import type { Stack } from '../../demo/stack';
import { REPO_ROOT, startStack } from '../../demo/stack';
import { request } from '../helpers/http';

/**
 * The admin UI in a real headless Chromium (Debian's, installed by scripts/ci/install-chromium.sh):
 * the list of recent sagas, one saga's timeline and its definition's state chart. Screenshots are
 * kept in test-artifacts/. Without Chromium this test fails; it never skips.
 */
jest.setTimeout(90_000);

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

let stack: Stack;
let browser: BrowserContext;
let page: Page;
const pageErrors: string[] = [];
let failedId = '';
let okId = '';

beforeAll(async () => {
  stack = await startStack({
    ports: 'free',
    sagasDir: path.join(__dirname, '..', 'fixtures', 'sagas', 'operate'),
  });
  const book = (over: Record<string, unknown>) =>
    request(`${stack.ingressUrl}/trips`, {
      method: 'POST',
      body: { guest: 'Ada', hotel: { nights: 2 }, flight: { to: 'LIS' }, car: { class: 'compact' }, ...over },
    });
  const ok = await book({ hotel: { nights: 2, fault: 'flaky:1' } });
  okId = ok.headers.get('x-sagamesh-saga-id') ?? '';
  const failed = await book({
    flight: { to: 'LIS', fault: 'slow:150' },
    car: { class: 'compact', fault: 'fail' },
  });
  failedId = failed.body.sagaId as string;
  expect([ok.status, failed.status]).toEqual([201, 409]);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-chromium-'));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text());
  });
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

it('lists recent sagas with their status, and filters them', async () => {
  await page.goto(`${stack.adminUrl}/ui`);
  await expect(page.locator('h1').textContent()).resolves.toBe('Recent sagas');
  const rows = page.locator('tr.saga-row');
  expect(await rows.count()).toBe(2);
  await expect(rows.nth(0).getAttribute('data-saga-id')).resolves.toBe(failedId);
  await expect(rows.nth(0).locator('.badge').textContent()).resolves.toBe('compensated');
  await expect(rows.nth(1).locator('.badge').textContent()).resolves.toBe('succeeded');
  await page.screenshot({ path: path.join(ARTIFACTS, 'ui-sagas-list.png'), fullPage: true });

  await page.selectOption('select[name=status]', 'succeeded');
  await page.click('form.filters button');
  await page.waitForURL(/status=succeeded/);
  expect(await page.locator('tr.saga-row').count()).toBe(1);
  await expect(page.locator('tr.saga-row').getAttribute('data-saga-id')).resolves.toBe(okId);
});

it('shows one saga as a timeline of steps and compensations, and its definition as a state chart', async () => {
  await page.goto(`${stack.adminUrl}/ui`);
  await page.click(`a[href="/ui/sagas/${failedId}"]`);
  await page.waitForURL(`**/ui/sagas/${failedId}`);
  await expect(page.locator('h1').textContent()).resolves.toContain(failedId);
  await expect(page.locator('.facts').textContent()).resolves.toContain('SAGAMESH_ERR_STEP_REJECTED');

  // Bars: every action in its step's lane; the undo in a lane of its own. The flight's booking was
  // on its way when the car failed: the compensation waited for it (no replay), then undid it.
  const bars = (step: string, lane: string) =>
    page.locator(`svg.timeline g.bar[data-step="${step}"][data-lane="${lane}"]`);
  for (const step of ['hotel', 'flight', 'car']) expect(await bars(step, 'action').count()).toBe(1);
  await expect(bars('car', 'action').getAttribute('data-outcome')).resolves.toBe('rejected');
  await expect(bars('flight', 'action').getAttribute('data-outcome')).resolves.toBe('success');
  expect(await bars('hotel', 'compensation').and(page.locator('[data-kind="compensation"]')).count()).toBe(1);
  expect(await page.locator('svg.timeline g.bar[data-replay="true"]').count()).toBe(0);
  await expect(
    page
      .locator('svg.timeline g.bar[data-step="flight"][data-kind="compensation"]')
      .getAttribute('data-outcome'),
  ).resolves.toBe('success');
  expect(await bars('car', 'compensation').count()).toBe(0);

  // Over time: the undo starts after the car failed, and lies below it on its own lane.
  const box = async (step: string, lane: string) => {
    const b = await bars(step, lane).first().locator('rect').boundingBox();
    if (!b) throw new Error(`no bar for ${step} ${lane}`);
    return b;
  };
  const car = await box('car', 'action');
  const hotel = await box('hotel', 'action');
  const hotelUndo = await box('hotel', 'compensation');
  expect(hotelUndo.x).toBeGreaterThanOrEqual(car.x + car.width - 1);
  expect(hotelUndo.y).toBeGreaterThan(hotel.y);
  expect(car.y).toBeGreaterThan(hotelUndo.y);
  expect(await page.locator('svg.timeline g.mark').count()).toBe(2); // compensating, compensated

  // The state chart: the machine's parallel regions, with the states this saga went through marked.
  expect(await page.locator('.chart .state.parallel').count()).toBe(2);
  expect(await page.locator('.chart [data-state="saga.running.hotel.calling"]').count()).toBe(1);
  await expect(
    page.locator('.chart [data-state="saga.compensated"]').getAttribute('class'),
  ).resolves.toContain('visited');
  await expect(
    page.locator('.chart [data-state="saga.succeeded"]').getAttribute('class'),
  ).resolves.not.toContain('visited');

  await page.screenshot({ path: path.join(ARTIFACTS, 'ui-saga-timeline.png'), fullPage: true });
  expect(fs.statSync(path.join(ARTIFACTS, 'ui-saga-timeline.png')).size).toBeGreaterThan(10_000);
  expect(pageErrors).toEqual([]);
});

it('escapes saga data and answers unknown sagas with a coded 404', async () => {
  const res = await page.goto(`${stack.adminUrl}/ui/sagas/%3Cscript%3Ealert(1)%3C%2Fscript%3E`);
  expect(res?.status()).toBe(404);
  await expect(page.locator('body').textContent()).resolves.toContain('SAGAMESH_ERR_SAGA_NOT_FOUND');
  expect(await page.locator('script').count()).toBe(0);
});

it('with protected contents, a browser shows the token it is asked for and then the saga`s contents', async () => {
  const token = 'ui-admin-token-0123456789';
  await stack.restartSagamesh({ SAGAMESH_ADMIN_TOKEN: token, SAGAMESH_ADMIN_PROTECT_CONTENTS: 'true' });
  // A browser whose user answers the Basic prompt with the token (any user name).
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sagamesh-chromium-'));
  const prompted = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    httpCredentials: { username: 'operator', password: token },
  });
  try {
    const tab = prompted.pages()[0] ?? (await prompted.newPage());
    const requests: string[] = [];
    tab.on('request', (r) => requests.push(r.url()));
    await tab.goto(`${stack.adminUrl}/ui/sagas/${failedId}`);
    const records = tab.locator('details pre').last();
    await expect(records.textContent()).resolves.not.toContain('"guest"');
    await tab.click('text=Show contents');
    await tab.waitForURL(`**/ui/sagas/${failedId}?contents=show`);
    await expect(records.textContent()).resolves.toContain('"guest": "Ada"');
    expect(tab.url()).not.toContain(token);
    expect(requests.filter((u) => u.includes(token))).toEqual([]);
  } finally {
    await prompted.close();
  }
});
