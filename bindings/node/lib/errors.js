'use strict';
// ConnpoolError and one subclass per status code a program may act on. Every error carries
// .code (the POOL_E* number), .codeName ("POOL_ETIMEDOUT", from pool_error_name()), .message
// (pool_last_error(), read on the thread that made the failing call, right after it) and
// .sqlstate (pool_last_sqlstate(): five characters for a failed statement, else "").

const CODES = {
  POOL_ERROR: -1, POOL_EINVAL: -2, POOL_ENOMEM: -3, POOL_ETIMEDOUT: -4, POOL_ECONNECT: -5,
  POOL_EBUSY: -6, POOL_ECLOSED: -7, POOL_ESTATE: -8, POOL_ENOTSUP: -9, POOL_EFORKED: -10,
  POOL_ETOOMANYWAITERS: -11, POOL_ERANGE: -12, POOL_EQUERY: -13, POOL_ETYPE: -14,
};

class ConnpoolError extends Error {
  constructor(code, codeName, message, sqlstate = '') {
    super(message || codeName);
    this.name = this.constructor.name;
    this.code = code;
    this.codeName = codeName;
    this.sqlstate = sqlstate || '';
  }
}

const subclass = (name) => ({ [name]: class extends ConnpoolError {} })[name];
const ERRORS = {
  PoolTimeoutError: subclass('PoolTimeoutError'),   // POOL_ETIMEDOUT: the pool is exhausted
  ConnectError: subclass('ConnectError'),           // POOL_ECONNECT: the database cannot be reached
  QueryError: subclass('QueryError'),               // POOL_EQUERY: the statement failed (.sqlstate)
  PoolClosedError: subclass('PoolClosedError'),     // POOL_ECLOSED
  TooManyWaitersError: subclass('TooManyWaitersError'), // POOL_ETOOMANYWAITERS
  InvalidArgumentError: subclass('InvalidArgumentError'), // POOL_EINVAL
  StateError: subclass('StateError'),               // POOL_ESTATE: not checked out (any more)
};
const BY_CODE = {
  [CODES.POOL_ETIMEDOUT]: ERRORS.PoolTimeoutError,
  [CODES.POOL_ECONNECT]: ERRORS.ConnectError,
  [CODES.POOL_EQUERY]: ERRORS.QueryError,
  [CODES.POOL_ECLOSED]: ERRORS.PoolClosedError,
  [CODES.POOL_ETOOMANYWAITERS]: ERRORS.TooManyWaitersError,
  [CODES.POOL_EINVAL]: ERRORS.InvalidArgumentError,
  [CODES.POOL_ESTATE]: ERRORS.StateError,
};

/** The error for a failed call: {rc, codeName, message, sqlstate}, as read on its thread. */
function makeError({ rc, codeName, message, sqlstate }) {
  const Class = BY_CODE[rc] || ConnpoolError;
  return new Class(rc, codeName, message, sqlstate);
}

module.exports = { CODES, ConnpoolError, ...ERRORS, makeError };
