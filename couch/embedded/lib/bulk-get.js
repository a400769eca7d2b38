'use strict';
// POST /{db}/_bulk_get, CouchDB 3 style.
//
// WHY our own: Apache CouchDB's replicator (use_bulk_get, on by default)
// fetches documents without attachments this way, with the flags in the
// query string (?latest=true&revs=true&attachments=false) and the answer
// zipped one-to-one with its request list. express-pouchdb's version read
// "false" as true, answered grouped by id in completion order, dropped
// duplicate revisions (so the lists no longer lined up), and reported a
// missing revision as {"missing": rev} / {"error": name} instead of
// {"error": {"id", "rev", "error", "reason"}}.

const { HttpError, badRequest, queryBool, sendJson, toCouchError } = require('./http');
const { readJsonObject, isPlainObject } = require('./body');
const { checkDocId } = require('./resolve');
const { openRevisions, jsonDoc, isRev } = require('./open-revs');
const { accepts, bulkGetMultipart } = require('./multipart');

// Per-document parameters only: CouchDB refuses them in the query string.
const REFUSED_QUERY = ['open_revs', 'new_edits', 'w', 'rev', 'atts_since'];

function queryOptions(query) {
  for (const key of REFUSED_QUERY) {
    if (query[key] !== undefined) {
      throw badRequest('"' + key + '" query parameter is not acceptable');
    }
  }
  return {
    revs: queryBool(query.revs, false),
    latest: queryBool(query.latest, false),
    attachments: queryBool(query.attachments, false),
  };
}

const errorEntry = (id, rev, error, reason) => ({ error: { id, rev, error, reason } });

// Why a request cannot be answered, worded and attributed as by CouchDB
// (the error's rev names the value at fault), or null.
function requestError(request) {
  // CouchDB matches a non-empty object here; {} gets the same answer.
  if (!isPlainObject(request) || Object.keys(request).length === 0) {
    return errorEntry(null, null, 'bad_request', 'document must be a JSON object');
  }
  const { id, rev, atts_since: attsSince } = request;
  if (id === undefined) {
    return errorEntry(null, null, 'bad_request', 'document id missed');
  }
  try {
    checkDocId(id);
  } catch (err) {
    const couch = toCouchError(err);
    return errorEntry(id, null, couch.error, couch.reason);
  }
  if (rev !== undefined && !isRev(rev)) {
    return errorEntry(id, rev, 'bad_request', 'Invalid rev format');
  }
  if (attsSince !== undefined && !Array.isArray(attsSince)) {
    return errorEntry(id, attsSince, 'bad_request', 'att_since value must be array of revs.');
  }
  const badSince = (attsSince || []).find((since) => !isRev(since));
  if (badSince !== undefined) {
    return errorEntry(id, badSince, 'bad_request', 'Invalid rev format');
  }
  return null;
}

// One request → {id, docs: [...]}; problems with the request itself are
// answered in its slot, never for the whole batch.
async function answerOne(db, request, options) {
  const problem = requestError(request);
  if (problem) {
    return { id: problem.error.id, docs: [problem] };
  }
  const { id, rev, atts_since: attsSince } = request;
  const hasAttsSince = Array.isArray(attsSince) && attsSince.length > 0;
  const results = await openRevisions(db, id, rev === undefined ? 'all' : [rev], {
    latest: options.latest,
    revs: options.revs,
    attachments: options.loadAttachments || hasAttsSince,
    attsSince: hasAttsSince ? attsSince : null,
  });
  if (results.length === 0) {
    // no revision asked for and no document: CouchDB names the rev "undefined"
    return { id, docs: [errorEntry(id, 'undefined', 'not_found', 'missing')] };
  }
  return {
    id,
    docs: results.map((result) => (result.ok
      ? { ok: result.ok }
      : errorEntry(id, result.missing, 'not_found', 'missing'))),
  };
}

// CouchDB answers multipart only to clients that do not take JSON.
function multipartType(req) {
  if (accepts(req, 'application/json')) {
    return null;
  }
  if (accepts(req, 'multipart/mixed')) {
    return 'multipart/mixed';
  }
  return accepts(req, 'multipart/related') ? 'multipart/related' : null;
}

async function bulkGet(req, res, store) {
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST');
    throw new HttpError(405, 'method_not_allowed', 'Only POST allowed');
  }
  const db = await store.open(req.couch.db);
  const options = queryOptions(req.query);
  const body = await readJsonObject(req, res);
  if (body.docs === undefined) {
    throw badRequest('Missing JSON list of \'docs\'.');
  }
  if (!Array.isArray(body.docs)) {
    throw badRequest('docs must be a JSON list');
  }
  const mediaType = multipartType(req);
  // In multipart answers CouchDB always sends attachment data (as parts).
  options.loadAttachments = options.attachments || mediaType !== null;
  const results = [];
  for (const request of body.docs) {
    results.push(await answerOne(db, request, options));
  }
  if (mediaType) {
    const { contentType, body: payload } = bulkGetMultipart(results, mediaType);
    res.statusCode = 200;
    res.setHeader('Content-Type', contentType);
    res.setHeader('Content-Length', payload.length);
    return res.end(payload);
  }
  const json = results.map(({ id, docs }) => ({
    id,
    docs: docs.map((entry) => (entry.ok ? { ok: jsonDoc(entry.ok) } : entry)),
  }));
  return sendJson(res, 200, { results: json });
}

module.exports = { bulkGet };
