'use strict';
// connpool for Node: a thin binding of libconnpool through koffi. See README.md.
const native = require('./native');
const { Pool, Connection } = require('./pool');
const errors = require('./errors');

module.exports = {
  Pool,
  Connection,
  ...errors,
  /** The library's version ("1.1.0") and the name it was loaded by. */
  version: () => native.pool_version_string(),
  library: native.library,
};
