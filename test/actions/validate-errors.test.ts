// The bundled validate action on a broken fleet: every error annotated at its file, line and
// column (the first ten), all of them in the summary and the comment, and the run fails.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMMENT_MARKER } from '../../core/plan/format.ts';
import { git } from '../helpers/git.ts';
import { fleetFiles, fleetYaml, type WaveSpec } from './fleets.ts';
import { positionOf } from './harness.ts';
import { DIR, ORBIT, Repo, noStackTrace, validateRig } from './validate-rig.ts';

const { github, cleanup, validate } = validateRig();

describe('actions/validate on a broken fleet', () => {
  it('annotates every error at its file, line and column, fails, and says so in the comment', async () => {
    const repo = await Repo.create(fleetFiles(DIR, ORBIT));
    cleanup.push(repo.dir);
    const base = git(repo.dir, 'rev-parse', 'HEAD');
    const files = fleetFiles(DIR, {
      ...ORBIT,
      waves: [{ ...ORBIT.waves[0]!, bake: 'ten minutes' }, ORBIT.waves[1]!],
      values: ['agent:', '  host: ${agent.hostname}', '  password: hunter2hunter2'],
    });
    const release = `${DIR}/releases/1.1.0.yaml`;
    files[release] = files[release]!.replace(/sha256: [0-9a-f]+/, 'sha256: not-a-digest');
    const head = await repo.commit(files, 'break it');
    const run = await validate(repo, { number: 8, base, head });

    assert.equal(run.status, 1, run.stdout + run.stderr);
    noStackTrace(run);
    const layer = `${DIR}/config/00-base.yaml`;
    const expected = [
      [`${DIR}/fleet.yaml`, positionOf(files[`${DIR}/fleet.yaml`]!, 'ten minutes')],
      [layer, positionOf(files[layer]!, '${agent.hostname}')],
      [layer, positionOf(files[layer]!, 'hunter2hunter2')],
      [release, positionOf(files[release]!, 'not-a-digest')],
    ] as const;
    const errors = run.annotations.filter((a) => a.startsWith('::error '));
    for (const [file, at] of expected) {
      const where = `file=${file},line=${at.line},col=${at.col}`;
      assert.ok(
        errors.some((a) => a.startsWith(`::error ${where},`)),
        `no annotation at ${where}:\n${run.annotations.join('\n')}`,
      );
    }
    assert.equal(errors.length, expected.length);
    assert.deepEqual(run.outputs, { valid: 'false', 'error-count': '4', 'changed-agents': '' });
    assert.match(run.summary, /is invalid \(4 errors\)/);
    for (const [file, at] of expected)
      assert.ok(run.summary.includes(`${file}:${at.line}:${at.col}`));
    const comment = github.on(8);
    assert.equal(comment.length, 1);
    assert.ok(comment[0]!.body.startsWith(COMMENT_MARKER));
    assert.match(comment[0]!.body, /cannot roll out until these are fixed/);
    const bake = expected[0][1];
    assert.ok(
      comment[0]!.body.includes(
        `https://github.com/acme/fleet-config/blob/${head}/${DIR}/fleet.yaml#L${bake.line}`,
      ),
      'errors link to their line at the head commit',
    );
  });

  it('annotates the first ten errors and lists all of them in the summary', async () => {
    const waves: WaveSpec[] = Array.from({ length: 12 }, (_, i) => ({
      name: `ring-${i}`,
      labels: { ring: `r${i}` },
      percent: 10,
      bake: `${i + 1} fortnights`,
    }));
    waves.push({ name: 'all', percent: 100, bake: '1h' });
    const text = fleetYaml({ ...ORBIT, waves });
    const repo = await Repo.create({ ...fleetFiles(DIR, ORBIT), [`${DIR}/fleet.yaml`]: text });
    cleanup.push(repo.dir);
    const head = git(repo.dir, 'rev-parse', 'HEAD');
    const run = await validate(repo, { number: 9, base: head, head }, { comment: 'false' });
    assert.equal(run.status, 1);
    const errors = run.annotations.filter((a) => a.startsWith('::error '));
    assert.equal(errors.length, 10);
    assert.equal(run.outputs['error-count'], '12');
    for (let i = 0; i < 12; i++) {
      const at = positionOf(text, `${i + 1} fortnights`);
      assert.ok(
        run.summary.includes(`${DIR}/fleet.yaml:${at.line}:${at.col}`),
        `summary lacks error ${i}`,
      );
    }
    assert.match(run.stdout, /2 more errors are not annotated/);
    assert.equal(github.on(9).length, 0, 'comment: false writes no comment');
  });
});
