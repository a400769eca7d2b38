'use strict';
// Reading one document at given revisions, as CouchDB 3's open_revs does
// (GET /{db}/{id}?open_revs=..., POST /{db}/_bulk_get). The HTTP shapes
// (JSON or multipart) are rendered elsewhere (multipart.js, db-routes.js,
// bulk-get.js); this module only decides which revisions to load and loads
// them with their attachments.
//
// WHY our own instead of PouchDB's get({open_revs}): PouchDB answers in
// completion order, not request order; its `latest` throws (uncaught, from a
// storage callback) for a revision the tree does not hold; it has no
// atts_since; and it returns only one leaf where CouchDB's `latest` returns
// every leaf descending from the requested revision.

const { HttpError } = require('./http');

const REV_FORMAT = /^[0-9]+-\S+$/;

const isRev = (value) => typeof value === 'string' && REV_FORMAT.test(value);
const revPos = (rev) => parseInt(rev, 10);
const revString = (pos, id) => pos + '-' + id;

function invalidRev() {
  return new HttpError(400, 'bad_request', 'Invalid rev format');
}

// Wording as CouchDB's couch_doc:parse_revs/1.
function checkRevList(revs) {
  if (!Array.isArray(revs)) {
    throw new HttpError(400, 'bad_request', 'Invalid list of revisions');
  }
  if (!revs.every(isRev)) {
    throw invalidRev();
  }
}

function revisionTree(db, docId) {
  return new Promise((resolve, reject) => {
    db._getRevisionTree(docId, (err, tree) => {
      if (err && err.status === 404) {
        resolve(null);
      } else if (err) {
        reject(err);
      } else {
        resolve(tree);
      }
    });
  });
}

// Every leaf of a PouchDB revision tree ([{pos, ids: [id, opts, branches]}])
// with its path back to the root, leaf first.
function leafPaths(tree) {
  const leaves = [];
  const toVisit = tree.map((root) => ({ pos: root.pos, node: root.ids, path: [] }));
  while (toVisit.length) {
    const { pos, node, path } = toVisit.pop();
    const [id, opts, branches] = node;
    const here = [revString(pos, id)].concat(path);
    if (branches.length === 0) {
      leaves.push({ rev: here[0], path: here, deleted: Boolean(opts && opts.deleted) });
    }
    for (const branch of branches) {
      toVisit.push({ pos: pos + 1, node: branch, path: here });
    }
  }
  return leaves;
}

// CouchDB's winner order: live before deleted, then the longest, then the
// highest revision id. open_revs=all lists the leaves this way.
function byWinnerOrder(a, b) {
  if (a.deleted !== b.deleted) {
    return a.deleted ? 1 : -1;
  }
  const posDiff = revPos(b.rev) - revPos(a.rev);
  if (posDiff !== 0) {
    return posDiff;
  }
  return a.rev < b.rev ? 1 : a.rev > b.rev ? -1 : 0;
}

// The revisions to load for the requested ones: each target is
// {rev} (to load) or {missing} (reported as missing).
function resolveTargets(tree, requested, latest) {
  if (!tree) {
    return requested === 'all' ? [] : requested.map((rev) => ({ missing: rev }));
  }
  const leaves = leafPaths(tree);
  if (requested === 'all') {
    return leaves.sort(byWinnerOrder).map((leaf) => ({ rev: leaf.rev }));
  }
  const known = new Set();
  leaves.forEach((leaf) => leaf.path.forEach((rev) => known.add(rev)));
  const targets = [];
  for (const rev of requested) {
    if (!latest) {
      targets.push(known.has(rev) ? { rev } : { missing: rev });
      continue;
    }
    // latest: every leaf whose history holds the requested revision
    const descendants = leaves.filter((leaf) => leaf.path.includes(rev)).sort(byWinnerOrder);
    if (descendants.length === 0) {
      targets.push({ missing: rev });
    }
    descendants.forEach((leaf) => targets.push({ rev: leaf.rev }));
  }
  return dedupe(targets);
}

// Two requested revisions may lead to the same leaf (latest): load it once.
function dedupe(targets) {
  const seen = new Set();
  return targets.filter((target) => {
    const key = target.rev ? 'ok:' + target.rev : 'missing:' + target.missing;
    if (seen.has(key)) {
      return false;
    }
    seen.add(key);
    return true;
  });
}

// The newest revision on the document's path that the client says it has
// (atts_since); attachments added after it are sent, older ones are stubs.
// Mirrors couch_db:find_ancestor_rev_pos/2.
function ancestorPos(revisions, attsSince) {
  if (!attsSince || !revisions) {
    return 0;
  }
  const have = new Set(attsSince);
  for (let i = 0; i < revisions.ids.length; i++) {
    const pos = revisions.start - i;
    if (have.has(revString(pos, revisions.ids[i]))) {
      return pos;
    }
  }
  return 0;
}

function getAttachmentData(db, docId, name, rev) {
  return db.getAttachment(docId, name, { rev }).then((data) =>
    (Buffer.isBuffer(data) ? data : Buffer.from(data)));
}

// Loads one revision: {doc, attachments: [{name, meta, data|null}]} with the
// document in CouchDB's field order (_id, _rev, _deleted, body, _revisions),
// _attachments kept apart so each answer format can render them.
async function loadRevision(db, docId, rev, opts) {
  let stored;
  try {
    stored = await db.get(docId, { rev, revs: true });
  } catch (err) {
    if (err.status === 404) {
      return null; // body gone (compacted): CouchDB reports it missing too
    }
    throw err;
  }
  const { _id, _rev, _deleted, _revisions, _attachments, ...body } = stored;
  const doc = { _id, _rev };
  if (_deleted) {
    doc._deleted = true;
  }
  Object.assign(doc, body);
  if (opts.revs) {
    doc._revisions = _revisions;
  }
  const since = ancestorPos(_revisions, opts.attsSince);
  const attachments = [];
  for (const [name, stub] of Object.entries(_attachments || {})) {
    const meta = {
      content_type: stub.content_type,
      revpos: stub.revpos,
      digest: stub.digest,
      length: stub.length,
    };
    const wanted = opts.attachments && stub.revpos > since;
    const data = wanted ? await getAttachmentData(db, docId, name, _rev) : null;
    attachments.push({ name, meta, data });
  }
  return { doc, attachments };
}

// The answer to open_revs for one document, in request order:
// [{ok: {doc, attachments}} | {missing: rev}].
//
// requested: 'all' or an array of revisions.
// opts: {latest, revs, attachments (load data), attsSince (array or null)}.
async function openRevisions(db, docId, requested, opts) {
  if (requested !== 'all') {
    checkRevList(requested);
  }
  if (opts.attsSince !== null && opts.attsSince !== undefined) {
    checkRevList(opts.attsSince);
  }
  const tree = await revisionTree(db, docId);
  const results = [];
  for (const target of resolveTargets(tree, requested, opts.latest)) {
    const loaded = target.rev ? await loadRevision(db, docId, target.rev, opts) : null;
    results.push(loaded ? { ok: loaded } : { missing: target.missing || target.rev });
  }
  return results;
}

// The JSON form of a loaded revision: attachment data inline as base64 (as
// CouchDB's to_json_obj without `follows`), or stubs.
function jsonDoc(loaded) {
  if (loaded.attachments.length === 0) {
    return loaded.doc;
  }
  const atts = {};
  for (const { name, meta, data } of loaded.attachments) {
    const { length, ...common } = meta;
    atts[name] = data
      ? Object.assign(common, { data: data.toString('base64') })
      : Object.assign(common, { length, stub: true });
  }
  return Object.assign({}, loaded.doc, { _attachments: atts });
}

module.exports = { openRevisions, jsonDoc, isRev };
