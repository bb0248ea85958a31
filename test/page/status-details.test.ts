// The status page in a real browser (Debian's chromium, driven by playwright-core) against a
// real server: it names the release and the commit subject of what is served, keeps a
// rejection's reason in the history, and shows "nothing rolling out" as calm, not a wait.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { FleetRepo, startServer, testConfig, type Running } from '../reconciler/helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip =
  !existsSync(CHROMIUM) && !process.env['CI']
    ? 'chromium is not installed (apt-get install chromium)'
    : false;

describe('status page details', { skip, timeout: 120_000 }, () => {
  let repo: FleetRepo;
  let server: Running;
  let browser: Browser;
  let page: Page;
  const rejectedRevision = 'b'.repeat(40);
  const reason = 'canary: failed ratio 0.5 > 0.1 (10 agents)';

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(testConfig({ repo: repo.origin, dataDir: `${repo.root}/data` }));
    // A rejection recorded as the engine records it: the subject names the revision, the
    // reason is in the state's rejected list.
    repo.writeState(
      {
        apiVersion: 'fleetwave.dev/v1',
        kind: 'RolloutState',
        stable: repo.head(),
        rejected: [{ revision: rejectedRevision, at: '2026-11-27T09:12:00Z', wave: 0, reason }],
        paused: false,
      },
      `fleetwave: reject ${rejectedRevision.slice(0, 12)} at wave canary\n\n${reason}\n`,
    );
    await server.app.reconciler.sync.sync();
    await server.app.rollout.evaluate();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    page = await browser.newPage();
    await page.goto(`${server.url}/`);
    // Strings run in the page (this file is compiled without the DOM's types).
    await page.waitForFunction("document.getElementById('stable').textContent !== '…'");
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await repo?.cleanup();
  });

  it('shows the release version and the commit subject of stable', async () => {
    assert.equal(await page.locator('#stable-version').textContent(), '2.4.0');
    assert.equal(await page.locator('#stable-subject').textContent(), 'the example fleet');
  });

  it("keeps a rejection's reason in the history", async () => {
    const history = (await page.locator('#history tbody').textContent()) ?? '';
    assert.match(history, /reject bbbbbbbbbbbb at wave canary/);
    assert.ok(history.includes(reason), history);
  });

  it('shows nothing rolling out as calm, not an amber wait', async () => {
    const pill = page.locator('#decision .pill');
    assert.equal(await pill.textContent(), 'nothing rolling out');
    const classes = (await pill.getAttribute('class')) ?? '';
    assert.doesNotMatch(classes, /\bwait\b/);
    const color = await page.evaluate(
      "getComputedStyle(document.querySelector('#decision .pill')).backgroundColor",
    );
    assert.notEqual(color, 'rgb(154, 103, 0)', 'the amber of a wait');
  });
});
