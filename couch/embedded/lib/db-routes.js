'use strict';
// Database and single-document endpoints, implemented here rather than by
// express-pouchdb because its versions differ from CouchDB 3 in ways clients
// notice (see the WHY notes below). Everything else under /{db}/ falls
// through to express-pouchdb.

const crypto = require('crypto');
const { HttpError, sendJson, sendError, notFound, badRequest, queryBool, queryJson, queryInt } =
  require('./http');
const { readJson, readJsonObject, isPlainObject } = require('./body');
const { documentId, checkDocId } = require('./resolve');
const { validateDesignDoc } = require('./mapreduce');
const { handleChanges } = require('./changes');
const { openRevisions, jsonDoc } = require('./open-revs');
const { accepts, openRevsMultipart } = require('./multipart');
const { bulkGet } = require('./bulk-get');

const START_TIME = '0';
const SECURITY_DOC = '_local/_security';
// CouchDB 3 makes new databases admin-only; its _security shows it so.
const DEFAULT_SECURITY = { members: { roles: ['_admin'] }, admins: { roles: ['_admin'] } };
const GET_FLAGS = ['revs', 'revs_info', 'conflicts', 'deleted_conflicts', 'attachments',
  'att_encoding_info', 'latest', 'local_seq'];

const quoteRev = (rev) => '"' + rev + '"';

function location(req, docId) {
  const db = encodeURIComponent(req.couch.db);
  const tail = docId === undefined ? '' : '/' + encodeURIComponent(docId)
    .replace(/^(_design|_local)%2F/, '$1/');
  return req.protocol + '://' + req.headers.host + '/' + db + tail;
}

// --- database level -------------------------------------------------------

async function createDatabase(req, res, store) {
  await store.create(req.couch.db);
  sendJson(res, 201, { ok: true }, { Location: location(req) });
}

async function databaseInfo(req, res, store) {
  const db = await store.open(req.couch.db);
  const info = await db.info();
  sendJson(res, 200, {
    db_name: req.couch.db,
    update_seq: info.update_seq,
    purge_seq: 0,
    doc_count: info.doc_count,
    compact_running: false,
    instance_start_time: START_TIME,
    props: {},
    adapter: info.adapter,
  });
}

async function deleteDatabase(req, res, store) {
  if (req.query.rev !== undefined) {
    throw badRequest('You tried to DELETE a database with a ?rev= parameter. ' +
      'Did you mean to DELETE a document instead?');
  }
  await store.destroy(req.couch.db);
  sendJson(res, 200, { ok: true });
}

async function databaseLevel(req, res, store) {
  switch (req.method) {
    case 'PUT':
      return createDatabase(req, res, store);
    case 'GET':
    case 'HEAD':
      return databaseInfo(req, res, store);
    case 'DELETE':
      return deleteDatabase(req, res, store);
    case 'POST': {
      const db = await store.open(req.couch.db);
      const doc = await readJsonObject(req, res, 'Document');
      if (doc._id === undefined) {
        doc._id = crypto.randomUUID().replace(/-/g, '');
      }
      return saveDocument(req, res, db, doc);
    }
    default:
      throw methodNotAllowed(res, 'DELETE,GET,HEAD,POST,PUT');
  }
}

function methodNotAllowed(res, allowed) {
  res.setHeader('Allow', allowed);
  return new HttpError(405, 'method_not_allowed', 'Only ' + allowed + ' allowed');
}

// --- _security ------------------------------------------------------------
// Stored as a local (never replicated) document, like pouchdb-security did.
// Access control itself is the server admin check: only the admin gets in.

async function readSecurity(db) {
  try {
    const doc = await db.get(SECURITY_DOC);
    delete doc._id;
    delete doc._rev;
    return doc;
  } catch (err) {
    if (err.status === 404) {
      return DEFAULT_SECURITY;
    }
    throw err;
  }
}

async function writeSecurity(db, security) {
  for (const part of ['members', 'admins']) {
    const value = security[part];
    if (value !== undefined && !isPlainObject(value)) {
      throw badRequest(part + ' must be a JSON object');
    }
    for (const list of ['names', 'roles']) {
      if (value && value[list] !== undefined && !Array.isArray(value[list])) {
        throw badRequest(part + '.' + list + ' must be a JSON list of strings');
      }
    }
  }
  let rev;
  try {
    rev = (await db.get(SECURITY_DOC))._rev;
  } catch (err) {
    if (err.status !== 404) {
      throw err;
    }
  }
  await db.put(Object.assign({}, security, { _id: SECURITY_DOC, _rev: rev }));
}

async function security(req, res, store) {
  const db = await store.open(req.couch.db);
  if (req.method === 'GET' || req.method === 'HEAD') {
    return sendJson(res, 200, await readSecurity(db));
  }
  if (req.method === 'PUT') {
    await writeSecurity(db, await readJsonObject(req, res));
    return sendJson(res, 200, { ok: true });
  }
  throw methodNotAllowed(res, 'GET,PUT');
}

// --- documents ------------------------------------------------------------

function getOptions(query) {
  const opts = {};
  for (const flag of GET_FLAGS) {
    if (queryBool(query[flag], false)) {
      opts[flag] = true;
    }
  }
  if (queryBool(query.meta, false)) {
    Object.assign(opts, { conflicts: true, deleted_conflicts: true, revs_info: true });
  }
  if (query.rev !== undefined) {
    opts.rev = query.rev;
  }
  return opts;
}

// GET /{db}/{id}?open_revs=all|[revs]: multipart/mixed for clients that take
// it (Apache CouchDB's replicator; CouchDB reads a missing Accept as */*),
// otherwise CouchDB's JSON list of {"ok": doc} / {"missing": rev}.
async function getOpenRevs(req, res, db, docId) {
  const { query } = req;
  const requested = query.open_revs === 'all' ? 'all' : queryJson(query.open_revs, 'open_revs');
  const attsSince = queryJson(query.atts_since, 'atts_since');
  const multipart = accepts(req, 'multipart/mixed');
  const results = await openRevisions(db, docId, requested, {
    latest: queryBool(query.latest, false),
    revs: queryBool(query.revs, false),
    // atts_since implies attachments; multipart always sends them as parts
    attachments: multipart || queryBool(query.attachments, false) || attsSince !== undefined,
    attsSince: attsSince === undefined ? null : attsSince,
  });
  if (results.length === 0) {
    throw notFound('missing'); // open_revs=all of a document that never existed
  }
  if (!multipart) {
    return sendJson(res, 200, results.map((result) =>
      (result.ok ? { ok: jsonDoc(result.ok) } : { missing: result.missing })));
  }
  const { contentType, body } = openRevsMultipart(results);
  res.statusCode = 200;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', body.length);
  return res.end(req.method === 'HEAD' ? undefined : body);
}

// WHY: express-pouchdb's GET answered with an Express body-hash ETag; CouchDB
// (and clients doing conditional requests) use the quoted revision.
async function getDocument(req, res, db, docId) {
  if (req.query.open_revs !== undefined) {
    return getOpenRevs(req, res, db, docId);
  }
  const doc = await db.get(docId, getOptions(req.query));
  const headers = {};
  if (!Array.isArray(doc) && doc._rev) {
    headers.ETag = quoteRev(doc._rev);
    if (req.headers['if-none-match'] === headers.ETag) {
      res.setHeader('ETag', headers.ETag);
      res.statusCode = 304;
      return res.end();
    }
  }
  return sendJson(res, 200, doc, headers);
}

// The revision a write refers to may come from the body, ?rev= or If-Match;
// CouchDB rejects disagreeing values.
function requestedRev(req, doc) {
  const candidates = [doc && doc._rev, req.query.rev,
    req.headers['if-match'] && req.headers['if-match'].replace(/^"|"$/g, '')]
    .filter((rev) => rev !== undefined && rev !== null && rev !== '');
  if (new Set(candidates).size > 1) {
    throw badRequest('Document rev from request body and query string have different values');
  }
  return candidates[0];
}

async function saveDocument(req, res, db, doc) {
  checkDocId(doc._id);
  const rev = requestedRev(req, doc);
  if (rev) {
    doc._rev = rev;
  }
  if (doc._id.startsWith('_design/')) {
    validateDesignDoc(doc);
  }
  let result;
  if (queryBool(req.query.new_edits, true) === false) {
    const [outcome] = await db.bulkDocs([doc], { new_edits: false });
    if (outcome && outcome.error) {
      throw outcome;
    }
    result = { id: doc._id, rev: doc._rev };
  } else {
    result = await db.put(doc);
  }
  const status = req.query.batch === 'ok' ? 202 : 201;
  sendJson(res, status, { ok: true, id: result.id, rev: result.rev }, {
    ETag: quoteRev(result.rev),
    Location: location(req, result.id),
  });
}

// WHY: express-pouchdb let the body's _id win over the URL, so a client that
// PUTs /db/_design/x with a body lacking (or differing in) _id stored a plain
// document. CouchDB always uses the URL.
async function putDocument(req, res, db, docId) {
  const doc = await readJsonObject(req, res, 'Document');
  doc._id = docId;
  return saveDocument(req, res, db, doc);
}

// WHY: express-pouchdb deleted the current revision when no rev was given;
// CouchDB requires one and answers 409 without it.
async function deleteDocument(req, res, db, docId) {
  const rev = requestedRev(req, null);
  if (!rev) {
    await db.get(docId); // 404 for a missing document, as CouchDB
    throw new HttpError(409, 'conflict', 'Document update conflict.');
  }
  const result = await db.remove(docId, rev);
  sendJson(res, 200, { ok: true, id: result.id, rev: result.rev },
    { ETag: quoteRev(result.rev) });
}

async function documentLevel(req, res, store, docId) {
  const db = await store.open(req.couch.db);
  switch (req.method) {
    case 'GET':
    case 'HEAD':
      return getDocument(req, res, db, docId);
    case 'PUT':
      return putDocument(req, res, db, docId);
    case 'DELETE':
      return deleteDocument(req, res, db, docId);
    default:
      throw new Error('unreachable');
  }
}

// --- _design_docs (not in express-pouchdb) --------------------------------

async function designDocs(req, res, store) {
  const db = await store.open(req.couch.db);
  const body = req.method === 'POST' ? (await readJson(req, res)) || {} : {};
  const descending = queryBool(req.query.descending, false);
  const opts = {
    startkey: descending ? '_design0' : '_design/',
    endkey: descending ? '_design/' : '_design0',
    inclusive_end: false,
    descending,
    include_docs: queryBool(req.query.include_docs, false),
    limit: queryInt(req.query.limit, 'limit'),
    skip: queryInt(req.query.skip, 'skip'),
  };
  const keys = body.keys || queryJson(req.query.keys, 'keys');
  if (keys !== undefined) {
    opts.keys = keys;
    delete opts.startkey;
    delete opts.endkey;
  }
  sendJson(res, 200, await db.allDocs(opts));
}

// --- views: CouchDB 3 parameter names PouchDB does not know ----------------

function translateViewQuery(query) {
  if (query.update === 'false') {
    query.stale = 'ok';
  } else if (query.update === 'lazy') {
    query.stale = 'update_after';
  }
  delete query.update;
}

// --- dispatch -------------------------------------------------------------

const DOC_METHODS = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);

function databaseRoutes(store, feeds) {
  return function (req, res, next) {
    if (!req.couch) {
      return next();
    }
    const rest = req.couch.rest;
    const head = rest[0];
    let work;
    if (rest.length === 0 || (rest.length === 1 && head === '')) {
      work = databaseLevel(req, res, store);
    } else if (rest.length === 1 && head === '_security') {
      work = security(req, res, store);
    } else if (rest.length === 1 && head === '_changes') {
      work = store.open(req.couch.db).then((db) => handleChanges(req, res, db, feeds));
    } else if (rest.length === 1 && head === '_design_docs') {
      work = designDocs(req, res, store);
    } else if (rest.length === 1 && head === '_bulk_get') {
      work = bulkGet(req, res, store);
    } else {
      const docId = documentId(rest);
      // multipart/related PUTs (doc + attachments) stay with express-pouchdb
      const multipart = /^multipart\//.test(req.headers['content-type'] || '');
      if (docId !== null && DOC_METHODS.has(req.method) && !(multipart && req.method === 'PUT')) {
        work = documentLevel(req, res, store, docId);
      } else {
        if (head === '_design' && rest[2] === '_view') {
          translateViewQuery(req.query);
        }
        return next(); // express-pouchdb
      }
    }
    return work.catch((err) => sendError(res, err));
  };
}

module.exports = { databaseRoutes };
