'use strict';
// Server-level endpoints: /, /_up, /_all_dbs, /_uuids, /_replicate,
// /_active_tasks.

const crypto = require('crypto');
const { sendJson, route, queryBool, queryInt, queryJson, HttpError } = require('./http');

const VERSION = '3.3.3'; // the CouchDB API level this server imitates
const MAX_UUIDS = 1000;

function welcome(serverUuid) {
  return {
    couchdb: 'Welcome',
    version: VERSION,
    git_sha: 'embedded',
    uuid: serverUuid,
    features: [],
    vendor: {
      name: 'kazoo-connectivity embedded CouchDB (express-pouchdb 4.2.0, PouchDB 7.3.1)',
    },
  };
}

// WHY: express-pouchdb ignored every _all_dbs parameter.
function allDbs(store, query) {
  const descending = queryBool(query.descending, false);
  const start = queryJson(query.startkey !== undefined ? query.startkey : query.start_key,
    'startkey');
  const end = queryJson(query.endkey !== undefined ? query.endkey : query.end_key, 'endkey');
  const inclusiveEnd = queryBool(query.inclusive_end, true);
  const skip = queryInt(query.skip, 'skip') || 0;
  const limit = queryInt(query.limit, 'limit');
  const sorted = store.sortedNames();
  // Binary search rather than a scan: a range is read on every trunk write.
  const first = (key) => firstIndex(sorted, (name) => name >= key);
  const after = (key) => firstIndex(sorted, (name) => name > key);
  let list;
  if (!descending) {
    const lo = start === undefined ? 0 : first(start);
    const hi = end === undefined ? sorted.length : inclusiveEnd ? after(end) : first(end);
    list = sorted.slice(lo, Math.max(lo, hi));
  } else {
    const hi = start === undefined ? sorted.length : after(start);
    const lo = end === undefined ? 0 : inclusiveEnd ? first(end) : after(end);
    list = sorted.slice(lo, Math.max(lo, hi)).reverse();
  }
  return list.slice(skip, limit === undefined ? undefined : skip + limit);
}

// The first index whose name satisfies `test`, which is false then true along `sorted`.
function firstIndex(sorted, test) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (test(sorted[mid])) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

function uuids(query) {
  const count = queryInt(query.count, 'count') || 1;
  if (count > MAX_UUIDS) {
    throw new HttpError(400, 'bad_request', 'count parameter too large');
  }
  return Array.from({ length: count }, () => crypto.randomUUID().replace(/-/g, ''));
}

function serverRoutes(app, { store, replicator, serverUuid }) {
  app.get('/', (req, res) => sendJson(res, 200, welcome(serverUuid)));
  // WHY: express-pouchdb has no /_up; the launcher and health checks poll it.
  app.get('/_up', (req, res) => sendJson(res, 200, { status: 'ok' }));
  app.get('/_all_dbs', route((req, res) => sendJson(res, 200, allDbs(store, req.query))));
  app.get('/_uuids', route((req, res) => sendJson(res, 200, { uuids: uuids(req.query) },
    { 'Cache-Control': 'must-revalidate, no-cache', Pragma: 'no-cache' })));
  app.post('/_replicate', route((req, res) => replicator.handle(req, res)));
  app.get('/_active_tasks', (req, res) => sendJson(res, 200, []));
}

module.exports = { serverRoutes };
