'use strict';
// Design-document JavaScript (map, reduce, filter functions), compiled once.
//
// WHY: pouchdb-mapreduce builds a source string and calls
// vm.runInNewContext() for every document, in strict mode. A 10k-document
// index took ~6.5 s and ~1 GB RSS, and strict mode turned an undeclared
// variable (legal in CouchDB's sloppy-mode couchjs) into an exception that
// silently dropped the document. Here each function source is compiled once,
// in sloppy mode, inside its own persistent vm context, and cached by source
// text (a new design-doc version has new source, hence a new entry).
//
// Documents enter the sandbox as JSON text and rows leave it as JSON text:
// the function sees plain objects of its own realm (so `x.constructor ===
// Array`, `instanceof Object` behave as in couchjs), cannot mutate PouchDB's
// copy, and emitted values are serialised exactly as couchjs would.

const vm = require('vm');

const CACHE_LIMIT = 256;
const cache = new Map(); // "kind\0source" -> compiled function (LRU order)

// Helpers couchjs provides to design functions, defined inside the sandbox so
// they belong to its realm.
const PRELUDE = `
var __rows = [];
function emit(key, value) { __rows.push([key, value]); }
function log(message) {
  __log(typeof message === 'string' ? message : JSON.stringify(message));
}
function isArray(value) { return Array.isArray(value); }
function toJSON(value) { return JSON.stringify(value); }
function sum(values) {
  var total = 0;
  for (var i = 0; i < values.length; i++) { total += values[i]; }
  return total;
}
`;

// Each kind gets a small entry point that moves data in and out as JSON.
const ENTRY_POINTS = {
  map: `(function (docJson) {
    __rows = [];
    try { __fn(JSON.parse(docJson)); return JSON.stringify(__rows); }
    finally { __rows = []; }
  })`,
  reduce: `(function (keysJson, valuesJson, rereduce) {
    var result = __fn(JSON.parse(keysJson), JSON.parse(valuesJson), rereduce);
    return result === undefined ? 'null' : JSON.stringify(result);
  })`,
  filter: `(function (docJson, reqJson) {
    return !!__fn(JSON.parse(docJson), JSON.parse(reqJson));
  })`,
};

class CompilationError extends Error {
  constructor(message) {
    super(message);
    this.status = 400;
    this.error = 'compilation_error';
    this.reason = message;
  }
}

let logSink = function () {};

function setLogSink(sink) {
  logSink = sink;
}

function stripTrailingSemicolon(source) {
  return source.replace(/;\s*$/, '');
}

function compileEntry(kind, source) {
  const context = vm.createContext({ __log: (msg) => logSink(msg) });
  const code = PRELUDE +
    '\nvar __fn = (' + stripTrailingSemicolon(source) + '\n);\n' +
    'if (typeof __fn !== "function") { throw new Error("not a function"); }\n' +
    ENTRY_POINTS[kind];
  try {
    return new vm.Script(code, { filename: kind + '-function.js' }).runInContext(context);
  } catch (err) {
    throw new CompilationError(
      'Expression does not eval to a function. (' + source.slice(0, 200) + '): ' +
      err.message);
  }
}

// Returns the compiled entry point for a function source, compiling it on
// first use. Throws CompilationError for code that is not a function.
function compiled(kind, source) {
  if (typeof source !== 'string') {
    throw new CompilationError('Function source must be a string, got ' + typeof source);
  }
  const key = kind + '\0' + source;
  let fn = cache.get(key);
  if (fn) {
    cache.delete(key); // re-insert: most recently used goes last
  } else {
    fn = compileEntry(kind, source);
    if (cache.size >= CACHE_LIMIT) {
      cache.delete(cache.keys().next().value);
    }
  }
  cache.set(key, fn);
  return fn;
}

// Runs a map function over one doc and returns [[key, value], ...]. Throws
// what the map function throws; callers decide what a failure means.
function runMap(source, doc) {
  return JSON.parse(compiled('map', source)(JSON.stringify(doc)));
}

function runReduce(source, keys, values, rereduce) {
  return JSON.parse(compiled('reduce', source)(
    JSON.stringify(keys), JSON.stringify(values), !!rereduce));
}

function runFilter(source, doc, req) {
  return compiled('filter', source)(JSON.stringify(doc), JSON.stringify(req));
}

module.exports = {
  CompilationError,
  compiled,
  runMap,
  runReduce,
  runFilter,
  setLogSink,
};
