'use strict';
// Finds the database a request addresses, before any routing.
//
// WHY: in CouchDB the first path segment is the database name, URL-encoded
// ("account%2Fab%2Fcd%2F..."). Express and express-pouchdb decode it and then
// strip the "/" (express-pouchdb issue #213). This middleware decodes the raw
// segment itself, validates it, keeps the real name on req.couch, and
// rewrites the URL so that downstream routes see the storage name (see
// names.js) as a single, "/"-free segment.

const { HttpError, sendJson } = require('./http');
const names = require('./names');

function illegalName(res, name) {
  sendJson(res, 400, {
    error: 'illegal_database_name',
    reason: 'Name: \'' + name + '\'. Only lowercase characters (a-z), digits (0-9), ' +
      'and any of the characters _, $, (, ), +, -, and / are allowed. ' +
      'Must begin with a letter.',
  });
}

function resolveDatabase(req, res, next) {
  const queryAt = req.url.indexOf('?');
  const path = queryAt < 0 ? req.url : req.url.slice(0, queryAt);
  const query = queryAt < 0 ? '' : req.url.slice(queryAt);
  const segments = path.split('/'); // ['', db, rest...]
  if (!segments[1]) {
    return next();
  }
  let name;
  try {
    name = decodeURIComponent(segments[1]);
  } catch (err) {
    return illegalName(res, segments[1]);
  }
  if (name[0] === '_' && !names.isSystemDbName(name)) {
    return next(); // a server endpoint such as /_all_dbs
  }
  if (!names.isValidDbName(name)) {
    return illegalName(res, name);
  }
  req.couch = { db: name, rest: segments.slice(2) };
  segments[1] = encodeURIComponent(names.toStorageName(name));
  req.url = segments.join('/') + query;
  return next();
}

function decodeSegment(segment) {
  try {
    return decodeURIComponent(segment);
  } catch (err) {
    return null;
  }
}

// The document id a path addresses (raw segments after the database), or
// null when the path is a database endpoint (_all_docs...), an attachment,
// or a design-document resource (_view...). Design and local docs may be
// written "_design/x" or "_design%2Fx", as in CouchDB.
function documentId(rest) {
  if (rest.length === 0 || rest.length > 2) {
    return null;
  }
  const first = decodeSegment(rest[0]);
  if (!first) {
    return null;
  }
  if (rest.length === 2) {
    const second = decodeSegment(rest[1]);
    const special = first === '_design' || first === '_local';
    return special && second ? first + '/' + second : null;
  }
  if (first[0] !== '_' || /^_(design|local)\/./.test(first)) {
    return first;
  }
  return null;
}

// CouchDB's rules for a document id a client writes or asks for by body
// (path ids are already split by documentId).
function checkDocId(docId) {
  if (typeof docId !== 'string' || docId === '') {
    throw new HttpError(400, 'illegal_docid', 'Document id must not be empty');
  }
  if (docId[0] === '_' && !/^_(design|local)\/./.test(docId)) {
    throw new HttpError(400, 'illegal_docid',
      'Only reserved document ids may start with underscore.');
  }
}

module.exports = { resolveDatabase, documentId, checkDocId, illegalName };
