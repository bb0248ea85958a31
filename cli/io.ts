// What a command may touch of the outside world, so tests can run commands in-process.

export interface CommandIO {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const processIO = (): CommandIO => ({
  cwd: process.cwd(),
  env: process.env,
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
});

/** Exit codes of every command: 0 done/valid, 1 found problems, 2 could not run as asked. */
export const EXIT = { ok: 0, invalid: 1, usage: 2 } as const;
