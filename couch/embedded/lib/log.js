'use strict';
// Logs go to stderr only: stdout carries exactly one line, the ready line the
// launcher waits for. Callers never pass request headers or bodies here, so
// passwords and Authorization headers cannot reach the log.

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };

function createLogger(level) {
  const threshold = LEVELS[level] || LEVELS.info;
  const write = (name) => (message) => {
    if (LEVELS[name] >= threshold) {
      process.stderr.write(new Date().toISOString() + ' ' + name.toUpperCase() + ' ' +
        message + '\n');
    }
  };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
  };
}

module.exports = { createLogger };
