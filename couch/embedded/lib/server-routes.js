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
  let list = store.list();
  if (descending) {
    list.reverse();
  }
  const before = (a, b) => (descending ? a > b : a < b);
  list = list.filter((name) => {
    if (start !== undefined && before(name, start)) {
      return false;
    }
    if (end !== undefined && (before(end, name) || (!inclusiveEnd && name === end))) {
      return false;
    }
    return true;
  });
  const skip = queryInt(query.skip, 'skip') || 0;
  const limit = queryInt(query.limit, 'limit');
  return list.slice(skip, limit === undefined ? undefined : skip + limit);
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
