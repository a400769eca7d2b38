'use strict';
// Request-level crashes must become error responses, never a process exit.
//
// WHY: express-pouchdb and PouchDB throw from callbacks and leave promise
// rejections unhandled on some inputs (e.g. _changes?filter=_selector without
// a selector, filter=_design, a missing filter ddoc, _replicate between local
// "/" names on leveldb). Node ends the process on both. Express only catches
// synchronous throws in handlers, so every request also runs inside an
// AsyncLocalStorage context: the process-level handlers below find the
// request whose work failed and answer it with a 500.

const { AsyncLocalStorage } = require('async_hooks');
const { sendJson } = require('./http');

const requestContext = new AsyncLocalStorage();

function trackRequests(req, res, next) {
  requestContext.run({ req, res }, next);
}

function failCurrentRequest(err) {
  const ctx = requestContext.getStore();
  if (!ctx) {
    return;
  }
  if (!ctx.res.headersSent) {
    sendJson(ctx.res, 500, {
      error: 'unknown_error',
      reason: String((err && err.message) || err),
    });
  } else if (!ctx.res.writableEnded) {
    ctx.res.end();
  }
}

function installCrashGuards(log) {
  const report = (kind) => (err) => {
    const ctx = requestContext.getStore();
    const where = ctx ? ' during ' + ctx.req.method + ' ' + ctx.req.path : '';
    log.error(kind + where + ': ' + ((err && err.stack) || err));
    try {
      failCurrentRequest(err);
    } catch (sendErr) {
      log.error('could not send the 500 response: ' + sendErr.message);
    }
  };
  process.on('uncaughtException', report('uncaught exception'));
  process.on('unhandledRejection', report('unhandled rejection'));
}

// Express error middleware: synchronous throws and next(err) end up here.
function errorResponder(log) {
  // eslint-disable-next-line no-unused-vars
  return function (err, req, res, next) {
    const status = Number.isInteger(err && err.status) ? err.status : 500;
    if (status >= 500) {
      log.error('request ' + req.method + ' ' + req.path + ' failed: ' +
        ((err && err.stack) || err));
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    sendJson(res, status, {
      error: status >= 500 ? 'unknown_error' : (err.type === 'entity.too.large' ? 'too_large' : 'bad_request'),
      reason: String((err && err.message) || err),
    });
  };
}

module.exports = { trackRequests, installCrashGuards, errorResponder };
