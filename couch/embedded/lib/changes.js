'use strict';
// GET/POST /{db}/_changes: normal, longpoll and continuous feeds.
//
// WHY our own: express-pouchdb's version crashed the process on
// filter=_selector without a selector, filter=_design and a missing filter
// design doc; its longpoll ignored `timeout`; and behind its gzip middleware
// a continuous feed delivered nothing to clients sending Accept-Encoding:
// gzip (aiohttp's default). Filters are validated first and answered with a
// 400/404 error, and every filter runs as a function PouchDB calls per doc.

const { HttpError, sendJson, notFound, badRequest, queryBool, queryInt, queryJson } =
  require('./http');
const { readJson, isPlainObject } = require('./body');
const sandbox = require('./sandbox');

const DEFAULT_TIMEOUT_MS = 60000; // CouchDB's default for longpoll/continuous
const FEEDS = new Set(['normal', 'longpoll', 'continuous']);

let warn = function () {};

function setWarn(fn) {
  warn = fn;
}

async function designDoc(db, name) {
  try {
    return await db.get('_design/' + name);
  } catch (err) {
    if (err.status === 404) {
      throw notFound('missing');
    }
    throw err;
  }
}

function splitFunctionName(value, param) {
  const match = /^(?:_design\/)?([^/]+)\/([^/]+)$/.exec(value || '');
  if (!match) {
    throw badRequest('`' + param + '` must be of the form `designname/functionname`');
  }
  return [match[1], match[2]];
}

// A doc passes a _view filter when the view's map function emits for it.
async function viewFilter(db, query) {
  const [ddocName, viewName] = splitFunctionName(query.view, 'view');
  const ddoc = await designDoc(db, ddocName);
  const view = ddoc.views && ddoc.views[viewName];
  if (!view || typeof view.map !== 'string') {
    throw notFound('missing_named_view');
  }
  sandbox.compiled('map', view.map);
  return (doc) => {
    try {
      return sandbox.runMap(view.map, doc).length > 0;
    } catch (err) {
      return false;
    }
  };
}

async function designFilter(db, query, req) {
  const [ddocName, filterName] = splitFunctionName(query.filter, 'filter');
  const ddoc = await designDoc(db, ddocName);
  const source = ddoc.filters && ddoc.filters[filterName];
  if (typeof source !== 'string') {
    throw notFound('missing json key: ' + filterName);
  }
  sandbox.compiled('filter', source);
  const filterReq = {
    query,
    method: req.method,
    userCtx: req.userCtx,
    info: { db_name: req.couch.db },
  };
  return (doc) => {
    try {
      return sandbox.runFilter(source, doc, filterReq);
    } catch (err) {
      warn('filter ' + query.filter + ' threw for doc ' + JSON.stringify(doc._id) + ': ' +
        err.message);
      return false;
    }
  };
}

// -> PouchDB changes options selecting the filtered docs.
async function filterOptions(db, req, body) {
  const query = req.query;
  switch (query.filter) {
    case undefined:
      return {};
    case '_doc_ids': {
      const ids = body.doc_ids !== undefined ? body.doc_ids : queryJson(query.doc_ids, 'doc_ids');
      if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
        throw badRequest('`doc_ids` filter parameter is not a list of doc ids.');
      }
      return { doc_ids: ids };
    }
    case '_selector':
      if (!isPlainObject(body.selector)) {
        throw badRequest('Selector must be specified in POST payload');
      }
      return { selector: body.selector };
    case '_design':
      return { filter: (doc) => typeof doc._id === 'string' && doc._id.startsWith('_design/') };
    case '_view':
      return { filter: await viewFilter(db, query) };
    default:
      return { filter: await designFilter(db, query, req) };
  }
}

async function resolveSince(db, since) {
  if (since === undefined || since === '0') {
    return 0;
  }
  if (since === 'now') {
    return (await db.info()).update_seq;
  }
  // accept our integers, also JSON-quoted, and CouchDB-style "N-opaque"
  const match = /^"?(\d+)/.exec(since);
  if (!match) {
    throw badRequest("Malformed sequence supplied in 'since' parameter.");
  }
  return parseInt(match[1], 10);
}

function heartbeatMs(value) {
  if (value === undefined || value === 'false') {
    return null;
  }
  if (value === 'true') {
    return DEFAULT_TIMEOUT_MS;
  }
  const ms = queryInt(value, 'heartbeat');
  return ms > 0 ? ms : null;
}

async function changesOptions(db, req, body) {
  const query = req.query;
  const opts = {
    since: await resolveSince(db, query.since),
    limit: queryInt(query.limit, 'limit'),
    descending: queryBool(query.descending, false),
    include_docs: queryBool(query.include_docs, false),
    conflicts: queryBool(query.conflicts, false),
    attachments: queryBool(query.attachments, false),
    return_docs: true,
    query_params: query,
  };
  if (query.style === 'all_docs') {
    opts.style = 'all_docs';
  }
  if (opts.limit === 0) {
    opts.limit = 1; // CouchDB treats limit=0 as 1
  }
  return Object.assign(opts, await filterOptions(db, req, body));
}

// Rows with `seq` first, as CouchDB writes them.
function formatChange(change) {
  const row = { seq: change.seq, id: change.id, changes: change.changes };
  if (change.deleted) {
    row.deleted = true;
  }
  if (change.doc) {
    row.doc = change.doc;
  }
  return row;
}

// `pending` is the update sequence still ahead of `last_seq`: an upper bound (a doc
// rewritten twice counts twice), as a clustered CouchDB's sum over shards is an
// estimate too. Counting the rows exactly meant reading every change after the page,
// which made each page of a paged read cost the whole rest of the feed.
async function normalFeed(res, db, opts) {
  const result = await db.changes(opts);
  let pending = 0;
  if (opts.limit !== undefined && result.results.length >= opts.limit && !opts.descending) {
    const info = await db.info();
    pending = Math.max(0, info.update_seq - result.last_seq);
  }
  sendJson(res, 200, {
    results: result.results.map(formatChange),
    last_seq: result.last_seq,
    pending,
  });
}

function startStream(res) {
  if (!res.headersSent) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'must-revalidate' });
  }
}

// Follows live changes until `onChange` or a timer calls finish(). Cleans up
// on client disconnect and on server shutdown (via the `feeds` set).
function follow(res, db, opts, feeds, handlers) {
  let done = false;
  let timer = null;
  let heartbeat = null;
  const live = db.changes(Object.assign({}, opts, { live: true, return_docs: false, limit: undefined }));
  const stop = () => {
    if (done) {
      return false;
    }
    done = true;
    clearTimeout(timer);
    clearInterval(heartbeat);
    live.cancel();
    feeds.delete(finish);
    return true;
  };
  const finish = () => {
    if (stop()) {
      handlers.onEnd();
    }
  };
  const armTimeout = () => {
    clearTimeout(timer);
    if (handlers.timeoutMs) {
      timer = setTimeout(finish, handlers.timeoutMs);
    }
  };
  feeds.add(finish);
  res.on('close', stop);
  live.on('change', (change) => {
    if (!done) {
      handlers.onChange(change, finish);
      armTimeout();
    }
  });
  live.on('error', (err) => {
    warn('changes feed failed: ' + (err && err.message));
    finish();
  });
  if (handlers.heartbeatMs) {
    heartbeat = setInterval(() => {
      startStream(res);
      res.write('\n');
    }, handlers.heartbeatMs);
  }
  armTimeout();
}

async function longpollFeed(req, res, db, opts, feeds) {
  const first = await db.changes(opts);
  if (first.results.length > 0) {
    return sendJson(res, 200, {
      results: first.results.map(formatChange), last_seq: first.last_seq, pending: 0,
    });
  }
  const batch = [];
  const heartbeat = heartbeatMs(req.query.heartbeat);
  follow(res, db, Object.assign({}, opts, { since: first.last_seq }), feeds, {
    heartbeatMs: heartbeat,
    timeoutMs: queryInt(req.query.timeout, 'timeout') || DEFAULT_TIMEOUT_MS,
    onChange(change, finish) {
      batch.push(formatChange(change));
      // return with the first batch, like CouchDB; let same-tick changes join
      if (batch.length === 1) {
        setImmediate(finish);
      }
    },
    onEnd() {
      const body = {
        results: batch,
        last_seq: batch.length ? batch[batch.length - 1].seq : first.last_seq,
        pending: 0,
      };
      if (res.headersSent) {
        res.end(JSON.stringify(body) + '\n');
      } else {
        sendJson(res, 200, body);
      }
    },
  });
}

function continuousFeed(req, res, db, opts, feeds) {
  const heartbeat = heartbeatMs(req.query.heartbeat);
  let lastSeq = opts.since;
  let sent = 0;
  startStream(res);
  follow(res, db, opts, feeds, {
    heartbeatMs: heartbeat,
    // with a heartbeat CouchDB keeps the feed open indefinitely
    timeoutMs: heartbeat ? null : queryInt(req.query.timeout, 'timeout') || DEFAULT_TIMEOUT_MS,
    onChange(change, finish) {
      res.write(JSON.stringify(formatChange(change)) + '\n');
      lastSeq = change.seq;
      sent += 1;
      if (opts.limit !== undefined && sent >= opts.limit) {
        finish();
      }
    },
    onEnd() {
      res.end(JSON.stringify({ last_seq: lastSeq, pending: 0 }) + '\n');
    },
  });
}

async function handleChanges(req, res, db, feeds) {
  if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
    res.setHeader('Allow', 'GET,HEAD,POST');
    throw new HttpError(405, 'method_not_allowed', 'Only GET,HEAD,POST allowed');
  }
  const feed = req.query.feed || 'normal';
  if (!FEEDS.has(feed)) {
    throw badRequest('Supported `feed` types: normal, continuous, longpoll');
  }
  const body = req.method === 'POST' ? (await readJson(req, res)) || {} : {};
  if (!isPlainObject(body)) {
    throw badRequest('Request body must be a JSON object');
  }
  const opts = await changesOptions(db, req, body);
  if (feed === 'longpoll') {
    return longpollFeed(req, res, db, opts, feeds);
  }
  if (feed === 'continuous') {
    return continuousFeed(req, res, db, opts, feeds);
  }
  return normalFeed(res, db, opts);
}

module.exports = { handleChanges, setWarn };
