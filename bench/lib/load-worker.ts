// One process of the load generator (see load.ts): runs its connections until the window
// closes, then reports counts and a latency histogram to the parent and exits.

import { Client } from 'undici';
import type { WorkerJob, WorkerReport } from './load.ts';
import { newHistogram, record, wallMs } from './stats.ts';

async function run(job: WorkerJob): Promise<WorkerReport> {
  const report: WorkerReport = {
    requests: 0,
    statuses: {},
    errors: 0,
    histogram: newHistogram(),
    maxMs: 0,
  };
  const requests = job.requests;
  let next = 0;
  const clients = Array.from(
    { length: job.connections },
    () => new Client(job.origin, { pipelining: 1, keepAliveTimeout: 60_000 }),
  );
  const loop = async (client: Client): Promise<void> => {
    // Bounded by time: every iteration ends with a request that ended or failed.
    while (wallMs() < job.windowEnd) {
      const req = requests[next++ % requests.length]!;
      const sent = wallMs();
      try {
        const res = await client.request({
          method: req.method,
          path: req.path,
          headers: req.headers,
          ...(req.body === undefined ? {} : { body: req.body }),
        });
        await res.body.arrayBuffer();
        const done = wallMs();
        if (sent >= job.windowStart && done <= job.windowEnd) {
          report.requests++;
          const key = String(res.statusCode);
          report.statuses[key] = (report.statuses[key] ?? 0) + 1;
          record(report.histogram, (done - sent) * 1000);
          report.maxMs = Math.max(report.maxMs, done - sent);
        }
      } catch {
        report.errors++;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  // Connections start at once; the warm-up before the window absorbs the connects.
  await Promise.all(clients.map(loop));
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  return report;
}

process.once('message', (job: WorkerJob) => {
  run(job).then(
    (report) => process.send!(report, () => process.exit(0)),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
});
