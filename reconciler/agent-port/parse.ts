// The agent port's HTTP/1.1 request head, read strictly (pure: text in, a value out). A head is
// either one of the few shapes agents send, judged here completely, or a refusal: the port
// never hands a request to another parser, so whatever is not plainly one request of known
// length is refused (and its connection closed by the caller), never guessed at.

import { FleetwaveError } from '../../core/errors.ts';

/** The largest request head (request line and headers, with the blank line) read: past it 431. */
export const MAX_HEAD = 8 * 1024;

/** POST /v1/checkin, POST /v1/enroll, GET /v1/agents/{id}/target. */
export type AgentRoute = 'checkin' | 'enroll' | 'target';

/** A request whose head was read completely and unambiguously. */
export interface Head {
  refused: false;
  method: 'GET' | 'POST';
  /** The request target as sent (origin-form). */
  url: string;
  /**
   * The route it names; or an `error` it is answered with (404 for another path, 400 for a
   * query or id this port does not take), after which the connection stays usable.
   */
  route: AgentRoute | undefined;
  error: FleetwaveError | undefined;
  /** ?wait= of a check-in, as sent (agent-api.ts waitOf judges it); undefined when absent. */
  wait: string | undefined;
  /** The id of GET /v1/agents/{id}/target. */
  agentId: string;
  /** Body bytes that follow the head (0 when there is no Content-Length). */
  contentLength: number;
  contentType: string | undefined;
  authorization: string | undefined;
  /** Every If-None-Match line, joined with ', ' as node:http joins them. */
  ifNoneMatch: string | undefined;
  requestId: string | undefined;
  /** Connection: close. */
  close: boolean;
}

/** A request refused: its answer's status and error; the connection closes after it. */
export interface Refusal {
  refused: true;
  status: number;
  error: Error;
  /** What the log line shows, when the request line could be read. */
  method: string | undefined;
  url: string | undefined;
}

/** A header name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * What no head may hold: its lines are visible ASCII, spaces and tabs only (no NUL, DEL,
 * obs-text), and a CR or LF only as the CRLF that ends a line.
 */
const BAD_BYTE = /[^\t\x20-\x7e\r\n]|\r(?!\n)|(?<!\r)\n/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ ]+) (HTTP\/[0-9.]+)$/;
const ORIGIN_FORM = /^\/[\x21-\x7e]*$/;
const CONTENT_LENGTH = /^\d{1,15}$/;
const TARGET_PATH = /^\/v1\/agents\/([^/]*)\/target$/;
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}$/;
/** ?wait=VALUE and nothing else; the value is waitOf's to judge (no decoding needed). */
const WAIT_QUERY = /^wait=([^&%+]*)$/;
const JSON_TYPE = /^application\/json[ \t]*(?:;|$)/i;

/** An error with the HTTP status errors.ts's errorAnswer gives it (code REQUEST_INVALID). */
function statusError(message: string, statusCode: number): Error {
  return Object.assign(new Error(message), { statusCode });
}

const invalid = (message: string): FleetwaveError => new FleetwaveError('REQUEST_INVALID', message);

/** The body of this content type is JSON (as agent-http.ts and fastify's parser take it). */
export function isJsonType(type: string | undefined): boolean {
  return type !== undefined && JSON_TYPE.test(type);
}

/** The answer to a head larger than MAX_HEAD (the words errors.ts's clientError uses). */
export function headTooLarge(): Refusal {
  return {
    refused: true,
    status: 431,
    error: new FleetwaveError(
      'REQUEST_TOO_LARGE',
      'the request head (URL and headers) is too large',
    ),
    method: undefined,
    url: undefined,
  };
}

/**
 * Whether bytes that hold no complete head yet are already not one: an LF without its CR, or a
 * byte no head may hold, so the refusal comes now rather than at the request timeout.
 */
export function badPartialHead(bytes: Buffer, end = Math.min(bytes.length, MAX_HEAD)): boolean {
  for (let i = 0; i < end; i++) {
    const b = bytes[i]!;
    if (b === 0x0a) {
      if (i === 0 || bytes[i - 1] !== 0x0d) return true;
    } else if (b === 0x0d) {
      if (i + 1 < end && bytes[i + 1] !== 0x0a) return true;
    } else if ((b < 0x20 && b !== 0x09) || b >= 0x7f) {
      return true;
    }
  }
  return false;
}

const BAD_BYTES = 'the request head holds a bare CR or LF or a control character';

/** The answer to a head that badPartialHead finds bad. */
export function badHead(): Refusal {
  return {
    refused: true,
    status: 400,
    error: invalid(BAD_BYTES),
    method: undefined,
    url: undefined,
  };
}

/** text[from..to] without the optional white space (spaces, tabs) around a header value. */
function withoutOws(text: string, from: number, to: number): string {
  while (from < to && (text.charCodeAt(from) === 32 || text.charCodeAt(from) === 9)) from++;
  while (to > from && (text.charCodeAt(to - 1) === 32 || text.charCodeAt(to - 1) === 9)) to--;
  return text.slice(from, to);
}

function refusal(
  status: number,
  error: Error,
  method: string | undefined,
  url: string | undefined,
): Refusal {
  return { refused: true, status, error, method, url };
}

/**
 * Reads a request head: `text` is its bytes as latin1, up to but not including the CRLF CRLF
 * that ends it. `bodyLimit` is --body-limit.
 */
export function parseHead(text: string, bodyLimit: number): Head | Refusal {
  if (BAD_BYTE.test(text)) return refusal(400, invalid(BAD_BYTES), undefined, undefined);
  let eol = text.indexOf('\r\n');
  const start = REQUEST_LINE.exec(eol < 0 ? text : text.slice(0, eol));
  if (!start) {
    return refusal(
      400,
      invalid('the request line is not METHOD TARGET HTTP/1.1'),
      undefined,
      undefined,
    );
  }
  const method = start[1]!;
  const url = start[2]!;
  // What the log line of a refusal shows, now that the request line is read.
  const refuse = (status: number, error: Error): Refusal => refusal(status, error, method, url);
  const repeated = (name: string): Refusal =>
    refuse(400, invalid(`the ${name} header is repeated`));
  if (start[3] !== 'HTTP/1.1') {
    return refuse(400, invalid(`this port speaks HTTP/1.1 only, not ${start[3]}`));
  }
  if (!ORIGIN_FORM.test(url)) {
    return refuse(400, invalid('the request target must be a path (origin-form)'));
  }
  if (method !== 'GET' && method !== 'POST') {
    return refuse(400, invalid(`the agent port answers only GET and POST, not ${method}`));
  }
  let hosts = 0;
  let contentLength: number | undefined;
  let contentType: string | undefined;
  let authorization: string | undefined;
  let ifNoneMatch: string | undefined;
  let requestId: string | undefined;
  let close = false;
  // The header lines, one after the request line, each up to its CRLF (the last to the end).
  while (eol >= 0) {
    const from = eol + 2;
    eol = text.indexOf('\r\n', from);
    const end = eol < 0 ? text.length : eol;
    const first = text.charCodeAt(from);
    if (first === 32 || first === 9) {
      return refuse(400, invalid('a header line is folded (obs-fold)'));
    }
    const colon = text.indexOf(':', from);
    const name = colon > from && colon < end ? text.slice(from, colon) : '';
    if (name === '' || !TOKEN.test(name)) {
      return refuse(400, invalid('a header line is not NAME: VALUE'));
    }
    const value = withoutOws(text, colon + 1, end);
    switch (name.toLowerCase()) {
      case 'host':
        if (++hosts > 1) return refuse(400, invalid('the Host header is repeated'));
        break;
      case 'content-length':
        if (contentLength !== undefined) return repeated(name);
        if (!CONTENT_LENGTH.test(value)) {
          return refuse(400, invalid('Content-Length is not a number of bytes'));
        }
        contentLength = Number(value);
        break;
      case 'content-type':
        if (contentType !== undefined) return repeated(name);
        contentType = value;
        break;
      case 'authorization':
        if (authorization !== undefined) return repeated(name);
        authorization = value;
        break;
      case 'if-none-match':
        ifNoneMatch = ifNoneMatch === undefined ? value : `${ifNoneMatch}, ${value}`;
        break;
      case 'x-request-id':
        if (requestId !== undefined) return repeated(name);
        // Empty: a new id, as http-server.ts requestIdOf does.
        if (value !== '') requestId = value;
        break;
      case 'connection':
        for (const part of value.toLowerCase().split(',')) {
          const token = part.trim();
          if (token === 'close') close = true;
          else if (token !== 'keep-alive' && token !== '') {
            return refuse(400, invalid(`Connection: ${token} is not taken on this port`));
          }
        }
        break;
      case 'transfer-encoding':
        return refuse(
          400,
          invalid('Transfer-Encoding is not taken on this port; send Content-Length'),
        );
      case 'expect':
        return refuse(417, invalid('Expect is not taken on this port; send the body at once'));
      case 'upgrade':
        return refuse(400, invalid('Upgrade is not taken on this port'));
      case 'content-encoding':
        // The words of server.ts's onRequest hook.
        return refuse(
          415,
          new FleetwaveError(
            'REQUEST_ENCODING_UNSUPPORTED',
            `Content-Encoding ${JSON.stringify(value.slice(0, 40))} is not supported; send the body uncompressed`,
          ),
        );
    }
  }
  if (hosts === 0) {
    // The words of http-server.ts.
    return refuse(400, invalid('an HTTP/1.1 request must have a Host header'));
  }
  if (method === 'POST') {
    if (contentLength === undefined) {
      return refuse(411, invalid('a POST on this port must have a Content-Length'));
    }
    if (contentLength > bodyLimit) {
      // fastify's words (FST_ERR_CTP_BODY_TOO_LARGE), as the main port answers.
      return refuse(413, statusError('Request body is too large', 413));
    }
  } else if (contentLength !== undefined && contentLength !== 0) {
    return refuse(400, invalid('a GET request has no body'));
  }
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? undefined : url.slice(q + 1);
  let route: AgentRoute | undefined;
  let error: FleetwaveError | undefined;
  let wait: string | undefined;
  let agentId = '';
  const target = method === 'GET' ? TARGET_PATH.exec(path) : null;
  if (method === 'POST' && path === '/v1/checkin') {
    if (query !== undefined) {
      const m = WAIT_QUERY.exec(query);
      if (m) wait = m[1]!;
      else error = invalid('this port takes no query parameter but wait=SECONDS');
    }
    route = 'checkin';
  } else if (method === 'POST' && path === '/v1/enroll') {
    route = 'enroll';
    if (query !== undefined) error = invalid('POST /v1/enroll takes no query');
  } else if (target) {
    route = 'target';
    agentId = target[1]!;
    if (query !== undefined) error = invalid('GET /v1/agents/{id}/target takes no query');
    else if (!AGENT_ID.test(agentId)) {
      error = invalid('this port takes agent ids as they are: letters, digits and ._:@- only');
    }
  } else {
    // The words of server.ts's not-found handler.
    error = new FleetwaveError('NOT_FOUND', `no route ${method} ${path}`);
  }
  return {
    refused: false,
    method,
    url,
    route: error === undefined ? route : undefined,
    error,
    wait,
    agentId,
    contentLength: contentLength ?? 0,
    contentType,
    authorization,
    ifNoneMatch,
    requestId,
    close,
  };
}
