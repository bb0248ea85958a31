// Resolves the secretRefs of a target's config on the agent's own machine: a fleet holds
// references, never secrets, and the reconciler never sees a value. Each mapping that is exactly
// `{secretRef: {provider, key}}` becomes the secret's value, a string, in a new copy of the
// config (the target is never changed). Each distinct reference is resolved once per call.
//
// - env: the variable `key` of the agent's environment.
// - file: `key` is a path relative to the secret directory (--secret-dir, default
//   /etc/fleetwave/secrets). An absolute path, a `..` segment, or a real path outside the
//   directory (a symlink out) is refused: the fleet's authors must not be able to make every
//   agent read any file it can. A regular file, UTF-8, at most 64 KiB; one trailing newline is
//   stripped.
// - vault: HashiCorp Vault KV v2. `MOUNT/PATH#FIELD` is GET {VAULT_ADDR}/v1/MOUNT/data/PATH with
//   X-Vault-Token: {VAULT_TOKEN} (and X-Vault-Namespace: {VAULT_NAMESPACE} when set); the value
//   is data.data[FIELD], a string. Bounded in time and size; a redirect is not followed.
//
// A failure is SECRET_UNRESOLVED, naming the config path, the provider and the key: never a
// value, never a token. A mapping with a `secretRef` key that is not a well-formed reference
// (validation refuses those in a fleet) is a failure too, never passed on half resolved.

import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { isAbsolute, join, resolve, sep } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { AgentError, describe } from './errors.ts';
import { isMapping } from '../core/target/merge.ts';

export const DEFAULT_SECRET_DIR = '/etc/fleetwave/secrets';
export const MAX_SECRET_FILE_BYTES = 64 * 1024;
export const MAX_VAULT_ANSWER_BYTES = 1024 * 1024;
export const DEFAULT_VAULT_TIMEOUT_MS = 10_000;

export interface SecretOptions {
  /** Where `env` secrets, and VAULT_ADDR/VAULT_TOKEN/VAULT_NAMESPACE, come from (default: process.env). */
  env?: NodeJS.ProcessEnv | undefined;
  /** The directory `file` secrets are relative to (default: /etc/fleetwave/secrets). */
  secretDir?: string | undefined;
  /** For requests to Vault (a private CA, tests). */
  dispatcher?: Dispatcher | undefined;
  /** The longest one Vault request may take, in ms (default: 10 s). */
  timeoutMs?: number | undefined;
  /** Aborts a Vault request (the agent stopping): the abort is thrown as it is. */
  signal?: AbortSignal | undefined;
}

export interface SecretRef {
  provider: string;
  key: string;
}

type Path = Array<string | number>;

/** Why one reference could not be resolved; the config path is added where it is used. */
class Unresolved extends Error {}

/** `config.output.apiKey`, `config.hosts[2]["a key"]`. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = 'config';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(p)) out += `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

/** A key as it is shown in a message: as written when plain, else quoted. */
function show(key: string): string {
  return /^[\x21-\x7e]+$/.test(key) && !key.includes('"') ? key : JSON.stringify(key);
}

/** The reference a mapping is, undefined when it is none; throws when it is a malformed one. */
function refOf(value: Record<string, unknown>, path: Path): SecretRef | undefined {
  if (!Object.hasOwn(value, 'secretRef')) return undefined;
  const bad = (why: string): never => {
    throw new AgentError('SECRET_UNRESOLVED', `${formatPath(path)}: not a valid secretRef: ${why}`);
  };
  const extra = Object.keys(value).filter((k) => k !== 'secretRef');
  if (extra.length > 0) bad(`the mapping holds ${show(extra[0]!)} besides "secretRef"`);
  const ref = value['secretRef'];
  if (!isMapping(ref)) return bad('secretRef is not a mapping {provider, key}');
  const unknown = Object.keys(ref).filter((k) => k !== 'provider' && k !== 'key');
  if (unknown.length > 0) bad(`unknown key ${show(unknown[0]!)} in secretRef`);
  const { provider, key } = ref;
  if (typeof provider !== 'string') return bad('secretRef.provider is not a string');
  if (typeof key !== 'string' || key === '') return bad('secretRef.key is not a non-empty string');
  return { provider, key };
}

/** Every reference in `value`, in document order, with its path. */
function collect(value: unknown, path: Path, out: Array<{ ref: SecretRef; path: Path }>): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => collect(v, [...path, i], out));
  } else if (isMapping(value)) {
    const ref = refOf(value, path);
    if (ref) out.push({ ref, path });
    else for (const [k, v] of Object.entries(value)) collect(v, [...path, k], out);
  }
}

function refId(ref: SecretRef): string {
  return `${ref.provider}\u0000${ref.key}`;
}

/** A deep copy of `value` with each reference replaced by its value. */
function substitute(value: unknown, values: ReadonlyMap<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => substitute(v, values));
  if (!isMapping(value)) return value;
  const ref = Object.hasOwn(value, 'secretRef') ? refOf(value, []) : undefined;
  if (ref) return values.get(refId(ref))!;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // defineProperty: a "__proto__" key of parsed JSON stays a plain key.
    Object.defineProperty(out, k, {
      value: substitute(v, values),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * A copy of `config` (any JSON value) with every `{secretRef: {provider, key}}` replaced by the
 * secret's value. Throws SECRET_UNRESOLVED for the first reference (in document order) that
 * cannot be resolved.
 */
export async function resolveSecrets(
  config: unknown,
  options: SecretOptions = {},
): Promise<unknown> {
  const refs: Array<{ ref: SecretRef; path: Path }> = [];
  collect(config, [], refs);
  const values = new Map<string, string>();
  for (const { ref, path } of refs) {
    const id = refId(ref);
    if (values.has(id)) continue;
    try {
      values.set(id, await resolveOne(ref, options));
    } catch (e) {
      if (options.signal?.aborted && !(e instanceof Unresolved)) throw e;
      const why =
        e instanceof Unresolved ? e.message : `${ref.provider} ${show(ref.key)}: ${describe(e)}`;
      throw new AgentError('SECRET_UNRESOLVED', `${formatPath(path)}: ${why}`, {
        ...(e instanceof Unresolved ? {} : { cause: e }),
      });
    }
  }
  return substitute(config, values);
}

async function resolveOne(ref: SecretRef, options: SecretOptions): Promise<string> {
  const env = options.env ?? process.env;
  switch (ref.provider) {
    case 'env': {
      const value = Object.hasOwn(env, ref.key) ? env[ref.key] : undefined;
      if (value === undefined)
        throw new Unresolved(`env variable ${show(ref.key)} is not set in the agent's environment`);
      return value;
    }
    case 'file':
      return readSecretFile(options.secretDir ?? DEFAULT_SECRET_DIR, ref.key);
    case 'vault':
      return readVault(ref.key, env, options);
    default:
      throw new Unresolved(
        `unknown secret provider ${show(ref.provider)} for ${show(ref.key)} (this agent knows env, file, vault)`,
      );
  }
}

async function readSecretFile(secretDir: string, key: string): Promise<string> {
  const dir = resolve(secretDir);
  const what = `file ${show(key)}`;
  if (isAbsolute(key))
    throw new Unresolved(
      `${what} is an absolute path: file secrets are paths relative to the secret directory ${dir} (--secret-dir)`,
    );
  if (key.split('/').includes('..'))
    throw new Unresolved(`${what} has a ".." segment: refused (the secret directory is ${dir})`);
  if (key.includes('\0')) throw new Unresolved(`${what} holds a NUL byte: refused`);
  let base: string;
  try {
    base = await realpath(dir);
  } catch (e) {
    throw new Unresolved(`${what}: the secret directory ${dir} cannot be used: ${describe(e)}`);
  }
  let real: string;
  try {
    real = await realpath(join(base, key));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Unresolved(
      code === 'ENOENT'
        ? `${what} does not exist in the secret directory ${dir}`
        : `${what} in ${dir} cannot be read: ${describe(e)}`,
    );
  }
  const inside = base === sep ? real.startsWith(sep) : real.startsWith(base + sep);
  if (!inside)
    throw new Unresolved(
      `${what} leads outside the secret directory ${dir} (a symlink out of it?): refused`,
    );
  let handle;
  try {
    // O_NONBLOCK: a FIFO must not hang the agent; O_NOFOLLOW: the checked path, not a new link.
    handle = await open(
      real,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
  } catch (e) {
    throw new Unresolved(`${what} in ${dir} cannot be opened: ${describe(e)}`);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new Unresolved(`${what} in ${dir} is not a regular file`);
    if (stats.size > MAX_SECRET_FILE_BYTES)
      throw new Unresolved(
        `${what} in ${dir} is ${stats.size} bytes, more than the limit of ${MAX_SECRET_FILE_BYTES}`,
      );
    // Read one byte more than allowed: a file that grew since the stat is still caught.
    const buffer = Buffer.alloc(MAX_SECRET_FILE_BYTES + 1);
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, size, buffer.length - size, size);
      if (bytesRead === 0) break;
      size += bytesRead;
      if (size === buffer.length) break;
    }
    if (size > MAX_SECRET_FILE_BYTES)
      throw new Unresolved(`${what} in ${dir} is more than the limit of ${MAX_SECRET_FILE_BYTES}`);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(buffer.subarray(0, size));
    } catch {
      throw new Unresolved(`${what} in ${dir} is not UTF-8 text`);
    }
    return text.replace(/\r?\n$/, '');
  } catch (e) {
    if (e instanceof Unresolved) throw e;
    throw new Unresolved(`${what} in ${dir} cannot be read: ${describe(e)}`);
  } finally {
    await handle.close().catch(() => {});
  }
}

/** `MOUNT/PATH#FIELD` as its parts, or why not. */
export function parseVaultKey(
  key: string,
): { mount: string; path: string[]; field: string } | { problem: string } {
  const hash = key.indexOf('#');
  if (hash < 0) return { problem: 'has no "#FIELD"' };
  const field = key.slice(hash + 1);
  if (field === '') return { problem: 'has an empty FIELD after "#"' };
  const segments = key.slice(0, hash).split('/');
  if (segments.length < 2) return { problem: 'has no PATH after the MOUNT' };
  if (segments.some((s) => s === '' || s === '.' || s === '..'))
    return { problem: 'has an empty, "." or ".." segment' };
  const [mount, ...path] = segments;
  return { mount: mount!, path, field };
}

async function readVault(
  key: string,
  env: NodeJS.ProcessEnv,
  options: SecretOptions,
): Promise<string> {
  const what = `vault ${show(key)}`;
  const parsed = parseVaultKey(key);
  if ('problem' in parsed)
    throw new Unresolved(`${what} is not MOUNT/PATH#FIELD: it ${parsed.problem}`);
  const addr = env.VAULT_ADDR;
  const token = env.VAULT_TOKEN;
  if (!addr) throw new Unresolved(`${what}: Vault is not configured: VAULT_ADDR is not set`);
  if (!token) throw new Unresolved(`${what}: Vault is not configured: VAULT_TOKEN is not set`);
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    throw new Unresolved(`${what}: VAULT_ADDR is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new Unresolved(`${what}: VAULT_ADDR is not http(s)`);
  const at = url.origin; // never the userinfo a VAULT_ADDR might hold
  url.pathname =
    url.pathname.replace(/\/+$/, '') +
    '/v1/' +
    [parsed.mount, 'data', ...parsed.path].map(encodeURIComponent).join('/');
  url.search = '';
  url.hash = '';
  const headers: Record<string, string> = { 'x-vault-token': token, 'x-vault-request': 'true' };
  if (env.VAULT_NAMESPACE) headers['x-vault-namespace'] = env.VAULT_NAMESPACE;
  const timeoutMs = options.timeoutMs ?? DEFAULT_VAULT_TIMEOUT_MS;
  const signal = AbortSignal.any([
    AbortSignal.timeout(timeoutMs),
    ...(options.signal ? [options.signal] : []),
  ]);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: 'GET',
      headers,
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
  } catch (e) {
    if (options.signal?.aborted) throw e;
    throw new Unresolved(
      `${what}: Vault at ${at} ${signal.aborted ? `did not answer within ${timeoutMs} ms` : `cannot be reached: ${describe(e)}`}`,
    );
  }
  const status = res.statusCode;
  if (status !== 200) {
    await res.body.dump().catch(() => {});
    const why =
      status === 403
        ? ' (permission denied: the token may not read it, or it expired)'
        : status === 404
          ? ' (no such secret, or not a KV v2 mount)'
          : status >= 300 && status < 400
            ? ' (a redirect, not followed)'
            : '';
    throw new Unresolved(`${what}: Vault at ${at} answered ${status}${why}`);
  }
  let text: string;
  try {
    const length = Number(res.headers['content-length']);
    if (Number.isFinite(length) && length > MAX_VAULT_ANSWER_BYTES)
      throw new Error(`${length} bytes is more than the limit of ${MAX_VAULT_ANSWER_BYTES}`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_VAULT_ANSWER_BYTES)
        throw new Error(`the answer is more than the limit of ${MAX_VAULT_ANSWER_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
    text = Buffer.concat(chunks).toString('utf8');
  } catch (e) {
    res.body.destroy();
    if (options.signal?.aborted) throw e;
    throw new Unresolved(
      `${what}: reading Vault's answer failed: ${signal.aborted ? `not done within ${timeoutMs} ms` : describe(e)}`,
    );
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Unresolved(`${what}: Vault at ${at} answered 200 with a body that is not JSON`);
  }
  const outer = isMapping(body) ? body['data'] : undefined;
  const data = isMapping(outer) ? outer['data'] : undefined;
  if (!isMapping(data))
    throw new Unresolved(`${what}: Vault's answer has no data.data (is ${parsed.mount} KV v2?)`);
  if (!Object.hasOwn(data, parsed.field))
    throw new Unresolved(`${what}: the secret has no field ${show(parsed.field)}`);
  const value = data[parsed.field];
  if (typeof value !== 'string')
    throw new Unresolved(
      `${what}: field ${show(parsed.field)} is ${value === null ? 'null' : Array.isArray(value) ? 'a list' : `a ${typeof value}`}, not a string`,
    );
  return value;
}
