'use strict';
// multipart/mixed answers for documents read by revision, byte-compatible
// with CouchDB 3 (chttpd_db:send_docs_multipart/3 and
// send_docs_multipart_bulk_get/4, couch_httpd_multipart:encode_multipart_stream/5).
//
// WHY: Apache CouchDB's replicator fetches design documents and documents
// with attachments with GET ?open_revs=[...] and `Accept: multipart/mixed`,
// and parses the answer as multipart unconditionally; a JSON answer crashes
// it (badmatch in couch_httpd:get_boundary) and it retries until it gives up.
//
// Layout of one open_revs answer (CRLFs written out):
//   --OUTER
//   \r\nContent-Type: application/json\r\n\r\n{doc}\r\n--OUTER
//   \r\nContent-Type: multipart/related; boundary="INNER"\r\n\r\n
//     --INNER\r\nContent-Type: application/json\r\n\r\n{doc, "follows": true atts}
//     \r\n--INNER\r\nContent-Disposition: attachment; filename="a.txt"
//     \r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello\r\n--INNER--
//   \r\n--OUTER
//   \r\nContent-Type: application/json; error="true"\r\n\r\n{"missing": rev}\r\n--OUTER
//   --
// Part headers carry no charset: the replicator matches the Content-Type
// value exactly.

const crypto = require('crypto');

const newBoundary = () => crypto.randomBytes(16).toString('hex');

// mochiweb_request:accepts_content_type/2, which CouchDB uses to choose
// between JSON and multipart: no Accept header means */*, and a type (or its
// main/*) listed with q=0 is refused even when */* is accepted.
function accepts(req, type) {
  const header = req.headers.accept === undefined ? '*/*' : String(req.headers.accept);
  const superType = type.split('/')[0] + '/*';
  const ranges = header.split(',').map((item) => {
    const [media, ...params] = item.split(';').map((s) => s.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    return { media, q: Number.isFinite(q) ? q : 0 };
  });
  const refused = ranges.some((r) => r.q === 0 && (r.media === type || r.media === superType));
  const wanted = ranges.some((r) => r.q > 0 &&
    (r.media === '*/*' || r.media === type || r.media === superType));
  return wanted && !refused;
}

// A loaded revision's JSON with attachments marked "follows" (data sent as
// parts) or "stub"; CouchDB's to_json_obj with [attachments, follows].
function followsDoc(loaded) {
  if (loaded.attachments.length === 0) {
    return loaded.doc;
  }
  const atts = {};
  for (const { name, meta, data } of loaded.attachments) {
    atts[name] = Object.assign({}, meta, data ? { follows: true } : { stub: true });
  }
  return Object.assign({}, loaded.doc, { _attachments: atts });
}

// Ids may hold any character; CR/LF would end the part's header block.
const headerSafe = (value) => String(value).replace(/[\r\n]/g, '');

// The attachment parts of a document, in the order of its _attachments
// object: CouchDB's parser hands part N to the Nth "follows" attachment.
function relatedParts(inner, loaded) {
  const chunks = [
    '--' + inner + '\r\nContent-Type: application/json\r\n\r\n',
    JSON.stringify(followsDoc(loaded)),
    '\r\n--' + inner,
  ];
  for (const { name, meta, data } of loaded.attachments.filter((att) => att.data)) {
    chunks.push(
      // JSON.stringify quotes the name and escapes CR/LF, keeping the part
      // headers intact whatever the attachment is called.
      '\r\nContent-Disposition: attachment; filename=' + JSON.stringify(name) +
      '\r\nContent-Type: ' + headerSafe(meta.content_type) +
      '\r\nContent-Length: ' + data.length + '\r\n\r\n',
      data,
      '\r\n--' + inner);
  }
  chunks.push('--');
  return chunks;
}

const hasData = (loaded) => loaded.attachments.some((att) => att.data);

// One document part: plain JSON, or a nested multipart/related when some
// attachment data follows. `extraHeaders` precede Content-Type (_bulk_get's
// X-Doc-Id / X-Rev-Id).
function documentPart(loaded, inner, quoteBoundary, extraHeaders) {
  if (!hasData(loaded)) {
    return ['\r\nContent-Type: application/json\r\n\r\n', JSON.stringify(followsDoc(loaded))];
  }
  const boundary = quoteBoundary ? '"' + inner + '"' : inner;
  return [(extraHeaders || '') + '\r\nContent-Type: multipart/related; boundary=' + boundary +
    '\r\n\r\n'].concat(relatedParts(inner, loaded));
}

function errorPart(body) {
  return ['\r\nContent-Type: application/json; error="true"\r\n\r\n', JSON.stringify(body)];
}

function toBuffer(chunks) {
  return Buffer.concat(chunks.map((c) => (Buffer.isBuffer(c) ? c : Buffer.from(c, 'utf8'))));
}

// GET /{db}/{id}?open_revs=... results → {contentType, body}.
function openRevsMultipart(results) {
  const outer = newBoundary();
  const inner = newBoundary();
  const chunks = ['--' + outer];
  for (const result of results) {
    const part = result.ok
      ? documentPart(result.ok, inner, true)
      : errorPart({ missing: result.missing });
    chunks.push(...part, '\r\n--' + outer);
  }
  chunks.push('--');
  return {
    contentType: 'multipart/mixed; boundary="' + outer + '"',
    body: toBuffer(chunks),
  };
}

// POST /{db}/_bulk_get results ([{id, docs: [{ok} | {error}]}]) →
// {contentType, body}. mediaType is multipart/mixed or multipart/related.
function bulkGetMultipart(results, mediaType) {
  const outer = newBoundary();
  const inner = newBoundary();
  const chunks = [];
  for (const { id, docs } of results) {
    for (const entry of docs) {
      chunks.push('\r\n--' + outer);
      if (entry.ok) {
        const headers = '\r\nX-Doc-Id: ' + headerSafe(id) +
          '\r\nX-Rev-Id: ' + headerSafe(entry.ok.doc._rev);
        chunks.push(...documentPart(entry.ok, inner, false, headers));
      } else {
        chunks.push(...errorPart(entry.error));
      }
    }
  }
  if (chunks.length) {
    chunks.push('\r\n--' + outer + '--\r\n');
  }
  return {
    contentType: mediaType + '; boundary="' + outer + '"',
    body: toBuffer(chunks),
  };
}

module.exports = { accepts, openRevsMultipart, bulkGetMultipart };
