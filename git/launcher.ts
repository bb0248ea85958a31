// The git launcher's process (see GitLauncher in run.ts): small and long-lived, it starts the
// git commands a large process sends it and sends back what they printed. It ends when its
// parent goes away.

import { runGit, type LaunchJob, type LaunchResult } from './run.ts';

process.on('message', (job: LaunchJob) => {
  void runGit(job.cwd, job.env, job.args, job.input).then((result) => {
    if (process.connected) process.send!({ id: job.id, ...result } satisfies LaunchResult);
  });
});
process.on('disconnect', () => process.exit(0));
