'use strict';
// connpool for Node: a thin binding of libconnpool through koffi. See README.md.
const native = require('./native');
const { Pool, Connection } = require('./pool');
const errors = require('./errors');
const types = require('./types');

module.exports = {
  Pool,
  Connection,
  ...errors,
  /** The column type names (result.types), by pool_type code. */
  TYPE_NAMES: types.TYPE_NAMES,
  /** The converters used unless the parsers option replaces them, by type name. */
  DEFAULT_PARSERS: types.DEFAULT_PARSERS,
  /** The library's version ("1.1.0") and the name it was loaded by. */
  version: () => native.pool_version_string(),
  library: native.library,
};
