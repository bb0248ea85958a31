// Release signatures: where an artifact's signature file is and which trusted key checks it.
//
// A signature covers one artifact's bytes, so every artifact has its own signature file. A
// Release names it either per artifact (`artifacts[i].signature: {url, keyRef}`) or once for
// all of them (`spec.signature: {url, keyRef}`), whose URL then names each artifact's file
// with placeholders: `${artifact.url}`, `${artifact.os}`, `${artifact.arch}` and
// `${artifact.sha256}` (`$${` is a literal `${`), e.g. `url: "${artifact.url}.sig"`. An
// artifact's own signature wins over the release's. `keyRef` names a key the agent trusts
// (`fleetwave agent --trusted-key NAME=PATH`); without it the key is the one named `default`.
// The fleet only ever names a key: keys live with the agents.

import type { Artifact, ReleaseSpec, SignatureRef } from './model.ts';

/** The key an agent uses for a signature without a keyRef. */
export const DEFAULT_KEY_REF = 'default';

export const SIGNATURE_PLACEHOLDERS = ['url', 'os', 'arch', 'sha256'] as const;

type Field = (typeof SIGNATURE_PLACEHOLDERS)[number];

/** A placeholder, an escaped `$${`, or an unterminated `${`. */
const TOKEN = /\$\$\{|\$\{([^{}$]*)\}|\$\{/g;

/** A token of a signature URL that is not allowed: its text as written, and why. */
export interface SignatureUrlProblem {
  /** As written; for an unterminated `${`, up to the next blank. */
  raw: string;
  message: string;
}

const ALLOWED = SIGNATURE_PLACEHOLDERS.map((f) => `\${artifact.${f}}`).join(', ');

/** Every token of a signature URL template that is not a known placeholder or an escape. */
export function signatureUrlProblems(template: string): SignatureUrlProblem[] {
  const problems: SignatureUrlProblem[] = [];
  for (const m of template.matchAll(TOKEN)) {
    if (m[0] === '$${') continue;
    if (m[1] === undefined) {
      const raw = /^\$\{[^\s$]*/.exec(template.slice(m.index))![0];
      problems.push({
        raw,
        message: `unterminated "${raw}" in a signature URL: close it with "}" or write "$\${" for a literal "\${"`,
      });
      continue;
    }
    const name = m[1].trim();
    const field = name.startsWith('artifact.') ? name.slice('artifact.'.length) : '';
    if (!(SIGNATURE_PLACEHOLDERS as readonly string[]).includes(field)) {
      problems.push({
        raw: m[0],
        message: `"${m[0]}" is not allowed in a signature URL: only ${ALLOWED} (write "$\${" for a literal "\${")`,
      });
    }
  }
  return problems;
}

/** Whether the template names the artifact, i.e. can give each artifact its own URL. */
export function namesArtifact(template: string): boolean {
  for (const m of template.matchAll(TOKEN)) if (m[1] !== undefined) return true;
  return false;
}

/** The template with the artifact's fields filled in (tokens validation refuses stay as is). */
export function expandSignatureUrl(template: string, artifact: Artifact): string {
  if (!template.includes('${')) return template;
  return template.replace(TOKEN, (token: string, expr: string | undefined) => {
    if (token === '$${') return '${';
    if (expr === undefined) return token;
    const name = expr.trim();
    const field = name.startsWith('artifact.') ? name.slice('artifact.'.length) : '';
    return (SIGNATURE_PLACEHOLDERS as readonly string[]).includes(field)
      ? artifact[field as Field]
      : token;
  });
}

/** The signature of one of the release's artifacts: its own, else the release's, else none. */
export function signatureOf(
  spec: Pick<ReleaseSpec, 'signature'>,
  artifact: Artifact,
): { url: string; keyRef: string } | undefined {
  const ref: SignatureRef | undefined = artifact.signature ?? spec.signature;
  if (!ref) return undefined;
  return { url: expandSignatureUrl(ref.url, artifact), keyRef: ref.keyRef ?? DEFAULT_KEY_REF };
}
