// The status page in a real browser (Debian's chromium, driven by playwright-core) during a
// real demo run (`npm start`, left running after its story so the page can be read to the
// end): it shows the waves advancing, then the rejection. Screenshots land in test-results/.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort } from '../reconciler/helpers.ts';
import { until, type UntilOptions } from '../helpers/until.ts';

const CHROMIUM = '/usr/bin/chromium';
const DEMO = fileURLToPath(new URL('../../demo/main.ts', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));

const available = existsSync(CHROMIUM);
// In CI the browser is installed by .ci/run: a missing one is a failure there, not a skip.
const skip =
  !available && !process.env['CI'] ? 'chromium is not installed (apt-get install chromium)' : false;

describe('status page', { skip }, () => {
  let browser: Browser;
  let page: Page;
  let demo: ReturnType<typeof spawn>;
  let output = '';
  let exited: Promise<number | null>;
  let url: string;

  before(async () => {
    await mkdir(RESULTS, { recursive: true });
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;
    demo = spawn(process.execPath, [DEMO, '--agents', '600', '--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    demo.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    demo.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    exited = new Promise((resolve) => demo.once('exit', resolve));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  after(async () => {
    await browser?.close();
    if (demo && demo.exitCode === null) demo.kill('SIGTERM');
  });

  /** Waiting on the demo: up to `timeoutMs`, showing its output, and no longer once it exited. */
  const onDemo = (timeoutMs = 240_000): UntilOptions => ({
    timeoutMs,
    intervalMs: 250,
    diagnose: () => `--- demo output ---\n${output}`,
    stopIf: () => (demo.exitCode !== null ? `the demo exited with ${demo.exitCode}` : undefined),
  });

  it('shows the waves advancing, then the rejection, and the demo exits 0', async () => {
    await until(
      async () => (await page.goto(url))?.status() === 200,
      'the status page to answer',
      onDemo(),
    );
    // The page itself: four wave cards once the first status arrives.
    await until(
      async () => (await page.locator('[data-wave]').count()) === 4,
      'the wave cards',
      onDemo(),
    );
    assert.deepEqual(await page.locator('[data-wave] .name').allTextContents(), [
      'canary',
      'early',
      'europe',
      'everyone',
    ]);

    // Act 1: the candidate moves through the waves; the page marks the wave it is on.
    const seen = new Set<string>();
    await until(
      async () => {
        for (const w of await page.locator('[data-wave].current .name').allTextContents())
          seen.add(w);
        if (seen.size >= 2)
          await page.screenshot({ path: `${RESULTS}status-page-rollout.png`, fullPage: true });
        return (await page.locator('#history tbody').textContent())!.includes('is stable');
      },
      'the healthy change to become stable',
      onDemo(),
    );
    assert.ok(
      seen.size >= 2,
      `the page showed the candidate on ${[...seen].join(', ') || 'no wave'}`,
    );
    // The agents panel (the demo runs without tokens): during a rollout it watches the
    // candidate's waves for failing and silent agents.
    assert.match(
      (await page.locator('#agents-note').textContent())!,
      /candidate's waves|No rollout in progress/,
    );

    // Act 2: the rejection appears in the history, the last decision says why.
    await until(
      async () => (await page.locator('#history tbody').textContent())!.includes('reject'),
      'the rejection in the history',
      onDemo(),
    );
    await until(
      async () => (await page.locator('#decision').textContent())!.includes('failed ratio'),
      'the rejection as the last decision',
      onDemo(10_000),
    ).catch(() => undefined); // a later evaluation (of the revert) may already have replaced it
    await page.screenshot({ path: `${RESULTS}status-page-rejected.png`, fullPage: true });

    await until(() => output.includes('== explore:'), 'the story to end', onDemo());
    // Search by label selector, then by id: the inventory from the store.
    await page.fill('#agent-query', 'os=linux');
    await page.click('#agent-search button');
    // The rows of the search, not those of the failing-agents view shown before it.
    await until(
      async () =>
        /agents match/.test((await page.locator('#agents-note').textContent())!) &&
        (await page.locator('#agent-list tbody tr').count()) > 0,
      'agents matching os=linux',
      onDemo(10_000),
    );
    const id = (await page.locator('#agent-list tbody tr').first().getAttribute('data-agent'))!;
    await page.fill('#agent-query', id);
    await page.click('#agent-search button');
    await until(
      async () =>
        (await page.locator('#agent-list tbody tr').count()) === 1 &&
        (await page.locator('#agents-note').textContent())!.startsWith(`Agent ${id}`),
      `agent ${id} alone`,
      onDemo(10_000),
    );
    await page.screenshot({ path: `${RESULTS}status-page-agents.png`, fullPage: true });
    assert.match(output, /rejected on wave 0: canary: failed ratio/);
    assert.match(output, /main has the revert/);
    demo.kill('SIGTERM');
    assert.equal(await exited, 0, output);
  });
});
