// Builds every action (a directory of actions/ with an action.yml and src/index.ts) into one
// ESM file, dist/index.js, that the runner runs with its own node24 and no node_modules.
// Deterministic: the same sources give the same bytes (no timestamps, no source maps, paths
// relative to the repository), so a test can rebuild in memory and compare with the commit.
//
//   node actions/build.ts          write every dist/index.js
//   node actions/build.ts --check  exit 1 when a committed dist/index.js is not its build

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
const ACTIONS = join(REPO_ROOT, 'actions');

// CommonJS dependencies (simple-git, octokit's helpers) call require(); an ESM file has none.
const BANNER = [
  '// Built by actions/build.ts from actions/*/src: do not edit; run `npm run build:actions`.',
  "import { createRequire as fleetwaveCreateRequire } from 'node:module';",
  'const require = fleetwaveCreateRequire(import.meta.url);',
].join('\n');

/** The actions: directories holding an action.yml and src/index.ts. */
export async function actionNames(): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(ACTIONS, { withFileTypes: true })) {
    const dir = join(ACTIONS, entry.name);
    if (
      entry.isDirectory() &&
      existsSync(join(dir, 'action.yml')) &&
      existsSync(join(dir, 'src/index.ts'))
    ) {
      names.push(entry.name);
    }
  }
  return names.sort();
}

export function distPath(name: string): string {
  return join(ACTIONS, name, 'dist', 'index.js');
}

/** The bundle of one action, in memory. */
export async function bundle(name: string): Promise<string> {
  const result = await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: [`actions/${name}/src/index.ts`],
    outfile: `actions/${name}/dist/index.js`,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    sourcemap: false,
    minify: false,
    legalComments: 'inline',
    charset: 'utf8',
    banner: { js: BANNER },
    write: false,
    logLevel: 'silent',
  });
  const file = result.outputFiles.find((f) => f.path.endsWith('index.js'));
  if (!file) throw new Error(`esbuild produced no index.js for ${name}`);
  return file.text;
}

async function main(args: string[]): Promise<number> {
  const check = args.includes('--check');
  let stale = 0;
  for (const name of await actionNames()) {
    const text = await bundle(name);
    const path = distPath(name);
    if (check) {
      const committed = existsSync(path) ? await readFile(path, 'utf8') : undefined;
      if (committed !== text) {
        stale++;
        console.error(
          `actions/${name}/dist/index.js is not the build of actions/${name}/src: run npm run build:actions`,
        );
      } else console.log(`actions/${name}/dist/index.js is up to date`);
    } else {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, text);
      console.log(`built actions/${name}/dist/index.js (${Math.round(text.length / 1024)} KiB)`);
    }
  }
  return stale > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await main(process.argv.slice(2));
}
