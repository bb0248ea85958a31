// `fleetwave agent --secret-dir`: where the file provider looks.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AGENT_HELP, readAgentOptions } from '../../cli/commands/agent.ts';

describe('fleetwave agent --secret-dir', () => {
  const io = { cwd: '/srv/agent', env: {}, stdout: () => {}, stderr: () => {} };

  it('defaults to /etc/fleetwave/secrets and resolves a relative DIR against the cwd', async () => {
    const url = ['--url', 'http://127.0.0.1:9', '--id', 'web-1'];
    assert.equal((await readAgentOptions(url, io))?.secretDir, '/etc/fleetwave/secrets');
    assert.equal(
      (await readAgentOptions([...url, '--secret-dir', 'secrets'], io))?.secretDir,
      '/srv/agent/secrets',
    );
    assert.equal(
      (await readAgentOptions([...url, '--secret-dir', '/run/credentials/x'], io))?.secretDir,
      '/run/credentials/x',
    );
    assert.match(AGENT_HELP, /--secret-dir DIR/);
    assert.match(AGENT_HELP, /VAULT_ADDR and VAULT_TOKEN/);
  });
});
