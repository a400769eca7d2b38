#!/usr/bin/env node
'use strict';
// Embedded CouchDB-compatible server for development, tests and CI:
// express-pouchdb 4.2.0 + PouchDB 7.3.1 behind a thin layer that makes it
// answer like CouchDB 3 where the project needs it (see lib/*.js, each file
// says which express-pouchdb behaviour it replaces and why).
//
//   node server.js --host 127.0.0.1 --port N --admin USER:PASSWORD
//                  [--data-dir DIR | --memory] [--log-level LEVEL]
//                  [--exit-on-stdin-close]
//
// Without --data-dir everything is kept in memory (--memory says so
// explicitly).
// --admin may be omitted when EMBEDDED_COUCH_ADMIN=USER:PASSWORD is set in the
// environment (keeps the password out of `ps`). --port 0 picks a free port.
// Once listening it prints one line to stdout and nothing more:
//   {"ready": true, "url": "http://127.0.0.1:PORT", "pid": PID}

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const util = require('util');
const express = require('express');
const { createLogger } = require('./lib/log');
const { Store } = require('./lib/store');
const { Auth, requireAdmin, sessionRoutes } = require('./lib/auth');
const { resolveDatabase } = require('./lib/resolve');
const { databaseRoutes } = require('./lib/db-routes');
const { serverRoutes } = require('./lib/server-routes');
const { Replicator } = require('./lib/replicate');
const { createExpressPouchApp } = require('./lib/express-pouchdb-app');
const { trackRequests, installCrashGuards, errorResponder } = require('./lib/safety');
const { sendJson } = require('./lib/http');
const sandbox = require('./lib/sandbox');
const mapreduce = require('./lib/mapreduce');
const changes = require('./lib/changes');

const SHUTDOWN_DEADLINE_MS = 1500; // callers expect an exit within 2 s

const USAGE = 'usage: server.js --host HOST --port N --admin USER:PASSWORD ' +
  '[--data-dir DIR | --memory] [--log-level debug|info|warn|error] [--exit-on-stdin-close]';

function fail(message) {
  process.stderr.write(message + '\n' + USAGE + '\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 5984, memory: false, logLevel: 'info' };
  const takesValue = { '--host': 'host', '--port': 'port', '--admin': 'admin',
    '--data-dir': 'dataDir', '--log-level': 'logLevel' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (takesValue[arg]) {
      if (i + 1 >= argv.length) {
        fail('missing value for ' + arg);
      }
      opts[takesValue[arg]] = argv[++i];
    } else if (arg === '--memory') {
      opts.memory = true;
    } else if (arg === '--exit-on-stdin-close') {
      opts.exitOnStdinClose = true;
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else {
      fail('unknown argument: ' + arg);
    }
  }
  return validateArgs(opts);
}

function validateArgs(opts) {
  const admin = opts.admin || process.env.EMBEDDED_COUCH_ADMIN || '';
  const sep = admin.indexOf(':');
  if (sep <= 0 || sep === admin.length - 1) {
    fail('--admin USER:PASSWORD is required (or EMBEDDED_COUCH_ADMIN)');
  }
  opts.adminUser = admin.slice(0, sep);
  opts.adminPassword = admin.slice(sep + 1);
  delete opts.admin;
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail('--port must be an integer between 0 and 65535');
  }
  opts.port = port;
  if (opts.memory && opts.dataDir) {
    fail('give either --data-dir DIR or --memory, not both');
  }
  opts.dataDir = opts.dataDir ? path.resolve(opts.dataDir) : null;
  return opts;
}

// A stable server uuid for a data directory, a fresh one in memory.
function serverUuid(dataDir) {
  if (!dataDir) {
    return crypto.randomUUID().replace(/-/g, '');
  }
  const file = path.join(dataDir, '.server-uuid');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    const uuid = crypto.randomUUID().replace(/-/g, '');
    fs.writeFileSync(file, uuid + '\n');
    return uuid;
  }
}

function accessLog(log) {
  return function (req, res, next) {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // path only: query strings and headers never reach the log
      log.debug(req.method + ' ' + req.originalUrl.split('?')[0] + ' ' + res.statusCode +
        ' ' + ms.toFixed(1) + 'ms');
    });
    next();
  };
}

async function buildApp(opts, log) {
  const store = new Store(opts.dataDir, log);
  store.init();
  const replicator = new Replicator(store, log);
  const feeds = new Set(); // finish() of every open longpoll/continuous feed
  const auth = new Auth(opts.adminUser, opts.adminPassword);
  const epApp = await createExpressPouchApp(store);

  const app = express();
  app.set('etag', false);
  app.set('query parser', 'simple'); // CouchDB params are plain strings
  app.disable('x-powered-by');
  app.enable('case sensitive routing');
  app.use(trackRequests);
  app.use(accessLog(log));
  app.use(requireAdmin(auth));
  sessionRoutes(app, auth);
  serverRoutes(app, { store, replicator, serverUuid: serverUuid(opts.dataDir) });
  app.use(resolveDatabase);
  app.use(databaseRoutes(store, feeds));
  app.use(epApp);
  app.use((req, res) => sendJson(res, 404, { error: 'not_found', reason: 'missing' }));
  app.use(errorResponder(log));
  return { app, store, replicator, feeds };
}

function printReadyLine(opts, server) {
  const port = server.address().port;
  const host = opts.host.includes(':') ? '[' + opts.host + ']' : opts.host;
  const url = 'http://' + host + ':' + port;
  process.stdout.write('{"ready": true, "url": ' + JSON.stringify(url) +
    ', "pid": ' + process.pid + '}\n');
}

function installShutdown(server, parts, log) {
  let closing = false;
  const shutdown = (why) => {
    if (closing) {
      return;
    }
    closing = true;
    log.info('shutting down (' + why + ')');
    setTimeout(() => process.exit(0), SHUTDOWN_DEADLINE_MS).unref();
    server.close();
    parts.replicator.cancelAll();
    for (const finish of Array.from(parts.feeds)) {
      finish();
    }
    server.closeIdleConnections();
    parts.store.closeAll().finally(() => {
      server.closeAllConnections();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return shutdown;
}

// stdout carries only the ready line, but dependencies print with
// console.log/info (PouchDB's guardedConsole, express-pouchdb): send those to
// the log on stderr.
function keepStdoutQuiet(log) {
  console.log = (...args) => log.info(util.format(...args));
  console.info = console.log;
  console.debug = (...args) => log.debug(util.format(...args));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const log = createLogger(opts.logLevel);
  keepStdoutQuiet(log);
  installCrashGuards(log);
  sandbox.setLogSink((msg) => log.info('design function log: ' + msg));
  mapreduce.setWarn(log.warn);
  changes.setWarn(log.warn);

  const parts = await buildApp(opts, log);
  const server = parts.app.listen(opts.port, opts.host);
  // Long-running feeds must not be cut by Node's default 5-minute limit.
  server.requestTimeout = 0;
  // An idle kept-alive connection stays open longer than any client keeps one (aiohttp:
  // 15 s), so the client is the one to close it: a POST, which no client resends, never
  // goes out on a connection the server is closing (docs/embedded-couchdb.md).
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 66000;
  server.on('error', (err) => {
    log.error('cannot listen on ' + opts.host + ':' + opts.port + ': ' + err.message);
    process.exit(1);
  });
  const shutdown = installShutdown(server, parts, log);
  if (opts.exitOnStdinClose) {
    // The launcher keeps our stdin open; EOF means it died, so don't linger.
    process.stdin.on('end', () => shutdown('stdin closed'));
    process.stdin.on('error', () => shutdown('stdin error'));
    process.stdin.resume();
  }
  server.on('listening', () => {
    log.info('listening on ' + opts.host + ':' + server.address().port + ' (' +
      (opts.dataDir ? 'leveldb in ' + opts.dataDir : 'in memory') + ')');
    printReadyLine(opts, server);
  });
}

main().catch((err) => {
  process.stderr.write('embedded couch failed to start: ' + ((err && err.stack) || err) + '\n');
  process.exit(1);
});
