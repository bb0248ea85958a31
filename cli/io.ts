// What a command may touch of the outside world, so tests can run commands in-process.

export interface CommandIO {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const processIO = (): CommandIO => {
  // A reader that goes away (`fleetwave validate | head`) is no error of ours: stop writing.
  let stdoutClosed = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    stdoutClosed = true;
  });
  return {
    cwd: process.cwd(),
    env: process.env,
    stdout: (t) => {
      if (!stdoutClosed) process.stdout.write(t);
    },
    stderr: (t) => process.stderr.write(t),
  };
};

/** Exit codes of every command: 0 done/valid, 1 found problems, 2 could not run as asked. */
export const EXIT = { ok: 0, invalid: 1, usage: 2 } as const;
