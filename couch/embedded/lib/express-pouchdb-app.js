'use strict';
// The express-pouchdb part of the server: the endpoints we did not rewrite
// (_all_docs, _bulk_docs, _revs_diff, attachments, views, _find,
// _index, _compact, _view_cleanup, COPY, multipart document PUTs).

const expressPouchDB = require('express-pouchdb');
// express-pouchdb's routes call its shared helpers through this module
// object, so replacing a property here changes every route's behaviour.
const epUtils = require('express-pouchdb/lib/utils');
const { sendJson, sendError } = require('./http');
const { illegalName } = require('./resolve');

// Only the parts we use. Left out on purpose: authentication, authorization,
// security, session and users (replaced by auth.js: one admin, admins only),
// compression (its gzip buffering starved continuous _changes), changes,
// bulk-get (replaced by bulk-get.js), replicate, all-dbs, db (partly), uuids,
// root (replaced), config, fauxton, vhosts, rewrite, show/list/update and
// validation (unused by the service).
const PARTS = [
  'routes/db',
  'routes/all-docs',
  'routes/attachments',
  'routes/bulk-docs',
  'routes/compact',
  'routes/ddoc-info',
  'routes/documents',
  'routes/find',
  'routes/revs-diff',
  'routes/view-cleanup',
  'routes/views',
];

function patchHelpers(store) {
  // WHY: its sendJSON answers text/plain unless Accept mentions json.
  epUtils.sendJSON = (res, status, body) => sendJson(res, status, body);
  epUtils.setJsonOrPlaintext = (res) => res.setHeader('Content-Type', 'application/json');
  // WHY: its sendError renamed every plain Error to "bad_request".
  epUtils.sendError = (res, err, baseStatus) => sendError(res, err, baseStatus);
  // WHY: its lookup sanitised "/" out of names and listed every database on
  // every request. resolve.js already found the real name; open it through
  // our registry. Handles are deliberately NOT passed through express-pouchdb's
  // dbWrapper: one of its wrappers makes info().db_name return the decoded
  // name, and PouchDB derives view-index database names from it, which put
  // "/" back into leveldb paths. PouchDB 7 already tolerates the extra opts
  // argument the other wrappers existed for.
  epUtils.setDBOnReq = (dbName, dbWrapper, req, res, next) => {
    if (!req.couch) {
      return illegalName(res, String(dbName));
    }
    return store.open(req.couch.db).then((db) => {
      req.db = db;
      next();
    }, (err) => sendError(res, err));
  };
}

async function createExpressPouchApp(store) {
  patchHelpers(store);
  const app = expressPouchDB({ mode: 'custom', overrideMode: { include: PARTS } });
  // WHY: Express's default ETag is a hash of the body, which clients take for
  // a document revision. Only real revisions are sent as ETags.
  app.set('etag', false);
  app.disable('x-powered-by');
  await app.setPouchDB(store.LocalDB);
  return app;
}

module.exports = { createExpressPouchApp };
