'use strict';
// Database names: validation (CouchDB rules) and the mapping between a
// CouchDB name and the name PouchDB stores it under.
//
// WHY: KAZOO database names contain "/" ("account/ab/cd/ef0123...",
// "numbers/+1415"). express-pouchdb passes names through sanitize-filename,
// which strips "/" (express-pouchdb issue #213), so "account/ab/cd" became
// "accountabcd" and different names could collide. On leveldb a raw "/" would
// also become nested directories. We therefore give PouchDB a storage name in
// which every character outside [a-z0-9_] is percent-encoded: reversible,
// collision-free, a single safe path component, and untouched by
// sanitize-filename. Encoding "-" as well keeps PouchDB's own view-index
// databases ("<name>-mrview-<md5>") distinguishable from real databases.

const VALID_NAME = /^[a-z][a-z0-9_$()+/-]*$/;
const SYSTEM_DBS = new Set(['_users', '_replicator', '_global_changes']);
// CouchDB's limit; the storage name of a long name with many specials can
// still exceed a filesystem's 255-byte component limit, which then fails
// (as an error response) at creation time.
const MAX_NAME_LENGTH = 238;

function isValidDbName(name) {
  if (typeof name !== 'string' || name.length > MAX_NAME_LENGTH) {
    return false;
  }
  return VALID_NAME.test(name) || SYSTEM_DBS.has(name);
}

function isSystemDbName(name) {
  return SYSTEM_DBS.has(name);
}

function toStorageName(name) {
  return name.replace(/[^a-z0-9_]/g, function (ch) {
    return '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0');
  });
}

// Returns the CouchDB name for a storage name, or null when the storage name
// is not one we produced (view indexes, stray directories).
function fromStorageName(storageName) {
  let name;
  try {
    name = decodeURIComponent(storageName);
  } catch (err) {
    return null;
  }
  if (!isValidDbName(name) || toStorageName(name) !== storageName) {
    return null;
  }
  return name;
}

module.exports = {
  isValidDbName,
  isSystemDbName,
  toStorageName,
  fromStorageName,
};
