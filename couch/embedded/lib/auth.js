'use strict';
// One server admin, admins-only access, CouchDB-style Basic and cookie auth.
//
// WHY not express-pouchdb's authentication: it keeps users in a _users
// database, lets anonymous requests through as "admin party" or per-db
// members, and crashed the process on an anonymous PUT /db once admins were
// configured. This server only ever has the one admin it was started with,
// so a small check in front of everything is simpler and cannot be bypassed.

const crypto = require('crypto');
const querystring = require('querystring');
const { sendJson, route } = require('./http');

const COOKIE_NAME = 'AuthSession';
const COOKIE_TTL_SECONDS = 600; // CouchDB's couch_httpd_auth/timeout default
const BAD_CREDENTIALS = 'Name or password is incorrect.';

function digest(value) {
  return crypto.createHash('sha256').update(String(value)).digest();
}

// Constant-time comparison of two strings of any length.
function sameSecret(a, b) {
  return crypto.timingSafeEqual(digest(a), digest(b));
}

class Auth {
  constructor(user, password) {
    this.user = user;
    this.password = password;
    this.secret = crypto.randomBytes(32);
    // Every client sends the same header with every request: one digest of it
    // checks it, where parsing it and comparing name and password took four (a
    // seventh of this server's CPU per request, docs/embedded-couchdb.md).
    const credentials = Buffer.from(user + ':' + password).toString('base64');
    this.usualHeader = digest('Basic ' + credentials);
  }

  checkPassword(name, password) {
    // evaluate both comparisons so timing does not reveal which one failed
    const userOk = sameSecret(name, this.user);
    const passwordOk = sameSecret(password, this.password);
    return userOk && passwordOk;
  }

  sign(payload) {
    return crypto.createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  makeCookie(name, now) {
    const payload = name + ':' + Math.floor(now / 1000 + COOKIE_TTL_SECONDS).toString(16);
    return Buffer.from(payload + ':' + this.sign(payload)).toString('base64url');
  }

  // Returns {name, expires} for a valid, unexpired cookie, else null.
  readCookie(value, now) {
    const text = Buffer.from(value, 'base64url').toString('utf8');
    const last = text.lastIndexOf(':');
    const payload = text.slice(0, last);
    if (last < 0 || !sameSecret(text.slice(last + 1), this.sign(payload))) {
      return null;
    }
    const sep = payload.lastIndexOf(':');
    const expires = parseInt(payload.slice(sep + 1), 16) * 1000;
    const name = payload.slice(0, sep);
    return expires > now && name === this.user ? { name, expires } : null;
  }

  // -> {name, via: 'default'|'cookie'} | {failed: true} (bad credentials) | null
  identify(req) {
    const header = req.headers.authorization;
    if (header) {
      if (crypto.timingSafeEqual(digest(header), this.usualHeader)) {
        return { name: this.user, via: 'default' };
      }
      const match = /^Basic\s+(\S+)\s*$/i.exec(header);
      if (!match) {
        return { failed: true };
      }
      const decoded = Buffer.from(match[1], 'base64').toString('utf8');
      const sep = decoded.indexOf(':');
      const name = sep < 0 ? decoded : decoded.slice(0, sep);
      const password = sep < 0 ? '' : decoded.slice(sep + 1);
      return this.checkPassword(name, password) ? { name, via: 'default' } : { failed: true };
    }
    const cookie = readCookieHeader(req.headers.cookie, COOKIE_NAME);
    const session = cookie && this.readCookie(cookie, Date.now());
    return session ? { name: session.name, via: 'cookie', expires: session.expires } : null;
  }
}

function readCookieHeader(header, wanted) {
  for (const part of (header || '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === wanted) {
      return part.slice(eq + 1).trim().replace(/^"|"$/g, '');
    }
  }
  return null;
}

function setCookie(res, value, maxAge) {
  const attrs = [COOKIE_NAME + '=' + value, 'Version=1', 'Path=/', 'HttpOnly', 'SameSite=Lax'];
  if (maxAge !== undefined) {
    attrs.push('Max-Age=' + maxAge);
  }
  res.setHeader('Set-Cookie', attrs.join('; '));
}

const unauthorized = (res, reason) => sendJson(res, 401, { error: 'unauthorized', reason });

// Everything needs the admin except /_up (public in CouchDB 3 too) and
// /_session, which answers anonymous callers itself (log in, "who am I").
function requireAdmin(auth) {
  return function (req, res, next) {
    const identity = auth.identify(req);
    if (identity && identity.name) {
      req.userCtx = { name: identity.name, roles: ['_admin'] };
      req.authVia = identity.via;
      refreshCookie(auth, identity, res);
      return next();
    }
    req.userCtx = { name: null, roles: [] };
    if (req.path === '/_up') {
      return next();
    }
    if (identity && identity.failed) {
      return unauthorized(res, BAD_CREDENTIALS);
    }
    if (req.path === '/_session') {
      return next();
    }
    return unauthorized(res, 'Authentication required.');
  };
}

// Like CouchDB, re-issue a cookie once half of its lifetime has passed so an
// active session does not expire.
function refreshCookie(auth, identity, res) {
  const now = Date.now();
  if (identity.via === 'cookie' && identity.expires - now < COOKIE_TTL_SECONDS * 500) {
    setCookie(res, auth.makeCookie(identity.name, now));
  }
}

async function readCredentials(req) {
  const body = await new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
  const type = String(req.headers['content-type'] || '');
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return querystring.parse(body);
  }
  try {
    return JSON.parse(body || '{}') || {};
  } catch (err) {
    return {};
  }
}

function sessionRoutes(app, auth) {
  app.get('/_session', (req, res) => {
    const info = { authentication_handlers: ['cookie', 'default'] };
    if (req.userCtx.name) {
      info.authenticated = req.authVia;
    }
    sendJson(res, 200, { ok: true, userCtx: req.userCtx, info });
  });

  app.post('/_session', route(async (req, res) => {
    const creds = await readCredentials(req);
    const name = String(creds.name || creds.username || '');
    if (!auth.checkPassword(name, String(creds.password || ''))) {
      return unauthorized(res, BAD_CREDENTIALS);
    }
    setCookie(res, auth.makeCookie(name, Date.now()));
    return sendJson(res, 200, { ok: true, name, roles: ['_admin'] });
  }));

  app.delete('/_session', (req, res) => {
    setCookie(res, '', 0);
    sendJson(res, 200, { ok: true });
  });
}

module.exports = { Auth, requireAdmin, sessionRoutes };
