// Unpacks a verified artifact (tar.gz or zip) into an empty directory, refusing anything that
// could write outside it or exhaust the disk: absolute paths, `..` segments, entries written
// through a symlink, symlinks whose target leaves the tree, hard links, devices, FIFOs, sparse
// files, and more bytes or entries than allowed. Only regular files, directories and symlinks
// that stay inside are made; every refusal is ARTIFACT_INVALID. The readers are our own, strict
// and small: ustar with pax and GNU long names for tar, stored/deflated entries for zip.

import { constants, createReadStream } from 'node:fs';
import { chmod, mkdir, open, symlink, type FileHandle } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { createGunzip, createInflateRaw, crc32 } from 'node:zlib';
import { AgentError } from '../errors.ts';

export interface UnpackLimits {
  /** Most bytes all files may hold once unpacked (default 4 GiB). */
  maxBytes: number;
  /** Most entries (default 100,000). */
  maxEntries: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxBytes: 4 * 1024 ** 3, maxEntries: 100_000 };

export type ArchiveFormat = 'tar.gz' | 'zip';

function invalid(message: string): AgentError {
  return new AgentError('ARTIFACT_INVALID', `artifact refused: ${message}`);
}

/** The format by the file's first bytes (the URL's name may lie or say nothing). */
export async function archiveFormat(file: string): Promise<ArchiveFormat> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    await handle.read(head, 0, 4, 0);
    if (head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
    if (head.readUInt32LE(0) === 0x04034b50 || head.readUInt32LE(0) === 0x06054b50) return 'zip';
  } finally {
    await handle.close();
  }
  throw invalid('it is neither a tar.gz nor a zip archive');
}

/** Unpacks `file` into `dest`, an empty directory this process just made. */
export async function unpackArchive(
  file: string,
  dest: string,
  limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
): Promise<void> {
  const tree = new Tree(dest, limits);
  if ((await archiveFormat(file)) === 'zip') await unpackZip(file, tree);
  else await unpackTarGz(file, tree);
}

type Kind = 'dir' | 'file' | 'symlink';

/**
 * The tree being made. Every path is checked as text first; then, since `dest` starts empty, the
 * map of what was made says whether a parent is a real directory: nothing is written through a
 * symlink, nothing is made twice.
 */
class Tree {
  readonly dest: string;
  readonly limits: UnpackLimits;
  private readonly made = new Map<string, Kind>([['', 'dir']]);
  private bytes = 0;
  private entries = 0;

  constructor(dest: string, limits: UnpackLimits) {
    this.dest = dest;
    this.limits = limits;
  }

  /** The entry's path, normalized and checked: relative, no `..`, no NUL. '' is the root. */
  path(name: string): string {
    if (name.includes('\0')) throw invalid(`an entry name holds a NUL byte`);
    if (name.startsWith('/')) throw invalid(`"${name}" is an absolute path`);
    if (/^[A-Za-z]:/.test(name) || name.includes('\\'))
      throw invalid(`"${name}" is a Windows path (a drive or a backslash)`);
    const parts = name.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) throw invalid(`"${name}" leads out of the directory (..)`);
    return parts.join('/');
  }

  count(size: number): void {
    if (++this.entries > this.limits.maxEntries)
      throw invalid(`more than ${this.limits.maxEntries} entries`);
    this.bytes += size;
    if (!Number.isSafeInteger(size) || size < 0 || this.bytes > this.limits.maxBytes)
      throw invalid(`it unpacks to more than the limit of ${this.limits.maxBytes} bytes`);
  }

  /** Makes the parents of `path` (as directories), refusing to go through anything else. */
  private async parents(path: string): Promise<void> {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const kind = this.made.get(prefix);
      if (kind === 'dir') continue;
      if (kind !== undefined) throw invalid(`"${path}" would be written through a ${kind}`);
      await this.mkdir(prefix);
      this.made.set(prefix, 'dir');
    }
  }

  private fresh(path: string, kind: Kind): void {
    const had = this.made.get(path);
    if (had === 'dir' && kind === 'dir') return;
    if (had !== undefined) throw invalid(`"${path || '.'}" is in the archive twice`);
  }

  /**
   * Modes are set outright, not through the umask: under the unit's UMask=0077 the managed
   * software, which may run as another user (--service), must still read its files.
   */
  private async mkdir(path: string): Promise<void> {
    await mkdir(join(this.dest, path), { mode: 0o755 });
    await chmod(join(this.dest, path), 0o755);
  }

  async dir(path: string): Promise<void> {
    this.fresh(path, 'dir');
    if (path === '' || this.made.get(path) === 'dir') return;
    await this.parents(path);
    await this.mkdir(path);
    this.made.set(path, 'dir');
  }

  /** A new file (O_EXCL, O_NOFOLLOW), 0755 when any execute bit was set, else 0644. */
  async file(path: string, mode: number): Promise<FileHandle> {
    if (path === '') throw invalid('a file entry has an empty name');
    this.fresh(path, 'file');
    await this.parents(path);
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    const handle = await open(join(this.dest, path), flags, 0o600);
    this.made.set(path, 'file');
    await handle.chmod(mode & 0o111 ? 0o755 : 0o644);
    return handle;
  }

  /**
   * A symlink whose target stays in the tree however the links resolve: relative, then only
   * leading `..` segments (no more than the link is deep), then names. A `..` after a name could
   * climb out of a directory reached through another link (`a -> .`, `b -> a/..`).
   */
  async symlink(path: string, target: string): Promise<void> {
    if (path === '') throw invalid('a symlink entry has an empty name');
    if (target === '' || target.includes('\0')) throw invalid(`"${path}" links to nothing`);
    if (target.startsWith('/')) throw invalid(`"${path}" links to an absolute path (${target})`);
    const parts = target.split('/').filter((p) => p !== '' && p !== '.');
    let up = 0;
    while (parts[up] === '..') up++;
    const depth = path.split('/').length - 1;
    if (up > depth || parts.slice(up).includes('..'))
      throw invalid(`"${path}" links out of the directory (${target})`);
    if (posix.normalize(posix.join(posix.dirname(path), target)).startsWith('..'))
      throw invalid(`"${path}" links out of the directory (${target})`);
    this.fresh(path, 'symlink');
    await this.parents(path);
    await symlink(target, join(this.dest, path));
    this.made.set(path, 'symlink');
  }
}

// ---------------------------------------------------------------------------------- tar.gz --

/** Pulls exact byte counts out of a stream of chunks. */
class Reader {
  private readonly source: AsyncIterator<Buffer>;
  private buffered: Buffer[] = [];
  private length = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.source = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.length < n && !this.ended) {
      const { value, done } = await this.source.next();
      if (done) this.ended = true;
      else {
        this.buffered.push(value);
        this.length += value.length;
      }
    }
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    const out = all.subarray(0, Math.min(n, all.length));
    const rest = all.subarray(out.length);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return out;
  }

  /** Passes n bytes to `sink` chunk by chunk (or throws when the stream ends first). */
  async copy(n: number, sink: (chunk: Buffer) => Promise<void>): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.length === 0) await this.fill(1);
      if (this.length === 0) throw invalid('the archive ends inside a file');
      const chunk = this.buffered.shift()!;
      const take = chunk.subarray(0, Math.min(left, chunk.length));
      if (take.length < chunk.length) this.buffered.unshift(chunk.subarray(take.length));
      this.length -= take.length;
      left -= take.length;
      await sink(take);
    }
  }
}

const BLOCK = 512;
/** pax and GNU long-name records are metadata: bounded well below any real file. */
const MAX_META_BYTES = 1024 * 1024;

function text(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? length : end).toString('utf8');
}

/** A numeric field: octal text, or GNU's base-256 (high bit set) for values past 8 GiB. */
function number(block: Buffer, offset: number, length: number, what: string): number {
  const field = block.subarray(offset, offset + length);
  if (field[0]! & 0x80) {
    if (field[0] === 0xff) throw invalid(`a negative ${what}`);
    let value = field[0]! & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const digits = text(block, offset, length).trim();
  if (digits === '') return 0;
  if (!/^[0-7]+$/.test(digits)) throw invalid(`a ${what} that is not a number ("${digits}")`);
  return parseInt(digits, 8);
}

function checksumOk(block: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return number(block, 148, 8, 'checksum') === sum;
}

/** pax records: "LEN key=value\n" each; only path, linkpath and size are used. */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const length = Number(data.subarray(at, space).toString('ascii'));
    if (space < 0 || !Number.isSafeInteger(length) || length <= 0 || at + length > data.length)
      throw invalid('a malformed pax header');
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq <= 0) throw invalid('a malformed pax record');
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  for (const key of records.keys())
    if (key.startsWith('GNU.sparse.')) throw invalid('a sparse file (GNU.sparse pax records)');
  return records;
}

async function unpackTarGz(file: string, tree: Tree): Promise<void> {
  const gunzip = createGunzip();
  const source = createReadStream(file).pipe(gunzip);
  // The decompressed stream is counted too: a gzip bomb of padding is refused as it grows.
  let inflated = 0;
  const budget = tree.limits.maxBytes + (tree.limits.maxEntries + 2) * 3 * BLOCK + MAX_META_BYTES;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      inflated += (chunk as Buffer).length;
      if (inflated > budget)
        throw invalid(`it decompresses to more than ${budget} bytes (a compression bomb?)`);
      yield chunk as Buffer;
    }
  }
  const reader = new Reader(counted());
  try {
    await readTar(reader, tree);
  } catch (e) {
    if (e instanceof AgentError) throw e;
    throw invalid(`it cannot be read as tar.gz: ${(e as Error).message}`);
  } finally {
    source.destroy();
  }
}

async function readTar(reader: Reader, tree: Tree): Promise<void> {
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const block = await reader.read(BLOCK);
    if (block.length === 0) return; // no end blocks: tolerated, like GNU tar
    if (block.length < BLOCK) throw invalid('the archive ends inside a header');
    if (block.every((b) => b === 0)) return; // the end-of-archive marker
    if (!checksumOk(block)) throw invalid('a tar header with a wrong checksum');
    const magic = text(block, 257, 6);
    if (magic !== 'ustar' && magic !== 'ustar ') throw invalid('not a ustar/pax/GNU tar archive');
    const type = String.fromCharCode(block[156]!);
    let size = number(block, 124, 12, 'size');
    const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (size > MAX_META_BYTES) throw invalid(`a ${size}-byte metadata record`);
      const data = (await reader.read(padded(size))).subarray(0, size);
      if (data.length < size) throw invalid('the archive ends inside a header');
      if (type === 'x') pax = paxRecords(data);
      else if (type === 'g')
        paxRecords(data); // checked, not used: global defaults we ignore
      else {
        const value = data.toString('utf8').replace(/\0+$/, '');
        if (type === 'L') longName = value;
        else longLink = value;
      }
      continue;
    }

    const prefix = magic === 'ustar' ? text(block, 345, 155) : '';
    const name =
      pax.get('path') ??
      longName ??
      (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
    const linkname = pax.get('linkpath') ?? longLink ?? text(block, 157, 100);
    if (pax.has('size')) {
      const s = pax.get('size')!;
      if (!/^\d{1,20}$/.test(s)) throw invalid(`a pax size that is not a number ("${s}")`);
      size = Number(s);
    }
    const mode = number(block, 100, 8, 'mode');
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    const path = tree.path(name);

    if (type === '0' || type === '\0' || type === '7') {
      tree.count(size);
      const handle = await tree.file(path, mode);
      try {
        await reader.copy(size, async (chunk) => {
          await handle.write(chunk);
        });
      } finally {
        await handle.close();
      }
      await reader.copy(padded(size) - size, async () => {});
    } else if (type === '5') {
      tree.count(0);
      await tree.dir(path);
      await reader.copy(padded(size), async () => {});
    } else if (type === '2') {
      tree.count(0);
      await tree.symlink(path, linkname);
    } else {
      const what: Record<string, string> = {
        '1': 'a hard link',
        '3': 'a character device',
        '4': 'a block device',
        '6': 'a FIFO',
        S: 'a sparse file',
      };
      throw invalid(`"${name}" is ${what[type] ?? `an entry of type "${type}"`}, not allowed`);
    }
  }
}

// ------------------------------------------------------------------------------------- zip --

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024;
const MAX_SYMLINK_TARGET = 4096;

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  if (bytesRead < length) throw invalid('the zip archive is cut short');
  return buffer;
}

interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressed: number;
  size: number;
  mode: number;
  madeBy: number;
  localOffset: number;
}

async function unpackZip(file: string, tree: Tree): Promise<void> {
  const handle = await open(file, 'r');
  try {
    const { size: fileSize } = await handle.stat();
    const tailLength = Math.min(fileSize, 22 + 0xffff);
    const tail = await readAt(handle, fileSize - tailLength, tailLength);
    let eocd = -1;
    for (let i = tail.length - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw invalid('no zip end-of-central-directory record');
    const count = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff)
      throw invalid('a ZIP64 archive (not supported: use tar.gz for large artifacts)');
    if (cdSize > MAX_CENTRAL_DIRECTORY || cdOffset + cdSize > fileSize)
      throw invalid('a zip central directory that does not fit the file');
    const cd = await readAt(handle, cdOffset, cdSize);
    const entries: ZipEntry[] = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
      if (at + 46 > cd.length || cd.readUInt32LE(at) !== 0x02014b50)
        throw invalid('a malformed zip central directory');
      const nameLength = cd.readUInt16LE(at + 28);
      const extraLength = cd.readUInt16LE(at + 30);
      const commentLength = cd.readUInt16LE(at + 32);
      entries.push({
        madeBy: cd.readUInt16LE(at + 4) >> 8,
        flags: cd.readUInt16LE(at + 8),
        method: cd.readUInt16LE(at + 10),
        crc: cd.readUInt32LE(at + 16),
        compressed: cd.readUInt32LE(at + 20),
        size: cd.readUInt32LE(at + 24),
        mode: cd.readUInt32LE(at + 38) >>> 16,
        localOffset: cd.readUInt32LE(at + 42),
        name: cd.subarray(at + 46, at + 46 + nameLength).toString('utf8'),
      });
      at += 46 + nameLength + extraLength + commentLength;
    }
    for (const entry of entries) await unpackZipEntry(file, handle, fileSize, entry, tree);
  } finally {
    await handle.close();
  }
}

async function unpackZipEntry(
  file: string,
  handle: FileHandle,
  fileSize: number,
  entry: ZipEntry,
  tree: Tree,
): Promise<void> {
  const path = tree.path(entry.name);
  if (entry.flags & 0x1) throw invalid(`"${entry.name}" is encrypted`);
  if (entry.compressed === 0xffffffff || entry.size === 0xffffffff)
    throw invalid(`"${entry.name}" needs ZIP64 (not supported)`);
  // Unix modes only when the archive was made on Unix (3); others carry DOS attributes.
  const type = entry.madeBy === 3 ? entry.mode & S_IFMT : 0;
  const isDir = entry.name.endsWith('/') || type === S_IFDIR;
  if (type !== 0 && type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK)
    throw invalid(`"${entry.name}" is a device, FIFO or socket, not allowed`);
  if (isDir) {
    tree.count(0);
    await tree.dir(path);
    return;
  }
  if (entry.method !== 0 && entry.method !== 8)
    throw invalid(
      `"${entry.name}" uses compression method ${entry.method} (only stored and deflate)`,
    );
  const local = await readAt(handle, entry.localOffset, 30);
  if (local.readUInt32LE(0) !== 0x04034b50) throw invalid(`"${entry.name}" has no local header`);
  const start = entry.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  if (start + entry.compressed > fileSize) throw invalid(`"${entry.name}" runs past the file`);
  tree.count(type === S_IFLNK ? 0 : entry.size);
  if (type === S_IFLNK && entry.size > MAX_SYMLINK_TARGET)
    throw invalid(`"${entry.name}" is a symlink with a ${entry.size}-byte target`);

  const raw =
    entry.compressed === 0
      ? undefined
      : createReadStream(file, { start, end: start + entry.compressed - 1 });
  const stream = raw === undefined ? [] : entry.method === 8 ? raw.pipe(createInflateRaw()) : raw;
  let written = 0;
  let crc = 0;
  const linkTarget: Buffer[] = [];
  const out = type === S_IFLNK ? undefined : await tree.file(path, entry.mode);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      written += chunk.length;
      // Declared sizes are checked against what inflates: a lying header is no bomb.
      if (written > entry.size) throw invalid(`"${entry.name}" inflates past its declared size`);
      crc = crc32(chunk, crc);
      if (out) await out.write(chunk);
      else linkTarget.push(chunk);
    }
  } catch (e) {
    if (e instanceof AgentError) throw e;
    throw invalid(`"${entry.name}" cannot be inflated: ${(e as Error).message}`);
  } finally {
    raw?.destroy();
    await out?.close();
  }
  if (written !== entry.size || crc !== entry.crc)
    throw invalid(`"${entry.name}" does not match its size or CRC-32`);
  if (type === S_IFLNK) await tree.symlink(path, Buffer.concat(linkTarget).toString('utf8'));
}
