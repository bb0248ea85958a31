// Input checks both actions share: URLs and paths inside the workspace.

import { isAbsolute, relative, resolve, sep } from 'node:path';
import { FleetwaveError } from '../../../core/errors.ts';

export function httpUrl(name: string, text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FleetwaveError('USAGE', `input ${name} is not a URL: "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FleetwaveError('USAGE', `input ${name} must be an http(s) URL, not ${url.protocol}`);
  }
  return url;
}

/** A path inside the workspace, as the repository sees it (git and annotations). */
export function workspacePath(name: string, workspace: string, text: string): string {
  const full = resolve(workspace, text);
  const rel = relative(workspace, full);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new FleetwaveError('USAGE', `input ${name} ("${text}") must be inside the workspace`);
  }
  return rel === '' ? '.' : rel.split(sep).join('/');
}
