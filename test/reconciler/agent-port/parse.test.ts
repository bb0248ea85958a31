// The agent port's request head parser (reconciler/agent-port/parse.ts), alone: the shapes
// agents send are read completely, every other shape is a refusal with its status, and no
// input makes it throw. The port on a real server: ../agent-port.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  MAX_HEAD,
  badPartialHead,
  isJsonType,
  parseHead,
  type Head,
  type Refusal,
} from '../../../reconciler/agent-port/parse.ts';

const LIMIT = 65_536;
const lines = (...l: string[]): string => l.join('\r\n');
const CHECKIN = [
  'POST /v1/checkin?wait=30 HTTP/1.1',
  'Host: fleet.example',
  'Authorization: Bearer tok',
  'Content-Type: application/json',
  'Content-Length: 42',
  'If-None-Match: "abc"',
];

function head(text: string): Head {
  const parsed = parseHead(text, LIMIT);
  assert.equal(parsed.refused, false, parsed.refused ? parsed.error.message : '');
  return parsed as Head;
}

function refusal(text: string, limit = LIMIT): Refusal {
  const parsed = parseHead(text, limit);
  assert.equal(parsed.refused, true, `not refused: ${JSON.stringify(text)}`);
  return parsed as Refusal;
}

describe('the agent port’s head parser', () => {
  it('reads a check-in head', () => {
    const h = head(lines(...CHECKIN, 'X-Request-Id: r-1', 'Connection: keep-alive'));
    assert.deepEqual(
      {
        route: h.route,
        method: h.method,
        url: h.url,
        wait: h.wait,
        contentLength: h.contentLength,
        authorization: h.authorization,
        ifNoneMatch: h.ifNoneMatch,
        requestId: h.requestId,
        close: h.close,
        error: h.error,
      },
      {
        route: 'checkin',
        method: 'POST',
        url: '/v1/checkin?wait=30',
        wait: '30',
        contentLength: 42,
        authorization: 'Bearer tok',
        ifNoneMatch: '"abc"',
        requestId: 'r-1',
        close: false,
        error: undefined,
      },
    );
  });

  it('reads the other two routes, header names in any case, values without OWS', () => {
    const enroll = head(
      lines('POST /v1/enroll HTTP/1.1', 'host: x', 'content-length:\t7 ', 'CONTENT-TYPE: a'),
    );
    assert.deepEqual([enroll.route, enroll.contentLength, enroll.contentType], ['enroll', 7, 'a']);
    const target = head(
      lines('GET /v1/agents/web-1.a:b@c_d/target HTTP/1.1', 'Host: x', 'Content-Length: 0'),
    );
    assert.deepEqual([target.route, target.agentId], ['target', 'web-1.a:b@c_d']);
  });

  it('joins repeated If-None-Match lines as node:http does; reads Connection: close', () => {
    const h = head(lines(...CHECKIN, 'If-None-Match: "def"', 'Connection: Keep-Alive, close'));
    assert.equal(h.ifNoneMatch, '"abc", "def"');
    assert.equal(h.close, true);
  });

  it('answers other paths 404 and odd queries or ids 400, keeping the connection', () => {
    const cases: Array<[string, string, number]> = [
      ['POST /v1/nope?x=1 HTTP/1.1', 'no route POST /v1/nope', 404],
      ['GET /v1/checkin HTTP/1.1', 'no route GET /v1/checkin', 404],
      ['GET /healthz HTTP/1.1', 'no route GET /healthz', 404],
      ['POST /v1/agents/a/target HTTP/1.1', 'no route POST /v1/agents/a/target', 404],
      ['POST /v1/checkin?wait=1&wait=2 HTTP/1.1', 'query parameter', 400],
      ['POST /v1/checkin?wait=%31 HTTP/1.1', 'query parameter', 400],
      ['POST /v1/enroll?x HTTP/1.1', 'takes no query', 400],
      ['GET /v1/agents/a%2Db/target HTTP/1.1', 'as they are', 400],
      ['GET /v1/agents/-a/target HTTP/1.1', 'as they are', 400],
    ];
    for (const [line, message, status] of cases) {
      const h = head(
        lines(line, 'Host: x', ...(line.startsWith('POST') ? ['Content-Length: 2'] : [])),
      );
      assert.equal(h.route, undefined, line);
      assert.ok(h.error?.message.includes(message), `${line}: ${h.error?.message}`);
      assert.equal(status === 404 ? 'NOT_FOUND' : 'REQUEST_INVALID', h.error?.code, line);
    }
    // The raw ?wait= value goes to agent-api.ts's waitOf, which answers as the main port.
    assert.equal(
      head(lines('POST /v1/checkin?wait=soon HTTP/1.1', 'Host: x', 'Content-Length: 2')).wait,
      'soon',
    );
  });

  it('refuses every unusual shape with its status', () => {
    const post = (...extra: string[]) => lines('POST /v1/checkin HTTP/1.1', 'Host: x', ...extra);
    const cases: Array<[string, string, number]> = [
      ['HTTP/1.0', lines('GET /v1/agents/a/target HTTP/1.0', 'Host: x'), 400],
      ['HTTP/2', lines('GET /v1/agents/a/target HTTP/2', 'Host: x'), 400],
      ['lower-case version', lines('GET /v1/agents/a/target http/1.1', 'Host: x'), 400],
      ['HEAD', lines('HEAD /v1/agents/a/target HTTP/1.1', 'Host: x'), 400],
      ['absolute-form', lines('GET http://x/v1/agents/a/target HTTP/1.1', 'Host: x'), 400],
      ['no Host', lines('GET /v1/agents/a/target HTTP/1.1'), 400],
      ['two Hosts', lines('GET /v1/agents/a/target HTTP/1.1', 'Host: x', 'Host: y'), 400],
      ['Transfer-Encoding', post('Transfer-Encoding: chunked'), 400],
      ['TE and CL', post('Content-Length: 2', 'Transfer-Encoding: chunked'), 400],
      ['Expect', post('Content-Length: 2', 'Expect: 100-continue'), 417],
      ['Upgrade', post('Content-Length: 2', 'Upgrade: h2c'), 400],
      ['Connection: upgrade', post('Content-Length: 2', 'Connection: upgrade'), 400],
      ['no Content-Length', post(), 411],
      ['two Content-Lengths', post('Content-Length: 2', 'Content-Length: 2'), 400],
      ['Content-Length hex', post('Content-Length: 0x2'), 400],
      ['Content-Length negative', post('Content-Length: -1'), 400],
      ['Content-Length list', post('Content-Length: 2, 2'), 400],
      ['Content-Length huge', post('Content-Length: 1234567890123456'), 400],
      ['Content-Length over the limit', post(`Content-Length: ${LIMIT + 1}`), 413],
      [
        'a body on GET',
        lines('GET /v1/agents/a/target HTTP/1.1', 'Host: x', 'Content-Length: 1'),
        400,
      ],
      ['Content-Encoding', post('Content-Length: 2', 'Content-Encoding: gzip'), 415],
      ['two Content-Types', post('Content-Length: 2', 'Content-Type: a', 'Content-Type: b'), 400],
      [
        'two Authorizations',
        post('Content-Length: 2', 'Authorization: a', 'Authorization: b'),
        400,
      ],
      ['two request ids', post('Content-Length: 2', 'X-Request-Id: a', 'X-Request-Id: b'), 400],
      ['obs-fold', post('Content-Length: 2', 'X-A: a', ' b'), 400],
      ['obs-fold with a tab', post('Content-Length: 2', 'X-A: a', '\tb'), 400],
      ['bare LF', post('Content-Length: 2\nX-A: a'), 400],
      ['bare CR', post('Content-Length: 2\rX-A: a'), 400],
      ['NUL', post('Content-Length: 2', 'X-A: a\u0000'), 400],
      ['DEL', post('Content-Length: 2', 'X-A: a\u007f'), 400],
      ['obs-text', post('Content-Length: 2', 'X-A: \u00e9'), 400],
      ['space in a name', post('Content-Length: 2', 'X A: a'), 400],
      ['space before the colon', post('Content-Length : 2'), 400],
      ['empty name', post('Content-Length: 2', ': a'), 400],
      ['no colon', post('Content-Length: 2', 'X-A'), 400],
      ['empty request line', lines('', 'Host: x'), 400],
      ['garbage', '\u0016\u0003\u0001', 400],
    ];
    for (const [label, text, status] of cases) {
      const r = refusal(text);
      assert.equal(r.status, status, `${label}: ${r.error.message}`);
      assert.ok(r.error.message.length > 0, label);
    }
    // A refusal after the request line names it, for the log line.
    const named = refusal(post('Transfer-Encoding: chunked'));
    assert.deepEqual([named.method, named.url], ['POST', '/v1/checkin']);
  });

  it('takes the JSON types agent-http.ts takes', () => {
    for (const t of ['application/json', 'Application/JSON', 'application/json; charset=utf-8']) {
      assert.equal(isJsonType(t), true, t);
    }
    for (const t of [undefined, 'text/plain', 'application/jsonx', 'application/json-patch+json']) {
      assert.equal(isJsonType(t), false, String(t));
    }
  });

  it('finds a bad byte before the head is complete', () => {
    assert.equal(badPartialHead(Buffer.from('POST /v1/checkin HTTP/1.1\r\nHost: x\r')), false);
    assert.equal(badPartialHead(Buffer.from('POST /v1/checkin HTTP/1.1\nHost')), true);
    assert.equal(badPartialHead(Buffer.from('POST /v1/checkin HTTP/1.1\r\nX: \u0000')), true);
    assert.equal(badPartialHead(Buffer.from('POST /v1/checkin HTTP/1.1\rX')), true);
    assert.ok(MAX_HEAD === 8192);
  });

  it('never throws, and reads only heads of plain CRLF-separated ASCII lines (fast-check)', () => {
    const piece = fc.constantFrom(
      'POST /v1/checkin HTTP/1.1',
      'GET /v1/agents/a/target HTTP/1.1',
      'Host: x',
      'Content-Length: 5',
      'Content-Length: 0',
      'Content-Type: application/json',
      'Transfer-Encoding: chunked',
      ' folded',
      'X: \u0000',
      'X: a\nb',
      'Connection: close',
    );
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.array(piece, { maxLength: 8 }).map((l) => l.join('\r\n')),
    );
    fc.assert(
      fc.property(text, fc.integer({ min: 0, max: LIMIT }), (t, limit) => {
        const parsed = parseHead(t, limit);
        if (parsed.refused) {
          assert.ok(parsed.status >= 400 && parsed.status < 500);
          return;
        }
        // What was read: a plain head, one Host, a length within the limit.
        assert.ok(t.split('\r\n').every((l) => /^[\t\x20-\x7e]*$/.test(l)));
        assert.equal(t.split('\r\n').filter((l) => /^host:/i.test(l)).length, 1);
        assert.ok(parsed.contentLength <= limit);
        assert.equal(/^transfer-encoding:/im.test(t), false);
        if (parsed.method === 'GET') assert.equal(parsed.contentLength, 0);
      }),
      { numRuns: 2000 },
    );
  });
});
