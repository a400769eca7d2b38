'use strict';
// Request bodies for the routes this server implements itself.
//
// WHY not express-pouchdb's parser: CouchDB parses the body as JSON whatever
// the Content-Type says (curl -d sends x-www-form-urlencoded), and answers
// bad JSON with 400 bad_request.

const bodyParser = require('body-parser');
const { HttpError } = require('./http');

// CouchDB 3's max_document_size is 8 MB; bulk requests may be larger.
const MAX_BODY = '64mb';
const textParser = bodyParser.text({ type: () => true, limit: MAX_BODY });

function readText(req, res) {
  return new Promise((resolve, reject) => {
    textParser(req, res, (err) => {
      if (err && err.type === 'entity.too.large') {
        reject(new HttpError(413, 'too_large', 'the request entity is too large'));
      } else if (err) {
        reject(new HttpError(400, 'bad_request', err.message));
      } else {
        resolve(typeof req.body === 'string' ? req.body : '');
      }
    });
  });
}

// Returns the parsed body, or undefined for an empty body.
async function readJson(req, res) {
  const text = await readText(req, res);
  if (!text.trim()) {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, 'bad_request', 'invalid UTF-8 JSON');
  }
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

async function readJsonObject(req, res, what) {
  const body = await readJson(req, res);
  if (!isPlainObject(body)) {
    throw new HttpError(400, 'bad_request', (what || 'Request body') + ' must be a JSON object');
  }
  return body;
}

module.exports = { readJson, readJsonObject, isPlainObject };
