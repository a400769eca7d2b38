'use strict';
// One place that writes JSON responses and turns errors into CouchDB's
// {"error": ..., "reason": ...} shape.

class HttpError extends Error {
  constructor(status, error, reason) {
    super(reason);
    this.status = status;
    this.error = error;
    this.reason = reason;
  }
}

const notFound = (reason) => new HttpError(404, 'not_found', reason || 'missing');
const badRequest = (reason) => new HttpError(400, 'bad_request', reason);
const DB_MISSING = 'Database does not exist.';

// WHY always application/json: express-pouchdb answers text/plain unless the
// request's Accept header mentions json (a CouchDB 1.x habit); aiohttp's
// resp.json() then raises ContentTypeError. CouchDB 3 always says JSON.
function sendJson(res, status, body, headers) {
  const payload = Buffer.from(JSON.stringify(body) + '\n', 'utf8');
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'must-revalidate');
  res.setHeader('Content-Length', payload.length);
  for (const [name, value] of Object.entries(headers || {})) {
    res.setHeader(name, value);
  }
  res.end(res.req && res.req.method === 'HEAD' ? undefined : payload);
}

// Reasons PouchDB words differently from CouchDB 3.
const COUCH_REASONS = {
  conflict: 'Document update conflict.',
};

function toCouchError(err, fallbackStatus) {
  if (err instanceof HttpError) {
    return { status: err.status, error: err.error, reason: err.reason };
  }
  const status = Number.isInteger(err && err.status) ? err.status : fallbackStatus || 500;
  // PouchDB errors carry `error: true` and the CouchDB error name in `name`.
  let name = err && (typeof err.error === 'string' ? err.error : err.name);
  if (name === 'invalid_value' && status === 500) {
    name = 'builtin_reduce_error'; // PouchDB's name for CouchDB's built-in reduce failure
  }
  if (!name || name === 'Error' || name === 'TypeError' || name === 'RangeError') {
    name = status >= 500 ? 'unknown_error' : 'bad_request';
  }
  const reason = COUCH_REASONS[name] ||
    (err && typeof err.reason === 'string' && err.reason) ||
    (err && err.message) || String(err);
  return { status, error: name, reason };
}

function sendError(res, err, fallbackStatus) {
  const couch = toCouchError(err, fallbackStatus);
  if (res.headersSent) {
    // A streaming response (changes feed) already started: all we can do is
    // end it so the client is not left waiting.
    res.end();
    return;
  }
  sendJson(res, couch.status, { error: couch.error, reason: couch.reason });
}

// Wraps an async route handler so a rejected promise becomes an error
// response instead of an unhandled rejection.
function route(handler) {
  return function (req, res, next) {
    Promise.resolve()
      .then(() => handler(req, res, next))
      .catch((err) => sendError(res, err));
  };
}

// CouchDB query parameters arrive as strings; JSON-typed ones (keys,
// booleans, numbers) are JSON-encoded.
function queryBool(value, fallback) {
  if (value === undefined) {
    return fallback;
  }
  if (value === 'true' || value === true) {
    return true;
  }
  if (value === 'false' || value === false) {
    return false;
  }
  throw badRequest('Invalid boolean parameter: ' + JSON.stringify(value));
}

function queryInt(value, name) {
  if (value === undefined) {
    return undefined;
  }
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new HttpError(400, 'query_parse_error',
      'Invalid value for integer: "' + name + '"');
  }
  return n;
}

function queryJson(value, name) {
  if (value === undefined) {
    return undefined;
  }
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new HttpError(400, 'bad_request', 'Invalid JSON in parameter ' + name);
  }
}

module.exports = {
  HttpError,
  notFound,
  badRequest,
  DB_MISSING,
  sendJson,
  sendError,
  toCouchError,
  route,
  queryBool,
  queryInt,
  queryJson,
};
