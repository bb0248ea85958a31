// A config string as a template: literal text, `${agent.id}` and `${agent.labels.NAME}`.
// `$${` is a literal `${`. The tokens are exactly those validation reads (core/fleet/
// interpolation.ts `scan`), so what is checked is what is rendered. A token validation
// refuses stays literal text (a valid fleet has none).

import { scan } from '../fleet/interpolation.ts';

export type Part = string | { readonly id: true } | { readonly label: string };

function unescape(text: string): string {
  return text.includes('$${') ? text.replaceAll('$${', '${') : text;
}

/** The parts of `text`, adjacent literals joined; a string without `${` is one literal. */
export function parseTemplate(text: string): Part[] {
  if (!text.includes('${')) return [text];
  const parts: Part[] = [];
  let literal = '';
  let last = 0;
  for (const token of scan(text)) {
    const ref = token.reference;
    if (!ref) continue;
    // Escapes never straddle a token: scan reads `$${` before any `${` inside it.
    literal += unescape(text.slice(last, token.index));
    last = token.index + token.raw.length;
    if (literal !== '') parts.push(literal);
    literal = '';
    parts.push(ref.kind === 'id' ? { id: true } : { label: ref.name });
  }
  literal += unescape(text.slice(last));
  if (literal !== '' || parts.length === 0) parts.push(literal);
  return parts;
}

/** A key is never interpolated (validation forbids it) but `$${` still means `${`. */
export function unescapeKey(key: string): string {
  return unescape(key);
}

/** The labels a template reads. */
export function labelsOf(parts: readonly Part[]): string[] {
  const out: string[] = [];
  for (const p of parts) if (typeof p === 'object' && 'label' in p) out.push(p.label);
  return out;
}
