// The dashboard in a real browser (Debian's Chromium driven by playwright-core), run by
// tests/tests/e2e/dashboard.rs against a live cluster:
//
//   node tests/ui/dashboard.mjs <base url> <admin token> <nodes> <revision> <screenshot dir>
//
// with PLAYWRIGHT_CORE naming the playwright-core package directory (ESM `import` does
// not read NODE_PATH). It signs in (a wrong token first), checks the cluster view, then
// prints `ready` and reads `<watched deployment> <deployment to stop>` from stdin: the
// test creates them only then, so the page sees every change live. It follows the first
// deployment's cells until one reaches Succeeded without a reload, opens a target and the
// revision's spread, stops the second deployment with the button, and checks at 375 px
// that nothing overflows. Exit 0 prints `ok ...`; any failure one line `FAIL <step>: why`.

import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';

const [baseUrl, token, nodeCount, revision, shotDir] = process.argv.slice(2);
const STEP_TIMEOUT_MS = 30000;
let step = 'start';

function fail(reason) {
  console.log(`FAIL ${step}: ${String(reason).split('\n')[0]}`);
  process.exit(1);
}

if (!baseUrl || !token || !nodeCount || !revision || !shotDir)
  fail('usage: dashboard.mjs <url> <token> <nodes> <revision> <screenshot dir>');
if (!process.env.PLAYWRIGHT_CORE) fail('PLAYWRIGHT_CORE (the playwright-core package directory) is not set');
const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

const timer = setTimeout(() => fail('the whole run took over 120 s'), 120000);

async function main() {
  step = 'launch chromium';
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--ignore-certificate-errors',
    ],
    timeout: STEP_TIMEOUT_MS,
  });
  try {
    await run(browser);
  } finally {
    await browser.close();
  }
}

async function run(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('dialog', (dialog) => dialog.accept());
  const visit = (hash) => page.evaluate((target) => (location.hash = target), hash);

  step = 'sign in with a wrong token';
  await page.goto(`${baseUrl}/ui`);
  await page.fill('#token', 'not-the-token');
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#login-error:not([hidden])');

  step = 'sign in';
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  const stored = await page.evaluate(() => sessionStorage.getItem('fleetmesh.token'));
  if (stored !== token) fail(`sessionStorage holds ${JSON.stringify(stored)}, not the token`);

  step = 'cluster view';
  await page.waitForFunction(
    (count) => document.querySelectorAll('#cluster-nodes tbody tr[data-health="alive"]').length === count,
    Number(nodeCount),
  );
  const leaders = await page.$$eval('#cluster-nodes tr.leader', (rows) => rows.map((row) => row.dataset.role));
  if (leaders.length !== 1 || leaders[0] !== 'voter')
    fail(`expected one leader row, a voter; got ${JSON.stringify(leaders)}`);
  await page.waitForSelector('#live[data-state="live"]');

  step = 'deployments view';
  await page.click('#nav a[data-view="deployments"]');
  await page.waitForSelector('.view.deployments .body > *');
  // Marks this document: a reload would lose it.
  await page.evaluate(() => (window.dashboardTestMark = 'same page'));
  console.log('ready');
  const [watched, stopped] = (await nextLine()).trim().split(/\s+/);

  step = `the new deployment ${watched} appears live`;
  await page.click(`tr[data-deployment="${watched}"] a`);
  await page.waitForSelector('#waves .cell');

  step = `a cell of ${watched} turns Succeeded live`;
  const first = await page.$$eval('#waves .cell', (cells) =>
    Object.fromEntries(cells.map((cell) => [cell.dataset.target, cell.dataset.status])),
  );
  await page.evaluate(() => {
    window.dashboardSeen = {};
    const note = (cell) =>
      (window.dashboardSeen[cell.dataset.target] ||= []).at(-1) !== cell.dataset.status &&
      window.dashboardSeen[cell.dataset.target].push(cell.dataset.status);
    document.querySelectorAll('#waves .cell').forEach(note);
    new MutationObserver(() => document.querySelectorAll('#waves .cell').forEach(note)).observe(
      document.getElementById('view'),
      { subtree: true, attributes: true, childList: true },
    );
  });
  const pending = Object.keys(first).filter((target) => first[target] !== 'Succeeded');
  if (pending.length === 0) fail(`every cell was Succeeded when the page opened it: ${JSON.stringify(first)}`);
  await page.waitForFunction(
    (targets) =>
      targets.some(
        (target) => document.querySelector(`#waves .cell[data-target="${target}"]`)?.dataset.status === 'Succeeded',
      ),
    pending,
  );
  // Past the cells' colour transition (0.4 s).
  await page.waitForTimeout(600);
  await page.screenshot({ path: path.join(shotDir, 'ui-screenshot.png'), fullPage: true });
  await page.waitForSelector('#deployment-status[data-status="Succeeded"]', { timeout: 60000 });
  const mark = await page.evaluate(() => window.dashboardTestMark);
  if (mark !== 'same page') fail('the page was reloaded while following the deployment');
  const seen = await page.evaluate(() => window.dashboardSeen);
  const cellStates = Object.entries(seen)
    .map(([target, states]) => `${target}:${states.join('>')}`)
    .join(' ');
  const rows = await page.$$eval('table.events tbody tr', (trs) => trs.length);
  if (rows < 5) fail(`the deployment's event table has ${rows} rows`);

  step = 'a target with its lifecycle events';
  await page.click(`#waves .cell[data-target="${pending[0]}"]`);
  await page.waitForSelector('#target-status .badge[data-status="Succeeded"]');
  const lifecycle = await page.$$eval('details.lifecycle', (items) =>
    items.map((item) => `${item.dataset.event}=${item.dataset.status}`),
  );
  if (!lifecycle.some((entry) => entry === 'ApplicationStart=Succeeded'))
    fail(`lifecycle events: ${lifecycle.join(', ')}`);

  step = 'revision spread';
  await visit(`#/revisions/${revision}`);
  await page.waitForFunction(() => document.querySelectorAll('#spread tbody tr[data-complete="true"]').length >= 2);

  step = 'traffic view';
  await page.click('#nav a[data-view="traffic"]');
  await page.waitForSelector('.view.traffic .body > *');

  step = `stop ${stopped} with the button`;
  await visit(`#/deployments/${stopped}`);
  await page.waitForSelector('#waves .cell[data-status="InProgress"]');
  await page.click('button[data-action="stop"]:not([disabled])');
  await page.waitForSelector('#deployment-status[data-status="Stopped"]');
  const answer = await page.evaluate(
    async ([id, bearer]) => {
      const response = await fetch('/v1/deploy/GetDeployment', {
        method: 'POST',
        headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ deploymentId: id }),
      });
      return (await response.json()).deploymentInfo;
    },
    [stopped, token],
  );
  if (answer.status !== 'Stopped') fail(`the API says ${stopped} is ${answer.status}`);
  await page.waitForSelector('button[data-action="stop"][disabled]');

  step = 'a refused action shows the API error';
  await page.evaluate(() => document.querySelector('button[data-action="stop"]').removeAttribute('disabled'));
  await page.click('button[data-action="stop"]');
  await page.waitForSelector('.actions .error:not([hidden])');
  const refusal = await page.textContent('.actions .error');

  step = 'narrow screen';
  await page.setViewportSize({ width: 375, height: 800 });
  const widths = [];
  for (const hash of [
    '#/cluster',
    '#/deployments',
    `#/deployments/${watched}`,
    `#/deployments/${watched}/targets/${pending[0]}`,
    `#/revisions/${revision}`,
    '#/applications',
    '#/traffic',
  ]) {
    await visit(hash);
    await page.waitForSelector('.view .body > *, #waves .cell, #target-status');
    await page.waitForTimeout(300);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    widths.push(width);
    if (width > 375) fail(`${hash} is ${width} px wide at a 375 px viewport`);
  }
  await visit(`#/deployments/${watched}`);
  await page.waitForSelector('#waves .cell');
  await page.screenshot({ path: path.join(shotDir, 'ui-screenshot-narrow.png') });

  if (pageErrors.length) fail(`errors in the page: ${pageErrors.join('; ')}`);
  console.log(
    `ok cells ${cellStates}; ${rows} event rows; refused: ${refusal.trim()}; widths at 375: ${widths.join(',')}`,
  );
}

main()
  .then(() => {
    clearTimeout(timer);
    process.exit(0);
  })
  .catch((error) => fail(error.message));
