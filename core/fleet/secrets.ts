// Plaintext secrets in git are an incident waiting to happen. A secret in a fleet is always a
// reference, `{secretRef: {provider, key}}`, resolved by the agent on its own machine.

import { didYouMean } from './suggest.ts';

export interface SecretFinding {
  path: Array<string | number>;
  at: 'key' | 'value';
  message: string;
}

export const SECRET_PROVIDERS = ['env', 'file', 'vault'] as const;

// A key names a secret when its last word is one of these: `db_password`, `apiKey`,
// `auth-token`. `password_min_length` and `token_ttl_seconds` end in other words and pass.
const SECRET_WORDS = [
  'password',
  'passwd',
  'passphrase',
  'secret',
  'token',
  'apikey',
  'privatekey',
  'accesskey',
  'secretkey',
  'credential',
  'credentials',
  'clientsecret',
];

function words(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

export function isSecretKey(key: string): boolean {
  const w = words(key);
  if (w.length === 0) return false;
  const last = w[w.length - 1]!;
  const lastTwo = w.slice(-2).join('');
  return SECRET_WORDS.includes(last) || SECRET_WORDS.includes(lastTwo);
}

// Well-known credential formats, found in any string wherever it stands.
const TOKEN_FORMATS: Array<[RegExp, string]> = [
  [/-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/, 'a PEM private key'],
  [/\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/, 'an AWS access key id'],
  [/\bgh[pousr]_[A-Za-z0-9]{36,}\b/, 'a GitHub token'],
  [/\bgithub_pat_[A-Za-z0-9_]{22,}\b/, 'a GitHub token'],
  [/\bglpat-[A-Za-z0-9_-]{20,}\b/, 'a GitLab token'],
  [/\bxox[abprs]-[A-Za-z0-9-]{10,}\b/, 'a Slack token'],
  [/\bAIza[0-9A-Za-z_-]{35}\b/, 'a Google API key'],
  [/\b(?:sk|rk)_live_[0-9A-Za-z]{16,}\b/, 'a Stripe secret key'],
  [/\bnpm_[A-Za-z0-9]{36}\b/, 'an npm token'],
  [/\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/, 'a JSON Web Token'],
  [/\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i, 'a URL with a password in it'],
];

export function tokenFormat(text: string): string | undefined {
  for (const [re, what] of TOKEN_FORMATS) if (re.test(text)) return what;
  return undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const onlyInterpolation = /^\$\{[^}]*\}$/;

/** Walks any value (iteratively: documents are already depth-bounded, but cheap to be safe). */
export function findSecrets(root: unknown, base: Array<string | number>): SecretFinding[] {
  const out: SecretFinding[] = [];
  const stack: Array<[unknown, Array<string | number>]> = [[root, base]];
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'string') {
      const what = tokenFormat(value);
      if (what) {
        out.push({
          path,
          at: 'value',
          message: `this looks like ${what}; never put secrets in git: use {secretRef: {provider: env|file|vault, key: ...}}`,
        });
      }
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => stack.push([v, [...path, i]]));
    } else if (isPlainObject(value)) {
      if ('secretRef' in value) {
        out.push(...secretRefProblems(value, path));
        continue;
      }
      for (const [key, v] of Object.entries(value)) {
        const p = [...path, key];
        const literal =
          (typeof v === 'string' && v !== '' && !onlyInterpolation.test(v)) ||
          typeof v === 'number';
        if (literal && isSecretKey(key)) {
          out.push({
            path: p,
            at: 'value',
            message: `${JSON.stringify(key)} holds a plaintext secret; write {secretRef: {provider: env|file|vault, key: ...}} and let the agent resolve it`,
          });
          continue;
        }
        stack.push([v, p]);
      }
    }
  }
  return out;
}

function secretRefProblems(
  value: Record<string, unknown>,
  path: Array<string | number>,
): SecretFinding[] {
  const out: SecretFinding[] = [];
  const extra = Object.keys(value).filter((k) => k !== 'secretRef');
  for (const k of extra) {
    out.push({
      path: [...path, k],
      at: 'key',
      message: `a secretRef mapping may hold only "secretRef", not ${JSON.stringify(k)}`,
    });
  }
  const ref = value['secretRef'];
  const refPath = [...path, 'secretRef'];
  if (!isPlainObject(ref)) {
    out.push({
      path: refPath,
      at: 'value',
      message: 'secretRef must be a mapping {provider: env|file|vault, key: ...}',
    });
    return out;
  }
  const provider = ref['provider'];
  if (!('provider' in ref)) {
    out.push({
      path: refPath,
      at: 'key',
      message: `secretRef is missing required key "provider" (one of ${SECRET_PROVIDERS.join(', ')})`,
    });
  } else if (
    typeof provider !== 'string' ||
    !(SECRET_PROVIDERS as readonly string[]).includes(provider)
  ) {
    const hint = typeof provider === 'string' ? didYouMean(provider, SECRET_PROVIDERS) : undefined;
    out.push({
      path: [...refPath, 'provider'],
      at: 'value',
      message: `secretRef.provider must be one of ${SECRET_PROVIDERS.join(', ')}, not ${JSON.stringify(provider)}${hint ? `; did you mean "${hint}"?` : ''}`,
    });
  }
  if (!('key' in ref)) {
    out.push({
      path: refPath,
      at: 'key',
      message:
        'secretRef is missing required key "key" (what names the secret: an env var, a file path, a vault path)',
    });
  } else if (typeof ref['key'] !== 'string' || ref['key'] === '') {
    out.push({
      path: [...refPath, 'key'],
      at: 'value',
      message:
        'secretRef.key must be a non-empty string naming the secret (an env var, a file path, a vault path)',
    });
  } else if (typeof provider === 'string') {
    const problem = secretKeyProblem(provider, ref['key']);
    if (problem) out.push({ path: [...refPath, 'key'], at: 'value', message: problem });
  }
  for (const k of Object.keys(ref)) {
    if (k !== 'provider' && k !== 'key') {
      out.push({
        path: [...refPath, k],
        at: 'key',
        message: `unknown key ${JSON.stringify(k)} in secretRef (allowed: provider, key)`,
      });
    }
  }
  return out;
}

/** A path of `/`-separated parts, none empty, `.` or `..`. */
function plainPath(path: string): boolean {
  return path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/**
 * What is wrong with a secret's key for its provider, as the agent resolves it (agent/secrets.ts):
 * `env` an environment variable name, `file` a path relative to the agent's --secret-dir,
 * `vault` MOUNT/PATH#FIELD of a KV v2 secret. Undefined when it is well formed.
 */
export function secretKeyProblem(provider: string, key: string): string | undefined {
  switch (provider) {
    case 'env':
      return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)
        ? undefined
        : `an env secret's key must be an environment variable name (letters, digits, _), not ${JSON.stringify(key)}`;
    case 'file':
      return !key.includes('\0') && plainPath(key)
        ? undefined
        : `a file secret's key must be a path relative to the agent's --secret-dir (no leading "/", no "." or ".." parts), not ${JSON.stringify(key)}`;
    case 'vault': {
      const m = /^([^/#]+)\/([^#]+)#([^#]+)$/.exec(key);
      return m && plainPath(`${m[1]}/${m[2]}`)
        ? undefined
        : `a vault secret's key must be MOUNT/PATH#FIELD of a KV v2 secret (e.g. secret/app/db#password), not ${JSON.stringify(key)}`;
    }
    default:
      return undefined;
  }
}
