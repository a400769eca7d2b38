'use strict';
// PouchDB's view engine (pouchdb-abstract-mapreduce) with our own map and
// reduce function runners in place of pouchdb-mapreduce's per-document VM.
// Same index storage name ("mrviews") as pouchdb-mapreduce, so indexes built
// by either are interchangeable.

const createAbstractMapReduce = require('pouchdb-abstract-mapreduce');
const { BuiltInError, NotFoundError } = require('pouchdb-mapreduce-utils');
const sandbox = require('./sandbox');

let warn = function () {};

function setWarn(fn) {
  warn = fn;
}

// A map function that throws for one document must drop only that
// document's rows for that view (CouchDB semantics). Rows are collected in
// the sandbox and handed to PouchDB's emit only after the function returned,
// so a throw half-way leaves no partial rows. The error is logged, not
// re-thrown: PouchDB would re-emit it as an 'error' event on the database.
function mapper(mapFun, emit) {
  if (typeof mapFun === 'function' && mapFun.length === 2) {
    // temp views / in-process callers pass a real function(doc, emit)
    return (doc) => mapFun(doc, emit);
  }
  const source = String(mapFun);
  sandbox.compiled('map', source); // surface compilation errors to the query
  return function (doc) {
    let rows;
    try {
      rows = sandbox.runMap(source, doc);
    } catch (err) {
      warn('map function threw for doc ' + JSON.stringify(doc._id) + ': ' +
        (err && err.message) + ' (doc skipped for this view)');
      return;
    }
    for (let i = 0; i < rows.length; i++) {
      emit(rows[i][0], rows[i][1]);
    }
  };
}

function builtInError(name) {
  return new BuiltInError('The ' + name + ' function requires that map values be numbers, ' +
    'arrays of numbers, or objects of numbers');
}

// _sum as CouchDB: numbers, arrays of numbers (element-wise) and objects of
// numbers (key-wise) may be summed.
function sumValues(values) {
  let total = 0;
  for (const value of values) {
    total = addSum(total, value);
  }
  return total;
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function addSum(total, value) {
  if (typeof value === 'number' && typeof total === 'number') {
    return total + value;
  }
  if (Array.isArray(value) || Array.isArray(total)) {
    return addArrays(total, value);
  }
  if (isPlainObject(value) && (total === 0 || isPlainObject(total))) {
    const out = Object.assign({}, total || {});
    for (const key of Object.keys(value)) {
      out[key] = addSum(out[key] === undefined ? 0 : out[key], value[key]);
    }
    return out;
  }
  throw builtInError('_sum');
}

function addArrays(total, value) {
  const left = Array.isArray(total) ? total : [total];
  const right = Array.isArray(value) ? value : [value];
  const out = [];
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const a = left[i] === undefined ? 0 : left[i];
    const b = right[i] === undefined ? 0 : right[i];
    if (typeof a !== 'number' || typeof b !== 'number') {
      throw builtInError('_sum');
    }
    out.push(a + b);
  }
  return out;
}

function statsOf(values) {
  const stats = { sum: 0, count: 0, min: Infinity, max: -Infinity, sumsqr: 0 };
  for (const v of values) {
    if (typeof v !== 'number') {
      throw builtInError('_stats');
    }
    stats.sum += v;
    stats.count += 1;
    stats.min = Math.min(stats.min, v);
    stats.max = Math.max(stats.max, v);
    stats.sumsqr += v * v;
  }
  return stats;
}

function countDistinct(keys) {
  return new Set(keys.map((k) => JSON.stringify(k[0]))).size;
}

const BUILT_INS = {
  _sum: (keys, values) => sumValues(values),
  _count: (keys, values) => values.length,
  _stats: (keys, values) => statsOf(values),
  _approx_count_distinct: (keys) => countDistinct(keys),
};

function reducer(reduceFun) {
  const source = String(reduceFun).trim();
  if (source[0] === '_') {
    const builtIn = BUILT_INS[source];
    if (!builtIn) {
      throw new BuiltInError(source + ' is not a supported reduce function.');
    }
    return builtIn;
  }
  sandbox.compiled('reduce', source);
  return (keys, values, rereduce) => sandbox.runReduce(source, keys, values, rereduce);
}

function ddocValidator(ddoc, viewName) {
  const view = ddoc.views && ddoc.views[viewName];
  if (!view || typeof view.map !== 'string') {
    throw new NotFoundError('missing_named_view');
  }
}

const abstract = createAbstractMapReduce('mrviews', mapper, reducer, ddocValidator);

const plugin = {
  query(fun, opts, callback) {
    return abstract.query.call(this, fun, opts, callback);
  },
  // express-pouchdb calls viewCleanup(opts, callback)
  viewCleanup(opts, callback) {
    return abstract.viewCleanup.call(this, typeof opts === 'function' ? opts : callback);
  },
};

// Compiles every JavaScript function of a design document, so a syntax error
// is rejected at save time (CouchDB 3 does the same) instead of failing every
// later query.
function validateDesignDoc(doc) {
  if (doc.language && doc.language !== 'javascript') {
    return;
  }
  for (const view of Object.values(doc.views || {})) {
    if (view && typeof view.map === 'string') {
      sandbox.compiled('map', view.map);
    }
    if (view && typeof view.reduce === 'string' && view.reduce.trim()[0] !== '_') {
      sandbox.compiled('reduce', view.reduce);
    }
  }
  for (const source of Object.values(doc.filters || {})) {
    sandbox.compiled('filter', source);
  }
}

module.exports = { plugin, setWarn, validateDesignDoc };
