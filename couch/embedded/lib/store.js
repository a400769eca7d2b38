'use strict';
// The set of databases this server holds, and one open PouchDB handle per
// database.
//
// WHY our own registry instead of pouchdb-all-dbs: express-pouchdb looked up
// the full list of databases (an allDocs over a bookkeeping database) on
// every request, compared it with sanitised names, and so lost "/" names.
// Here the registry is an in-memory Set of CouchDB names, rebuilt at start
// from the data directory (leveldb) and kept up to date by create/destroy.

const fs = require('fs');
const path = require('path');
const PouchDB = require('pouchdb-core')
  .plugin(require('pouchdb-adapter-leveldb'))
  .plugin(require('pouchdb-adapter-memory'))
  .plugin(require('pouchdb-adapter-http'))
  .plugin(require('./mapreduce').plugin)
  .plugin(require('pouchdb-replication'));
const { HttpError, DB_MISSING } = require('./http');
const names = require('./names');

// express-pouchdb's attachment route calls removeAttachment(id, name, rev,
// opts, callback); PouchDB 7 takes (id, name, rev, callback) and would call
// the opts object. (express-pouchdb's own wrapper for this also rewrote
// info().db_name, which we cannot use: see express-pouchdb-app.js.)
function acceptOptionsArgument(db) {
  const removeAttachment = db.removeAttachment;
  db.removeAttachment = function (docId, attachmentId, rev, opts, callback) {
    const cb = typeof opts === 'function' ? opts : callback;
    return removeAttachment.call(this, docId, attachmentId, rev, cb);
  };
}

class Store {
  // dataDir: leveldb files live under it; null keeps everything in memory.
  constructor(dataDir, log) {
    this.dataDir = dataDir;
    this.log = log;
    this.PouchDB = PouchDB;
    this.LocalDB = dataDir
      ? PouchDB.defaults({ adapter: 'leveldb', prefix: dataDir + path.sep })
      : PouchDB.defaults({ adapter: 'memory' });
    this.dbNames = new Set();
    this.sorted = null;
    this.handles = new Map(); // CouchDB name -> Promise<PouchDB>
    // express-pouchdb asks the constructor for the list of databases at start
    // (and would install pouchdb-all-dbs if it could not).
    this.LocalDB.allDbs = (callback) => {
      const list = this.list().map(names.toStorageName);
      if (callback) {
        process.nextTick(callback, null, list);
      }
      return Promise.resolve(list);
    };
  }

  init() {
    if (!this.dataDir) {
      return;
    }
    fs.mkdirSync(this.dataDir, { recursive: true });
    for (const entry of fs.readdirSync(this.dataDir, { withFileTypes: true })) {
      const name = entry.isDirectory() ? names.fromStorageName(entry.name) : null;
      // A leveldb database always has a CURRENT file; view indexes
      // ("<name>-mrview-<hash>") never decode to a valid storage name.
      if (name && fs.existsSync(path.join(this.dataDir, entry.name, 'CURRENT'))) {
        this.addName(name);
      }
    }
  }

  exists(name) {
    return this.dbNames.has(name);
  }

  // Code-point order, like the rest of this server's collation. Sorted again only
  // after the set changed: every trunk write reads a range of it (the number
  // databases), and sorting 100,000 account names each time cost more than the write.
  // The array is shared: callers must not modify it.
  sortedNames() {
    if (this.sorted === null) {
      this.sorted = Array.from(this.dbNames).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    }
    return this.sorted;
  }

  list() {
    return this.sortedNames().slice();
  }

  addName(name) {
    this.dbNames.add(name);
    this.sorted = null;
  }

  deleteName(name) {
    this.dbNames.delete(name);
    this.sorted = null;
  }

  async create(name) {
    if (this.dbNames.has(name)) {
      throw new HttpError(412, 'file_exists',
        'The database could not be created, the file already exists.');
    }
    this.addName(name);
    try {
      const db = await this.open(name);
      await db.info();
      return db;
    } catch (err) {
      this.deleteName(name);
      this.handles.delete(name);
      throw err;
    }
  }

  open(name) {
    if (!this.dbNames.has(name)) {
      return Promise.reject(new HttpError(404, 'not_found', DB_MISSING));
    }
    let handle = this.handles.get(name);
    if (!handle) {
      handle = this.openHandle(name);
      this.handles.set(name, handle);
    }
    return handle;
  }

  openHandle(name) {
    const storageName = names.toStorageName(name);
    const db = new this.LocalDB(storageName);
    // PouchDB reports some failures as 'error' events; without a listener
    // Node would turn them into a process-level exception.
    db.on('error', (err) => this.log.warn('database ' + name + ': ' + (err && err.message)));
    acceptOptionsArgument(db);
    return Promise.resolve(db);
  }

  async destroy(name) {
    if (!this.dbNames.has(name)) {
      throw new HttpError(404, 'not_found', DB_MISSING);
    }
    this.deleteName(name);
    const handle = this.handles.get(name);
    this.handles.delete(name);
    const db = handle ? await handle : new this.LocalDB(names.toStorageName(name));
    await db.destroy();
  }

  // A PouchDB handle for a remote database URL (replication endpoints).
  remote(url, opts) {
    return new PouchDB(url, Object.assign({ adapter: 'http' }, opts));
  }

  async closeAll() {
    const handles = Array.from(this.handles.values());
    this.handles.clear();
    await Promise.all(handles.map((handle) =>
      handle.then((db) => db.close()).catch(() => undefined)));
  }
}

module.exports = { Store };
