// Artifact downloads against a local server: the right bytes are verified and kept; wrong
// bytes, redirect loops, too many redirects, oversized bodies and error statuses are refused
// with a clear reason, and nothing is left behind.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchArtifact } from '../../agent/artifact.ts';
import { isAgentError } from '../../agent/errors.ts';
import { ArtifactServer, sha256 } from './helpers.ts';

const GOOD = Buffer.from('the real agent binary\n'.repeat(10_000));

describe('artifact download', () => {
  let dir: string;
  let server: ArtifactServer;
  let n = 0;
  const fresh = async (): Promise<string> => {
    const d = join(dir, String(n++));
    await mkdir(d);
    return d;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetwave-artifact-'));
    server = await new ArtifactServer(undefined, (req, res) => {
      const url = req.url ?? '/';
      if (url === '/loop-a') res.writeHead(302, { location: '/loop-b' }).end();
      else if (url === '/loop-b') res.writeHead(301, { location: server.url('/loop-a') }).end();
      else if (url.startsWith('/hop/')) {
        const k = Number(url.slice(5));
        res.writeHead(302, { location: k === 0 ? '/good' : `/hop/${k - 1}` }).end();
      } else if (url === '/ftp') res.writeHead(302, { location: 'ftp://127.0.0.1/x' }).end();
      else if (url === '/error') res.writeHead(500).end('boom');
      else res.writeHead(404).end();
    }).start();
    server.files.set('/good', GOOD);
    server.files.set('/wrong', Buffer.from(GOOD.toString().replace('real', 'evil')));
  });
  after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('verifies the right bytes and keeps them under their sha256', async () => {
    const d = await fresh();
    const path = await fetchArtifact({ url: server.url('/good'), sha256: sha256(GOOD), dir: d });
    assert.equal(path, join(d, sha256(GOOD)));
    assert.deepEqual(await readFile(path), GOOD);
    assert.deepEqual(await readdir(d), [sha256(GOOD)]);
    // Already there and intact: not downloaded again.
    const before = server.requests.get('/good');
    await fetchArtifact({ url: server.url('/good'), sha256: sha256(GOOD).toUpperCase(), dir: d });
    assert.equal(server.requests.get('/good'), before);
  });

  it('follows a few redirects', async () => {
    const d = await fresh();
    const path = await fetchArtifact({ url: server.url('/hop/3'), sha256: sha256(GOOD), dir: d });
    assert.deepEqual(await readFile(path), GOOD);
  });

  const refusals: Array<[string, string, RegExp, { maxBytes?: number; maxRedirects?: number }?]> = [
    ['/wrong', 'ARTIFACT_MISMATCH', /its sha256 is [0-9a-f]{64}, the target says/],
    ['/loop-a', 'ARTIFACT_DOWNLOAD_FAILED', /redirect loop/],
    ['/hop/9', 'ARTIFACT_DOWNLOAD_FAILED', /more than 5 redirects/],
    ['/ftp', 'ARTIFACT_DOWNLOAD_FAILED', /not http\(s\)/],
    ['/error', 'ARTIFACT_DOWNLOAD_FAILED', /answered 500/],
    ['/missing', 'ARTIFACT_DOWNLOAD_FAILED', /answered 404/],
    ['/good', 'ARTIFACT_DOWNLOAD_FAILED', /more than the limit of 1000/, { maxBytes: 1000 }],
  ];
  for (const [path, code, message, limits] of refusals) {
    it(`refuses ${path}${limits ? ' over the size limit' : ''}: ${code}, nothing left behind`, async () => {
      const d = await fresh();
      await assert.rejects(
        fetchArtifact({ url: server.url(path), sha256: sha256(GOOD), dir: d, ...limits }),
        (e: unknown) => {
          assert.ok(isAgentError(e), String(e));
          assert.equal(e.code, code);
          assert.match(e.message, message);
          return true;
        },
      );
      assert.deepEqual(await readdir(d), []);
    });
  }

  it('refuses an unreachable server with a clear reason', async () => {
    const d = await fresh();
    await assert.rejects(
      fetchArtifact({ url: 'http://127.0.0.1:9/x', sha256: sha256(GOOD), dir: d }),
      (e: unknown) => isAgentError(e, 'ARTIFACT_DOWNLOAD_FAILED') && /ECONNREFUSED/.test(e.message),
    );
  });
});
