// docs/api/openapi.yaml against the official OpenAPI 3.0 schema (and Redocly's linter when it is
// installed), and against the real server: every route is called for the answers it documents,
// and each answer's status, headers and body must match the document.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { validateFleet } from '../../core/fleet/validate.ts';
import { renderTarget } from '../../core/target/render.ts';
import { issueAgentToken } from '../../reconciler/auth.ts';
import { readFleetDirectory } from '../../source/directory.ts';
import {
  ADMIN_TOKEN,
  ENROLL_TOKEN,
  FleetRepo,
  LINUX_PROD,
  WEBHOOK_SECRET,
  call,
  enroll,
  startServer,
  testConfig,
  type Answer,
  type Running,
} from '../reconciler/helpers.ts';
import { change } from '../engine/sim.ts';
import { until } from '../helpers/until.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCUMENT_PATH = `${ROOT}docs/api/openapi.yaml`;
/** The official OpenAPI 3.0 JSON Schema, as Debian's `openapi-specification` package ships it. */
const OAS30_SCHEMA = '/usr/share/openapi-specification/schemas/v3.0/schema.json';
const REDOCLY = `${ROOT}node_modules/.bin/redocly`;

type Json = Record<string, unknown>;
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

const doc = parse(readFileSync(DOCUMENT_PATH, 'utf8')) as Json & {
  paths: Record<string, Record<string, Json>>;
  components: Record<string, Record<string, Json>>;
};

/** Formats the OpenAPI schema and the document use, checked plainly (no ajv-formats needed). */
function addFormats(ajv: Ajv): void {
  ajv.addFormat('date-time', {
    type: 'string',
    validate: (s: string) =>
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(s) &&
      !Number.isNaN(Date.parse(s)),
  });
  ajv.addFormat('uri', { type: 'string', validate: (s: string) => URL.canParse(s) });
  ajv.addFormat('uri-reference', {
    type: 'string',
    validate: (s: string) => URL.canParse(s, 'http://base.invalid/'),
  });
  ajv.addFormat('email', { type: 'string', validate: (s: string) => /^[^\s@]+@[^\s@]+$/.test(s) });
  ajv.addFormat('regex', {
    type: 'string',
    validate: (s: string) => {
      try {
        new RegExp(s, 'u');
        return true;
      } catch {
        return false;
      }
    },
  });
}

/** JSON Schema draft-04 (the OpenAPI 3.0 schema's dialect) as draft-07 for ajv 8. */
function fromDraft04(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(fromDraft04);
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node as Json)) out[key] = fromDraft04(value);
  for (const [flag, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof out[flag] === 'boolean') {
      if (out[flag]) out[flag] = out[bound];
      else delete out[flag];
      if (out[flag] !== undefined) delete out[bound];
    }
  }
  return out;
}

/**
 * An OpenAPI 3.0 Schema Object as JSON Schema: `nullable: true` becomes a null type, and
 * references to components point into the document registered under `oas:document`.
 */
function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node as Json)) {
    if (key === 'nullable' || key === 'example') continue;
    if (key === '$ref' && typeof value === 'string') out[key] = `oas:document${value}`;
    else out[key] = toJsonSchema(value);
  }
  if ((node as Json).nullable === true) {
    if (typeof out.type === 'string') {
      out.type = [out.type, 'null'];
      if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
    } else return { anyOf: [out, { type: 'null' }] };
  }
  return out;
}

function deref<T>(node: T | { $ref: string }): T {
  let current: unknown = node;
  for (let i = 0; i < 10 && current && typeof current === 'object' && '$ref' in current; i++) {
    const ref = (current as { $ref: string }).$ref;
    assert.ok(ref.startsWith('#/'), `only local references: ${ref}`);
    current = ref
      .slice(2)
      .split('/')
      .reduce<unknown>((at, part) => (at as Json | undefined)?.[part], doc);
    assert.ok(current !== undefined, `${ref} does not resolve`);
  }
  return current as T;
}

interface ResponseObject {
  headers?: Record<string, Json>;
  content?: Record<string, { schema?: Json }>;
}

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ $id: 'oas:document', components: toJsonSchema(doc.components) });
const compiled = new Map<object, ValidateFunction>();
function validator(schema: Json): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(toJsonSchema(schema) as Json);
    compiled.set(schema, v);
  }
  return v;
}

/** The document's path template for a concrete path, e.g. /v1/agents/{id}/target. */
function templateOf(path: string): string | undefined {
  const bare = path.split('?')[0]!;
  return Object.keys(doc.paths).find((template) =>
    new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(bare),
  );
}

/** Every (template, method, status) answer the server gave in this test. */
const seen = new Set<string>();

/** Fails unless the answer is documented for this route and matches it. */
function conforms(method: string, path: string, answer: Answer): void {
  const template = templateOf(path);
  assert.ok(template, `${path} is not in the document`);
  const operation = doc.paths[template]![method.toLowerCase()] as
    { responses: Record<string, ResponseObject | { $ref: string }> } | undefined;
  assert.ok(operation, `${method} ${template} is not in the document`);
  const where = `${method} ${path} → ${answer.status}`;
  const documented = operation.responses[String(answer.status)];
  assert.ok(documented, `${where}: status not documented (body: ${answer.text.slice(0, 200)})`);
  seen.add(`${method.toUpperCase()} ${template} ${answer.status}`);
  const response = deref<ResponseObject>(documented);
  for (const [name, ref] of Object.entries(response.headers ?? {})) {
    const header = deref<{ required?: boolean; schema?: Json }>(ref);
    const value = answer.headers[name.toLowerCase()];
    if (value === undefined) {
      assert.ok(!header.required, `${where}: header ${name} is required but missing`);
      continue;
    }
    if (header.schema) {
      const check = validator(header.schema);
      assert.ok(check(value), `${where}: header ${name}: ${ajv.errorsText(check.errors)}`);
    }
  }
  const contentType = String(answer.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  if (!response.content) {
    assert.equal(answer.text, '', `${where}: documented without a body`);
    return;
  }
  const media = response.content[contentType];
  assert.ok(
    media,
    `${where}: content type "${contentType}" is not documented (${Object.keys(response.content).join(', ')})`,
  );
  if (media.schema) {
    const body = contentType === 'application/json' ? answer.body : answer.text;
    const check = validator(media.schema);
    assert.ok(
      check(body),
      `${where}: body does not match: ${ajv.errorsText(check.errors)}\n${answer.text.slice(0, 500)}`,
    );
  }
}

/** The documented request body schema of an operation accepts (or refuses) a body. */
function requestAccepts(method: string, template: string, body: unknown): boolean {
  type RequestBody = { content: Record<string, { schema: Json }> };
  const operation = doc.paths[template]![method] as { requestBody: RequestBody };
  const requestBody = deref<RequestBody>(operation.requestBody);
  return validator(requestBody.content['application/json']!.schema)(body);
}

function sign(body: string): string {
  return `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}`;
}

describe('the OpenAPI document', () => {
  it(
    'is valid against the official OpenAPI 3.0 JSON Schema',
    {
      skip: existsSync(OAS30_SCHEMA)
        ? false
        : `${OAS30_SCHEMA} is missing: apt-get install openapi-specification`,
    },
    () => {
      const schema = fromDraft04(JSON.parse(readFileSync(OAS30_SCHEMA, 'utf8'))) as Json;
      delete schema.$schema;
      schema.$id = schema.id;
      delete schema.id;
      const meta = new Ajv({ strict: false, allErrors: true });
      addFormats(meta);
      const validate = meta.compile(schema);
      assert.equal(doc.openapi, '3.0.3');
      assert.ok(validate(doc), meta.errorsText(validate.errors, { separator: '\n' }));
      // The check can fail: a document with a wrong field is refused.
      assert.equal(validate({ ...doc, paths: { '/x': { get: { responses: 'none' } } } }), false);
    },
  );

  it('passes `redocly lint` (recommended rules, see redocly.yaml)', () => {
    const out = execFileSync(REDOCLY, ['lint', '--format=stylish', DOCUMENT_PATH], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: 'pipe',
      env: {
        ...process.env,
        REDOCLY_TELEMETRY: 'off',
        REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
        // redocly turns on V8's compile cache, which would leave a node-compile-cache dir in /tmp.
        NODE_DISABLE_COMPILE_CACHE: '1',
      },
    });
    assert.doesNotMatch(out, /warning|error/i, out);
  });

  it('has every reference resolving, every operation an operationId and an error schema', () => {
    const ids = new Set<string>();
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const method of METHODS) {
        const operation = item[method] as
          { operationId?: string; responses: Record<string, unknown> } | undefined;
        if (!operation) continue;
        assert.ok(operation.operationId, `${method} ${template}: no operationId`);
        assert.ok(!ids.has(operation.operationId), `${operation.operationId} twice`);
        ids.add(operation.operationId);
        for (const [status, response] of Object.entries(operation.responses)) {
          const r = deref<ResponseObject>(response as ResponseObject);
          for (const h of Object.values(r.headers ?? {})) deref(h);
          if (Number(status) >= 400) {
            assert.deepEqual(
              r.content?.['application/json']?.schema,
              { $ref: '#/components/schemas/Error' },
              `${method} ${template} ${status} is not the error body`,
            );
          }
        }
      }
    }
    // Compiling every schema resolves every $ref inside the components.
    for (const schema of Object.values(doc.components.schemas!)) validator(schema);
  });

  it('describes the target of a signed release (the served fleet signs none)', async () => {
    const { model } = validateFleet(await readFleetDirectory('fleet', { cwd: ROOT }));
    assert.ok(model);
    // The example fleet's 2.5.0 signs each artifact.
    const signed = {
      ...model,
      fleet: { ...model.fleet, spec: { ...model.fleet.spec, version: '2.5.0' } },
    };
    const rendered = renderTarget(signed, 'c'.repeat(40), { id: 'agent-a', labels: LINUX_PROD });
    assert.ok(rendered.ok && rendered.target.artifact.signature);
    const check = validator(doc.components.schemas!.Target!);
    const body = JSON.parse(JSON.stringify(rendered.target)) as Json;
    assert.ok(check(body), ajv.errorsText(check.errors));
    const artifact = body.artifact as Json;
    assert.equal(
      check({ ...body, artifact: { ...artifact, signature: { url: 'https://x/y.sig' } } }),
      false,
    );
  });
});

describe('the running server matches the OpenAPI document', () => {
  let repo: FleetRepo;
  let server: Running;
  let token: string;

  before(async () => {
    repo = await FleetRepo.create();
    server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data`, maxWaiters: 1 }),
    );
    token = await enroll(server.url, 'agent-a');
  });

  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  const post = async (path: string, options: Parameters<typeof call>[1]): Promise<Answer> => {
    const answer = await call(`${server.url}${path}`, { method: 'POST', ...options });
    conforms('POST', path, answer);
    return answer;
  };
  const get = async (path: string, options: Parameters<typeof call>[1] = {}): Promise<Answer> => {
    const answer = await call(`${server.url}${path}`, { method: 'GET', ...options });
    conforms('GET', path, answer);
    return answer;
  };

  it('documents exactly the routes the server has', () => {
    const routes = new Set<string>();
    // printRoutes draws a tree: each line one path segment, indented four columns a level,
    // "(METHODS)" after the segments that end a route.
    const stack: string[] = [];
    for (const line of server.app.printRoutes({ commonPrefix: false }).split('\n')) {
      const m = /^([\s│├└─]*)(\S+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
      if (!m) continue;
      const depth = Math.floor(m[1]!.length / 4);
      stack.length = depth;
      stack[depth] = m[2]!;
      if (!m[3]) continue;
      const path = stack.join('').replace(/^\/?/, '/');
      for (const method of m[3].split(', ')) {
        if (method !== 'HEAD') routes.add(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
      }
    }
    const documented = new Set<string>();
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const method of METHODS)
        if (item[method]) documented.add(`${method.toUpperCase()} ${template}`);
    }
    assert.ok(routes.size >= 13, `parsed the routes: ${[...routes].join(', ')}`);
    assert.deepEqual([...documented].sort(), [...routes].sort());
  });

  it('enroll: 200, 400, 401, 413, 415', async () => {
    const good = { id: 'agent-b', labels: LINUX_PROD };
    assert.ok(requestAccepts('post', '/v1/enroll', good));
    const ok = await post('/v1/enroll', { token: ENROLL_TOKEN, body: good });
    assert.equal(ok.status, 200);
    const bad = { id: '-bad id', labels: {} };
    assert.equal(requestAccepts('post', '/v1/enroll', bad), false);
    assert.equal((await post('/v1/enroll', { token: ENROLL_TOKEN, body: bad })).status, 400);
    assert.equal((await post('/v1/enroll', { token: 'wrong', body: good })).status, 401);
    const huge = { id: 'agent-c', labels: { note: 'x'.repeat(32 * 1024) } };
    assert.equal((await post('/v1/enroll', { token: ENROLL_TOKEN, body: huge })).status, 413);
    const text = await post('/v1/enroll', {
      token: ENROLL_TOKEN,
      raw: '<id>agent-c</id>',
      headers: { 'content-type': 'application/xml' },
    });
    assert.equal(text.status, 415);
  });

  it('checkin: 200, 304 (at once and after a long-poll), 400, 401, 403, 413, 422', async () => {
    const body = { id: 'agent-a', labels: LINUX_PROD, health: { status: 'ok' } };
    assert.ok(requestAccepts('post', '/v1/checkin', body));
    const first = await post('/v1/checkin', { token, body });
    assert.equal(first.status, 200);
    const etag = (first.body as { etag: string }).etag;
    const held = { token, body, headers: { 'if-none-match': `"${etag}"` } };
    assert.equal((await post('/v1/checkin', held)).status, 304);
    assert.equal((await post('/v1/checkin?wait=1', held)).status, 304);
    const current = { ...body, current: { etag, version: '2.4.0' } };
    assert.equal((await post('/v1/checkin', { token, body: current })).status, 304);
    assert.equal((await post('/v1/checkin?wait=soon', held)).status, 400);
    const malformed = { id: 'agent-a', labels: LINUX_PROD, health: { status: 'fine' } };
    assert.equal(requestAccepts('post', '/v1/checkin', malformed), false);
    assert.equal((await post('/v1/checkin', { token, body: malformed })).status, 400);
    assert.equal((await post('/v1/checkin', { body })).status, 401);
    assert.equal((await post('/v1/checkin', { token: ENROLL_TOKEN, body })).status, 401);
    const other = { ...body, id: 'agent-b' };
    assert.equal((await post('/v1/checkin', { token, body: other })).status, 403);
    const huge = { ...body, health: { status: 'ok', message: 'x'.repeat(32 * 1024) } };
    assert.equal((await post('/v1/checkin', { token, body: huge })).status, 413);
    // No os/arch label: no artifact can be chosen, so no target at all.
    const noPlatform = { env: LINUX_PROD.env, region: LINUX_PROD.region };
    const bare = await post('/v1/checkin', { token, body: { id: 'agent-a', labels: noPlatform } });
    assert.equal(bare.status, 422);
    assert.equal((bare.body as { error: { code: string } }).error.code, 'TARGET_UNAVAILABLE');
  });

  it('checkin: 429 with Retry-After past --max-waiters, and the held one 304 on close', async () => {
    const waiterToken = await enroll(server.url, 'agent-w');
    const body = { id: 'agent-w', labels: LINUX_PROD };
    const first = await call(`${server.url}/v1/checkin`, { token: waiterToken, body });
    const etag = (first.body as { etag: string }).etag;
    const options = { token: waiterToken, body, headers: { 'if-none-match': `"${etag}"` } };
    const holding = call(`${server.url}/v1/checkin?wait=600`, options);
    await until(
      async () =>
        ((await call(`${server.url}/v1/status`)).body as { agents: { waiting: number } }).agents
          .waiting === 1,
      'the server holds the check-in',
      { intervalMs: 20 },
    );
    const refused = await post('/v1/checkin?wait=600', options);
    assert.equal(refused.status, 429);
    assert.ok(refused.headers['retry-after']);
    // Closing answers every held long-poll with 304 so agents move to another replica.
    const closing = server.close();
    const answer = await holding;
    await closing;
    conforms('POST', '/v1/checkin?wait=600', answer);
    assert.equal(answer.status, 304);
    server = await startServer(
      testConfig({ repo: repo.origin, dataDir: `${repo.root}/data2`, maxWaiters: 1 }),
    );
    token = await enroll(server.url, 'agent-a');
  });

  it('target: 200, 304, 401, 403, 404', async () => {
    await call(`${server.url}/v1/checkin`, { token, body: { id: 'agent-a', labels: LINUX_PROD } });
    const ok = await get('/v1/agents/agent-a/target', { token });
    assert.equal(ok.status, 200);
    const etag = String(ok.headers.etag);
    const same = await get('/v1/agents/agent-a/target', {
      token,
      headers: { 'if-none-match': etag },
    });
    assert.equal(same.status, 304);
    assert.equal((await get('/v1/agents/agent-a/target')).status, 401);
    assert.equal((await get('/v1/agents/agent-b/target', { token })).status, 403);
    const ghost = issueAgentToken(server.app.reconciler.tokenKey, 'ghost');
    assert.equal((await get('/v1/agents/ghost/target', { token: ghost })).status, 404);
  });

  it('status: 200 with the per-wave counts', async () => {
    const status = await get('/v1/status');
    assert.equal(status.status, 200);
    assert.ok((status.body as { waves: unknown[] }).waves.length > 0);
  });

  it('agents inventory: 200, 400, 401, 403, 404', async () => {
    await call(`${server.url}/v1/checkin`, { token, body: { id: 'agent-a', labels: LINUX_PROD } });
    await server.app.reconciler.reports.flush();
    const list = await get('/v1/agents?selector=env%3Dprod&limit=1', { token: ADMIN_TOKEN });
    assert.equal(list.status, 200);
    assert.ok((list.body as { agents: unknown[] }).agents.length === 1);
    assert.equal((await get('/v1/agents?health=lost', { token: ADMIN_TOKEN })).status, 400);
    assert.equal((await get('/v1/agents?selector=a%20in%20(', { token: ADMIN_TOKEN })).status, 400);
    assert.equal((await get('/v1/agents')).status, 401);
    assert.equal((await get('/v1/agents', { token })).status, 403);
    const one = await get('/v1/agents/agent-a', { token: ADMIN_TOKEN });
    assert.equal(one.status, 200);
    assert.equal((await get('/v1/agents/nobody', { token: ADMIN_TOKEN })).status, 404);
    assert.equal((await get('/v1/agents/agent-a', { token })).status, 403);
    const gone = await post('/v1/agents/agent-a/forget', { token: ADMIN_TOKEN, body: {} });
    assert.equal(gone.status, 200);
    assert.equal(
      (await post('/v1/agents/agent-a/forget', { token: ADMIN_TOKEN, body: {} })).status,
      404,
    );
    assert.equal((await post('/v1/agents/agent-a/forget', { body: {} })).status, 401);
  });

  it('rollout actions: 200, 400, 401, 403, 409', async () => {
    const paused = await post('/v1/rollout/pause', {
      token: ADMIN_TOKEN,
      body: { reason: 'openapi test', actor: 'test' },
    });
    assert.equal(paused.status, 200);
    assert.equal((paused.body as { changed: boolean }).changed, true);
    const resumed = await post('/v1/rollout/resume', { token: ADMIN_TOKEN, body: {} });
    assert.equal(resumed.status, 200);
    const promote = await post('/v1/rollout/promote', { token: ADMIN_TOKEN, body: {} });
    assert.equal(promote.status, 409);
    const rollback = await post('/v1/rollout/rollback', { token: ADMIN_TOKEN, body: {} });
    assert.equal(rollback.status, 409);
    const bad = await post('/v1/rollout/pause', { token: ADMIN_TOKEN, body: { why: 'x' } });
    assert.equal(bad.status, 400);
    for (const action of ['pause', 'resume', 'promote', 'rollback']) {
      assert.equal((await post(`/v1/rollout/${action}`, { body: {} })).status, 401);
      assert.equal((await post(`/v1/rollout/${action}`, { token, body: {} })).status, 403);
    }
    // A change on main becomes the candidate: promote moves it a wave, rollback rejects it.
    const candidate = await change(repo, 'openapi: a change to roll out');
    await server.app.reconciler.sync.sync();
    await server.app.rollout.evaluate();
    const status = await get('/v1/status');
    assert.equal(
      (status.body as { candidate: { revision: string } }).candidate.revision,
      candidate,
    );
    const promoted = await post('/v1/rollout/promote', { token: ADMIN_TOKEN, body: {} });
    assert.equal(promoted.status, 200, promoted.text);
    const rolled = await post('/v1/rollout/rollback', { token: ADMIN_TOKEN, body: {} });
    assert.equal(rolled.status, 200, rolled.text);
    assert.equal((await get('/v1/status')).status, 200);
  });

  it('webhook: 202 push and other events, 200 duplicate, 400, 401', async () => {
    const payload = JSON.stringify({ ref: 'refs/heads/main' });
    const headers = (delivery: string, event = 'push') => ({
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': delivery,
      'x-hub-signature-256': sign(payload),
    });
    const pushed = await post('/v1/webhooks/github', { raw: payload, headers: headers('d-1') });
    assert.equal(pushed.status, 202);
    assert.equal((pushed.body as { action: string }).action, 'fetch');
    const again = await post('/v1/webhooks/github', { raw: payload, headers: headers('d-1') });
    assert.equal(again.status, 200);
    const ping = await post('/v1/webhooks/github', {
      raw: payload,
      headers: headers('d-2', 'ping'),
    });
    assert.equal(ping.status, 202);
    assert.equal((ping.body as { action: string }).action, 'ignored');
    const forged = await post('/v1/webhooks/github', {
      raw: payload,
      headers: { ...headers('d-3'), 'x-hub-signature-256': sign('another body') },
    });
    assert.equal(forged.status, 401);
    const noDelivery: Record<string, string> = headers('d-4');
    delete noDelivery['x-github-delivery'];
    assert.equal(
      (await post('/v1/webhooks/github', { raw: payload, headers: noDelivery })).status,
      400,
    );
  });

  it('probes, metrics and the page: 200', async () => {
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
    const metrics = await get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^fleetwave_/m);
    const page = await get('/');
    assert.equal(page.status, 200);
    assert.match(page.text, /<html/i);
  });

  it('an unknown route answers 404 with the error body', async () => {
    const answer = await call(`${server.url}/v1/nothing`);
    assert.equal(answer.status, 404);
    assert.ok(validator(doc.components.schemas!.Error!)(answer.body));
  });

  describe('a server that is not ready and has no webhook secret', () => {
    let lonely: Running;
    let lonelyRepo: FleetRepo;

    before(async () => {
      lonelyRepo = await FleetRepo.create();
      const config = testConfig({
        repo: `${lonelyRepo.root}/no-such-origin.git`,
        dataDir: `${lonelyRepo.root}/data`,
      });
      delete config.webhookSecret;
      lonely = await startServer(config);
    });

    after(async () => {
      await lonely?.close();
      await lonelyRepo?.cleanup();
    });

    it('readyz, checkin and target: 503 with Retry-After; webhook: 404', async () => {
      const at = async (
        method: 'GET' | 'POST',
        path: string,
        options: Parameters<typeof call>[1],
      ) => {
        const answer = await call(`${lonely.url}${path}`, { method, ...options });
        conforms(method, path, answer);
        return answer;
      };
      const readyz = await at('GET', '/readyz', {});
      assert.equal(readyz.status, 503);
      assert.ok(readyz.headers['retry-after']);
      const agentToken = (
        (
          await at('POST', '/v1/enroll', {
            token: ENROLL_TOKEN,
            body: { id: 'early', labels: LINUX_PROD },
          })
        ).body as { token: string }
      ).token;
      const body = { id: 'early', labels: LINUX_PROD };
      const checkin = await at('POST', '/v1/checkin', { token: agentToken, body });
      assert.equal(checkin.status, 503);
      assert.ok(checkin.headers['retry-after']);
      const target = await at('GET', '/v1/agents/early/target', { token: agentToken });
      assert.equal(target.status, 503);
      const hook = await at('POST', '/v1/webhooks/github', {
        raw: '{}',
        headers: { 'content-type': 'application/json', 'x-github-delivery': 'd' },
      });
      assert.equal(hook.status, 404);
      const status = await at('GET', '/v1/status', {});
      assert.equal((status.body as { ready: boolean }).ready, false);
    });
  });

  it('exercised every operation and the answers the task names', () => {
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const method of METHODS) {
        if (!item[method]) continue;
        const key = `${method.toUpperCase()} ${template}`;
        assert.ok(
          [...seen].some((s) => s.startsWith(`${key} 2`)),
          `${key}: no successful answer was checked`,
        );
      }
    }
    for (const must of [
      'POST /v1/checkin 200',
      'POST /v1/checkin 304',
      'POST /v1/checkin 400',
      'POST /v1/checkin 401',
      'POST /v1/checkin 403',
      'POST /v1/checkin 413',
      'POST /v1/checkin 429',
      'POST /v1/checkin 503',
      'GET /v1/agents/{id}/target 304',
      'POST /v1/rollout/pause 401',
      'POST /v1/webhooks/github 401',
      'POST /v1/webhooks/github 404',
      'GET /readyz 503',
    ]) {
      assert.ok(seen.has(must), `${must} was not checked`);
    }
  });
});
