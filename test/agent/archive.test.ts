// The installer's archive readers against hostile archives made by the real tools (Python's
// tarfile and zipfile, GNU tar): `..` entries, absolute paths, symlinks out, devices, hard
// links, a 10 GB sparse file and a header claiming 10 GB are refused with ARTIFACT_INVALID, and
// nothing is written outside the directory unpacked into. Good archives unpack exactly.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { unpackArchive } from '../../agent/install/archive.ts';
import { isAgentError } from '../../agent/errors.ts';

/** Runs a Python script with `out` (the archive's path) and `outside` as argv[1..2]. */
function python(script: string, ...args: string[]): void {
  execFileSync('python3', ['-c', script, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

const TAR_HEAD = `
import io, sys, tarfile
out = sys.argv[1]
outside = sys.argv[2] if len(sys.argv) > 2 else ''
def add(t, name, data=b'x', **kw):
    info = tarfile.TarInfo(name)
    for k, v in kw.items(): setattr(info, k, v)
    if info.type == tarfile.REGTYPE:
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    else:
        t.addfile(info)
`;

describe('unpacking artifacts', () => {
  let work: string;
  let n = 0;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fleetwave-archive-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** A fresh case: `root/` holds the archive and `root/versions/new`, the empty destination. */
  async function scene(): Promise<{ root: string; archive: string; dest: string }> {
    const root = join(work, `case-${n++}`);
    await mkdir(join(root, 'versions', 'new'), { recursive: true });
    return { root, archive: join(root, 'artifact'), dest: join(root, 'versions', 'new') };
  }

  async function refused(archive: string, dest: string, why: RegExp): Promise<void> {
    await assert.rejects(unpackArchive(archive, dest), (e) => {
      assert.ok(isAgentError(e, 'ARTIFACT_INVALID'), `ARTIFACT_INVALID, not ${String(e)}`);
      assert.match(e.message, why);
      return true;
    });
  }

  /** Nothing besides the archive and versions/new/ (and what is inside it) exists under root. */
  async function nothingOutside(root: string): Promise<void> {
    assert.deepEqual((await readdir(root)).sort(), ['artifact', 'versions']);
    assert.deepEqual(await readdir(join(root, 'versions')), ['new']);
  }

  it('unpacks a tar.gz: files with their modes, directories, a link inside, long names', async () => {
    const { root, archive, dest } = await scene();
    const long = 'd/' + 'n'.repeat(150) + '/file.txt';
    python(
      TAR_HEAD +
        `
with tarfile.open(out, 'w:gz', format=tarfile.PAX_FORMAT) as t:
    add(t, 'app', type=tarfile.DIRTYPE, mode=0o755)
    add(t, 'app/run.py', b'print(1)\\n', mode=0o755)
    add(t, 'app/lib/data.txt', b'data', mode=0o600)
    add(t, 'app/link', type=tarfile.SYMTYPE, linkname='lib/data.txt')
    add(t, 'app/up', type=tarfile.SYMTYPE, linkname='../app/run.py')
    add(t, '${long}', b'long')
`,
      archive,
    );
    // Under the unit's UMask=0077 the modes are still the archive's: another user may read them.
    const umask = process.umask(0o077);
    try {
      await unpackArchive(archive, dest);
    } finally {
      process.umask(umask);
    }
    assert.equal((await stat(join(dest, 'app/lib'))).mode & 0o777, 0o755);
    assert.equal(await readFile(join(dest, 'app/run.py'), 'utf8'), 'print(1)\n');
    assert.equal((await stat(join(dest, 'app/run.py'))).mode & 0o777, 0o755);
    assert.equal((await stat(join(dest, 'app/lib/data.txt'))).mode & 0o777, 0o644);
    assert.equal(await readlink(join(dest, 'app/link')), 'lib/data.txt');
    assert.equal(await readFile(join(dest, 'app/link'), 'utf8'), 'data');
    assert.equal(await readFile(join(dest, 'app/up'), 'utf8'), 'print(1)\n');
    assert.equal(await readFile(join(dest, long), 'utf8'), 'long');
    await nothingOutside(root);
  });

  it('unpacks a zip: stored and deflated files, modes, a directory, a link inside', async () => {
    const { root, archive, dest } = await scene();
    python(
      `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.writestr('bin/', '')
    i = zipfile.ZipInfo('bin/tool'); i.external_attr = (0o100755 << 16); i.create_system = 3
    z.writestr(i, b'#!/bin/sh\\necho hi\\n', compress_type=zipfile.ZIP_DEFLATED)
    z.writestr('README', b'stored' * 100, compress_type=zipfile.ZIP_STORED)
    z.writestr('empty', b'')
    l = zipfile.ZipInfo('bin/readme'); l.external_attr = (0o120777 << 16); l.create_system = 3
    z.writestr(l, b'../README')
`,
      archive,
    );
    await unpackArchive(archive, dest);
    assert.equal(await readFile(join(dest, 'bin/tool'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal((await stat(join(dest, 'bin/tool'))).mode & 0o777, 0o755);
    assert.equal(await readFile(join(dest, 'README'), 'utf8'), 'stored'.repeat(100));
    assert.equal(await readlink(join(dest, 'bin/readme')), '../README');
    await nothingOutside(root);
  });

  const hostileTars: Array<[string, string, RegExp]> = [
    ['a ../ entry', `add(t, '../evil', b'pwned')`, /leads out of the directory/],
    ['a nested ../ entry', `add(t, 'a/../../evil', b'pwned')`, /leads out of the directory/],
    ['an absolute path', `add(t, outside, b'pwned')`, /is an absolute path/],
    [
      'a symlink out, then a file written through it',
      `add(t, 'link', type=tarfile.SYMTYPE, linkname='../..')\n    add(t, 'link/evil', b'pwned')`,
      /links out of the directory/,
    ],
    [
      'an absolute symlink',
      `add(t, 'link', type=tarfile.SYMTYPE, linkname=outside)`,
      /links to an absolute path/,
    ],
    [
      'a link that climbs through another link (a -> ., b -> a/..)',
      `add(t, 'a', type=tarfile.SYMTYPE, linkname='.')\n    add(t, 'b', type=tarfile.SYMTYPE, linkname='a/..')`,
      /links out of the directory/,
    ],
    [
      'a file written through a link inside',
      `add(t, 'd', type=tarfile.DIRTYPE)\n    add(t, 'l', type=tarfile.SYMTYPE, linkname='d')\n    add(t, 'l/evil', b'x')`,
      /written through a symlink/,
    ],
    [
      'a hard link',
      `add(t, 'f', b'x')\n    add(t, 'h', type=tarfile.LNKTYPE, linkname='f')`,
      /hard link/,
    ],
    [
      'a character device',
      `add(t, 'null', type=tarfile.CHRTYPE, devmajor=1, devminor=3)`,
      /character device/,
    ],
    ['a FIFO', `add(t, 'fifo', type=tarfile.FIFOTYPE)`, /FIFO/],
    ['the same file twice', `add(t, 'f', b'x')\n    add(t, 'f', b'y')`, /twice/],
  ];
  for (const [what, body, why] of hostileTars) {
    it(`refuses a tar.gz with ${what}`, async () => {
      const { root, archive, dest } = await scene();
      const outside = join(root, 'outside-evil');
      python(
        TAR_HEAD +
          `\nwith tarfile.open(out, 'w:gz', format=tarfile.PAX_FORMAT) as t:\n    ${body}\n`,
        archive,
        outside,
      );
      await refused(archive, dest, why);
      assert.equal(existsSync(outside), false);
      await nothingOutside(root);
    });
  }

  it('refuses a 10 GB sparse file made by GNU tar (gnu and posix formats)', async () => {
    for (const format of ['gnu', 'posix']) {
      const { root, archive, dest } = await scene();
      const src = join(work, `sparse-${format}`);
      await mkdir(src);
      execFileSync('truncate', ['-s', '10G', join(src, 'bomb')]);
      execFileSync('tar', [`--format=${format}`, '--sparse', '-czf', archive, '-C', src, 'bomb']);
      await rm(src, { recursive: true });
      assert.ok((await stat(archive)).size < 1024 * 1024, 'the bomb is small');
      await refused(archive, dest, /sparse file/);
      assert.deepEqual(await readdir(dest), []);
      await nothingOutside(root);
    }
  });

  it('refuses a tar header claiming a 10 GB file before writing it', async () => {
    const { root, archive, dest } = await scene();
    python(
      `
import gzip, sys, tarfile
info = tarfile.TarInfo('huge'); info.size = 10 * 1024 ** 3
with gzip.open(sys.argv[1], 'wb') as f:
    f.write(info.tobuf(format=tarfile.GNU_FORMAT)); f.write(b'\\0' * 4096)
`,
      archive,
    );
    await refused(archive, dest, /more than the limit of \d+ bytes/);
    assert.deepEqual(await readdir(dest), []);
    await nothingOutside(root);
  });

  it('refuses a tar.gz that unpacks past the limits given', async () => {
    const { archive, dest } = await scene();
    python(
      TAR_HEAD + `\nwith tarfile.open(out, 'w:gz') as t:\n    add(t, 'big', b'0' * 100000)\n`,
      archive,
    );
    await assert.rejects(unpackArchive(archive, dest, { maxBytes: 50_000, maxEntries: 10 }), (e) =>
      isAgentError(e, 'ARTIFACT_INVALID'),
    );
  });

  const hostileZips: Array<[string, string, RegExp]> = [
    ['a ../ entry', `z.writestr('../evil', b'pwned')`, /leads out of the directory/],
    ['an absolute path', `z.writestr(zipfile.ZipInfo(outside), b'pwned')`, /absolute path/],
    [
      'a symlink out',
      `l = zipfile.ZipInfo('link'); l.external_attr = (0o120777 << 16); l.create_system = 3\n    z.writestr(l, b'../../etc')`,
      /links out of the directory/,
    ],
    [
      'a character device',
      `d = zipfile.ZipInfo('dev'); d.external_attr = (0o020666 << 16); d.create_system = 3\n    z.writestr(d, b'')`,
      /device/,
    ],
  ];
  for (const [what, body, why] of hostileZips) {
    it(`refuses a zip with ${what}`, async () => {
      const { root, archive, dest } = await scene();
      const outside = join(root, 'outside-evil');
      python(
        `import sys, zipfile\nout, outside = sys.argv[1], sys.argv[2]\nwith zipfile.ZipFile(out, 'w') as z:\n    ${body}\n`,
        archive,
        outside,
      );
      await refused(archive, dest, why);
      assert.equal(existsSync(outside), false);
      await nothingOutside(root);
    });
  }

  it('refuses a zip entry that inflates past its declared size (a zip bomb)', async () => {
    const { root, archive, dest } = await scene();
    python(
      `
import struct, sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('zeros', b'\\0' * 5_000_000)
data = bytearray(open(sys.argv[1], 'rb').read())
cd = data.rfind(b'PK\\x01\\x02')
struct.pack_into('<I', data, cd + 24, 1000)   # claims 1,000 bytes
open(sys.argv[1], 'wb').write(data)
`,
      archive,
    );
    await refused(archive, dest, /inflates past its declared size/);
    await nothingOutside(root);
  });

  it('refuses what is neither tar.gz nor zip', async () => {
    const { archive, dest } = await scene();
    execFileSync('sh', ['-c', `printf 'just bytes' > "${archive}"`]);
    await refused(archive, dest, /neither a tar.gz nor a zip/);
  });
});
