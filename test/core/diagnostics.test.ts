import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compareDiagnostics,
  formatGithub,
  formatText,
  type Diagnostic,
} from '../../core/diagnostics.ts';

const d = (over: Partial<Diagnostic>): Diagnostic => ({
  file: 'fleet/fleet.yaml',
  line: 3,
  col: 5,
  severity: 'error',
  code: 'schema',
  message: 'bad',
  ...over,
});

describe('diagnostics', () => {
  it('formats text as FILE:LINE:COL: severity: message, and FILE alone without a line', () => {
    assert.equal(formatText(d({})), 'fleet/fleet.yaml:3:5: error: bad');
    assert.equal(formatText(d({ line: 0, col: 0, file: 'fleet' })), 'fleet: error: bad');
    assert.equal(formatText(d({ severity: 'warning' })), 'fleet/fleet.yaml:3:5: warning: bad');
  });

  it('escapes workflow-command data and properties the way the runner reads them', () => {
    const line = formatGithub(
      d({ file: 'a,b:c%.yaml', message: '50%\r\nnext', endLine: 3, endCol: 9 }),
    );
    assert.equal(
      line,
      '::error file=a%2Cb%3Ac%25.yaml,line=3,col=5,endLine=3,endColumn=9,title=fleetwave schema::50%25%0D%0Anext',
    );
  });

  it('leaves out endColumn when the node spans lines', () => {
    assert.equal(
      formatGithub(d({ endLine: 7, endCol: 2 })),
      '::error file=fleet/fleet.yaml,line=3,col=5,endLine=7,title=fleetwave schema::bad',
    );
  });

  it('sorts by file, line, column, then message', () => {
    const list = [d({ line: 9 }), d({ file: 'a.yaml' }), d({ col: 1 }), d({ message: 'a' })];
    assert.deepEqual(
      list.sort(compareDiagnostics).map((x) => `${x.file}:${x.line}:${x.col}:${x.message}`),
      [
        'a.yaml:3:5:bad',
        'fleet/fleet.yaml:3:1:bad',
        'fleet/fleet.yaml:3:5:a',
        'fleet/fleet.yaml:9:5:bad',
      ],
    );
  });
});

describe('diagnostic codes', () => {
  it('documents every code in docs/diagnostics.md, and no other', async () => {
    const { readFile } = await import('node:fs/promises');
    const { DIAGNOSTIC_CODES } = await import('../../core/diagnostics.ts');
    const doc = await readFile(new URL('../../docs/diagnostics.md', import.meta.url), 'utf8');
    const main = doc.split('## Render errors')[0]!;
    const documented = [...main.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(documented.sort(), Object.keys(DIAGNOSTIC_CODES).sort());
  });
});
