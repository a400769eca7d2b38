'use strict';
// POST /_replicate, CouchDB style: source/target are local database names or
// full URLs (credentials in the URL, or {"url", "headers"} / {"url", "auth"}
// objects), one-shot or continuous (cancelled with "cancel": true).
//
// WHY our own: express-pouchdb handed the raw strings to PouchDB, which opened
// local "/" names as nested leveldb paths (crashing the process) and created
// missing remote targets without being asked to.

const crypto = require('crypto');
const { HttpError, sendJson, badRequest } = require('./http');
const { readJsonObject, isPlainObject } = require('./body');

const isUrl = (value) => /^https?:\/\//i.test(value);

// For logs and error messages: never show credentials.
function describe(spec) {
  const url = typeof spec === 'string' ? spec : spec && spec.url;
  return String(url).replace(/\/\/[^/@]*@/, '//');
}

function remoteOptions(store, spec, create) {
  const opts = { skip_setup: !create };
  if (isPlainObject(spec)) {
    const basic = spec.auth && spec.auth.basic;
    if (basic) {
      opts.auth = { username: basic.username, password: basic.password };
    }
    if (isPlainObject(spec.headers)) {
      opts.fetch = (url, fetchOpts) => {
        for (const [name, value] of Object.entries(spec.headers)) {
          fetchOpts.headers.set(name, value);
        }
        return store.PouchDB.fetch(url, fetchOpts);
      };
    }
  }
  return opts;
}

async function endpoint(store, spec, create) {
  const url = typeof spec === 'string' ? spec : isPlainObject(spec) && spec.url;
  if (typeof url !== 'string' || url === '') {
    throw badRequest('source and target must be database names or URLs');
  }
  if (isUrl(url)) {
    return store.remote(url, remoteOptions(store, spec, create));
  }
  if (create && !store.exists(url)) {
    return store.create(url);
  }
  try {
    return await store.open(url);
  } catch (err) {
    throw new HttpError(404, 'db_not_found', 'could not open ' + url);
  }
}

function replicationOptions(body) {
  const opts = {};
  for (const key of ['filter', 'query_params', 'doc_ids', 'selector', 'since_seq']) {
    if (body[key] !== undefined) {
      opts[key === 'since_seq' ? 'since' : key] = body[key];
    }
  }
  return opts;
}

// CouchDB's replication id: the same request gets the same id, so a cancel
// request can name the replication it stops.
function replicationId(body) {
  const key = JSON.stringify([describe(body.source), describe(body.target),
    body.filter, body.doc_ids, body.selector, body.query_params]);
  return crypto.createHash('md5').update(key).digest('hex') + '+continuous';
}

function historyEntry(result, sessionId, startTime) {
  return {
    session_id: sessionId,
    start_time: startTime,
    end_time: new Date().toUTCString(),
    start_last_seq: 0,
    end_last_seq: result.last_seq,
    recorded_seq: result.last_seq,
    missing_checked: result.docs_read,
    missing_found: result.docs_read,
    docs_read: result.docs_read,
    docs_written: result.docs_written,
    doc_write_failures: result.doc_write_failures,
  };
}

function toHttpError(err, body) {
  if (err instanceof HttpError) {
    return err;
  }
  const status = err && Number.isInteger(err.status) ? err.status : 500;
  if (status === 404) {
    return new HttpError(404, 'db_not_found',
      'could not open ' + describe(body.source) + ' or ' + describe(body.target));
  }
  if (status === 401 || status === 403) {
    return new HttpError(status, 'unauthorized', 'the remote refused our credentials');
  }
  return new HttpError(status, 'replication_failed', String((err && err.message) || err));
}

class Replicator {
  constructor(store, log) {
    this.store = store;
    this.log = log;
    this.continuous = new Map(); // id -> PouchDB replication
  }

  async handle(req, res) {
    const body = await readJsonObject(req, res);
    if (body.cancel) {
      return this.cancel(res, body);
    }
    if (body.source === undefined || body.target === undefined) {
      throw badRequest('Both source and target must be specified');
    }
    let source;
    let target;
    try {
      source = await endpoint(this.store, body.source, false);
      target = await endpoint(this.store, body.target, !!body.create_target);
    } catch (err) {
      throw toHttpError(err, body);
    }
    if (body.continuous) {
      return this.startContinuous(res, body, source, target);
    }
    return this.runOnce(res, body, source, target);
  }

  async runOnce(res, body, source, target) {
    const sessionId = crypto.randomUUID().replace(/-/g, '');
    const startTime = new Date().toUTCString();
    let result;
    try {
      result = await this.store.PouchDB.replicate(source, target, replicationOptions(body));
    } catch (err) {
      this.log.warn('replication ' + describe(body.source) + ' -> ' + describe(body.target) +
        ' failed: ' + (err && err.message));
      throw toHttpError(err, body);
    }
    const entry = historyEntry(result, sessionId, startTime);
    sendJson(res, 200, {
      ok: true,
      session_id: sessionId,
      source_last_seq: result.last_seq,
      replication_id_version: 4,
      history: [entry],
      docs_read: entry.docs_read,
      docs_written: entry.docs_written,
      doc_write_failures: entry.doc_write_failures,
    });
  }

  startContinuous(res, body, source, target) {
    const id = replicationId(body);
    if (!this.continuous.has(id)) {
      const opts = Object.assign(replicationOptions(body), { live: true, retry: true });
      const replication = this.store.PouchDB.replicate(source, target, opts);
      replication.on('error', (err) => {
        this.log.warn('continuous replication ' + id + ' stopped: ' + (err && err.message));
        this.continuous.delete(id);
      });
      this.continuous.set(id, replication);
    }
    sendJson(res, 202, { ok: true, _local_id: id });
  }

  cancel(res, body) {
    const id = body.replication_id || replicationId(body);
    const replication = this.continuous.get(id);
    if (!replication) {
      throw new HttpError(404, 'not_found', 'missing');
    }
    replication.cancel();
    this.continuous.delete(id);
    sendJson(res, 200, { ok: true, _local_id: id });
  }

  cancelAll() {
    for (const replication of this.continuous.values()) {
      replication.cancel();
    }
    this.continuous.clear();
  }
}

module.exports = { Replicator };
