'use strict';
// Values between JS and the C API's text forms (include/connpool.h, "typed results"):
// parameters to pool_param_t entries, and pool_result_read()'s buffer to rows of JS values.
// Runs on the main thread: the worker sends the buffer as it is (transferred, not copied),
// and decoding it here costs less than copying rows of JS values between threads would.

// pool_type, by code. Append-only, as in the header.
const TYPE_NAMES = [
  'unknown', 'bool', 'int16', 'int32', 'int64', 'float32', 'float64', 'numeric', 'text',
  'bytea', 'date', 'time', 'timestamp', 'timestamptz', 'interval', 'uuid', 'json', 'array',
];
const T = Object.fromEntries(TYPE_NAMES.map((name, code) => [name.toUpperCase(), code]));

// ---------------------------------------------------------------- results

// "YYYY-MM-DD[ HH:MM:SS[.ffffff]][+HH[:MM[:SS]]][ BC]", as PostgreSQL prints dates and
// timestamps with DateStyle ISO (the default); "T" is accepted in place of the space.
const DATE_RE = /^(\d{4,})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?)?(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?|Z)?( BC)?$/;

/**
 * A date or timestamp's text as a Date. Without an offset (date, timestamp, and psqlODBC's
 * timestamptz) the wall time is read as UTC; with one, the instant it names. Microseconds
 * beyond the millisecond are dropped. "infinity" and "-infinity" give Infinity and -Infinity
 * (as node-postgres does); any other text that does not parse (another DateStyle) is
 * returned as it is.
 */
function parseDate(s) {
  const m = DATE_RE.exec(s);
  if (!m) {
    if (s === 'infinity') return Infinity;
    if (s === '-infinity') return -Infinity;
    return s;
  }
  let year = Number(m[1]);
  if (m[12]) year = 1 - year; // 1 BC is year 0
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  const d = new Date(0);
  d.setUTCFullYear(year, Number(m[2]) - 1, Number(m[3])); // not Date.UTC: years 0-99 stay
  d.setUTCHours(m[4] ? Number(m[4]) : 0, m[5] ? Number(m[5]) : 0, m[6] ? Number(m[6]) : 0, ms);
  if (m[8]) {
    const offset = (Number(m[9]) * 3600 + Number(m[10] || 0) * 60 + Number(m[11] || 0)) * 1000;
    d.setTime(d.getTime() - (m[8] === '-' ? -offset : offset));
  }
  return d;
}

function parseInt64(s) {
  try {
    return BigInt(s);
  } catch {
    return s; // SQLite: a value of another kind stored in an INTEGER column
  }
}

const TRUE = new Set(['t', 'true', '1', 'y', 'yes', 'on', 'T', 'TRUE', 'True']);

/**
 * The default converter of each pool_type, from its text (bytea: from a Buffer of its raw
 * bytes). A missing entry means the text itself. Override any of them with the `parsers`
 * option ({int64: Number}, {json: (s) => s}, {timestamp: (s) => s}).
 */
const DEFAULT_PARSERS = {
  bool: (s) => s === 't' || (s !== 'f' && TRUE.has(s)),
  int16: Number,
  int32: Number,
  int64: parseInt64,
  float32: Number, // "Infinity", "-Infinity" and "NaN" read as those numbers
  float64: Number,
  // numeric: the exact decimal text
  bytea: null, // a Buffer of the raw bytes (handled below)
  date: parseDate,
  timestamp: parseDate,
  timestamptz: parseDate,
  json: JSON.parse,
};

/** The parsers to use: the defaults with `overrides` ({typeName: fn(text)}) on top. */
function parsersWith(base, overrides) {
  if (overrides === undefined || overrides === null) return base;
  if (typeof overrides !== 'object') throw new TypeError('parsers: an object of type name -> function(text)');
  const out = { ...base };
  for (const [name, fn] of Object.entries(overrides)) {
    if (!TYPE_NAMES.includes(name)) throw new TypeError(`parsers: "${name}" is not a type (${TYPE_NAMES.join(', ')})`);
    if (fn !== null && typeof fn !== 'function') throw new TypeError(`parsers.${name}: a function, or null for the text`);
    out[name] = fn;
  }
  return out;
}

/**
 * A worker's packed result ({nrows, columns, types, backendTypes, buf, lengths, affected})
 * as {rows, columns, types, backendTypes, affected}: rows of JS values, types by name.
 */
function decode(packed, parsers) {
  const { nrows, columns, types, backendTypes, affected } = packed;
  const ncols = columns.length;
  const conv = types.map((t) => parsers[TYPE_NAMES[t] || 'unknown'] || null);
  const binary = types.map((t) => t === T.BYTEA);
  const rows = new Array(nrows);
  if (nrows > 0 && ncols > 0) {
    const bytes = Buffer.from(packed.buf);
    const lens = lengthsOf(packed.lengths, nrows * ncols);
    const step = lens.step;
    // Without a bytea column, every value is UTF-8 text: decode the whole buffer once. If it
    // is all ASCII (as many results are: numbers, booleans, dates), characters and bytes line
    // up, so values are sliced from that string, and int16/int32/bool (with the default
    // parsers) read from the bytes without a string at all. Otherwise split it at the NULs
    // (PostgreSQL's text cannot hold a NUL; a text with one, as SQLite allows, shows as a
    // count that does not match: then value by value, by lengths).
    let text = null;
    let parts = null;
    if (!binary.includes(true)) {
      text = bytes.toString('utf8');
      if (text.length !== bytes.length) {
        parts = text.split('\0');
        if (parts.length !== nrows * ncols + 1) parts = null;
        text = null;
      }
    }
    const kind = types.map((t, j) => {
      if (text === null) return 0;
      if ((t === T.INT16 || t === T.INT32) && conv[j] === DEFAULT_PARSERS[TYPE_NAMES[t]]) return 1;
      if (t === T.BOOL && conv[j] === DEFAULT_PARSERS.bool) return 2;
      return 0;
    });
    let k = 0;
    let offset = 0;
    for (let i = 0; i < nrows; i++) {
      const row = new Array(ncols);
      for (let j = 0; j < ncols; j++, k++) {
        const len = lens[k * step];
        if (len < 0) {
          row[j] = null;
          offset += 1;
          continue;
        }
        let v;
        if (kind[j] === 1) {
          v = intAt(bytes, offset, len);
        } else if (kind[j] === 2) {
          v = bytes[offset] === 0x74; // "t"
        } else if (binary[j]) {
          v = Buffer.from(bytes.subarray(offset, offset + len)); // a copy: the block is freed
          if (conv[j]) v = conv[j](v);
        } else {
          if (text !== null) v = text.slice(offset, offset + len);
          else v = parts !== null ? parts[k] : bytes.toString('utf8', offset, offset + len);
          if (conv[j]) v = conv[j](v);
        }
        row[j] = v;
        offset += len + 1;
      }
      rows[i] = row;
    }
  } else {
    for (let i = 0; i < nrows; i++) rows[i] = new Array(ncols).fill(null);
  }
  return { rows, columns, types: types.map((t) => TYPE_NAMES[t] || 'unknown'), backendTypes, affected };
}

// An int16 or int32's decimal text, read from its bytes (PostgreSQL prints it as -?[0-9]+).
function intAt(bytes, offset, len) {
  let i = offset;
  const end = offset + len;
  const negative = bytes[i] === 0x2d;
  if (negative) i++;
  let n = 0;
  for (; i < end; i++) {
    const d = bytes[i] - 0x30;
    if (d < 0 || d > 9) return Number(bytes.toString('latin1', offset, end)); // not plain digits
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// The int64_t lengths as Numbers, value k at [k * step]. On a little-endian machine the low
// 32 bits of each are read as an int32 in place (-1 stays -1; no single value reaches 2 GiB
// in a JS string or Buffer anyway).
function lengthsOf(buffer, n) {
  const out = LITTLE_ENDIAN ? new Int32Array(buffer, 0, 2 * n) : Array.from(new BigInt64Array(buffer, 0, n), Number);
  out.step = LITTLE_ENDIAN ? 2 : 1;
  return out;
}

// ---------------------------------------------------------------- parameters

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** A Date as timestamptz text in UTC: "2024-05-06 07:08:09.123+00" (" BC" for years <= 0). */
function dateText(d) {
  const t = d.getTime();
  if (Number.isNaN(t)) throw new TypeError('an invalid Date');
  const y = d.getUTCFullYear();
  const text = `${pad(y > 0 ? y : 1 - y, 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}+00`;
  return y > 0 ? text : `${text} BC`;
}

// An array as PostgreSQL's array literal: every element quoted, NULL for null/undefined.
function arrayLiteral(a) {
  const items = a.map((e) => {
    if (e === null || e === undefined) return 'NULL';
    if (Array.isArray(e)) return arrayLiteral(e);
    let text;
    if (e instanceof Date) text = dateText(e);
    else if (typeof e === 'boolean') text = e ? 't' : 'f';
    else if (ArrayBuffer.isView(e)) text = `\\x${Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('hex')}`;
    else if (typeof e === 'object') text = JSON.stringify(e);
    else text = String(e);
    return `"${text.replace(/[\\"]/g, '\\$&')}"`;
  });
  return `{${items.join(',')}}`;
}

/**
 * A JS value as a parameter for the worker: {v: text | Uint8Array | null, t: pool_type}.
 *   null, undefined   SQL NULL
 *   Buffer, Uint8Array (any TypedArray or ArrayBuffer)   bytea, binary
 *   boolean           bool ("t"/"f")
 *   bigint            int64
 *   number            int64 if a safe integer, else float64 ("Infinity", "NaN" included)
 *   Date              timestamptz text in UTC, of no declared type (see README: exact in a
 *                     timestamp and a timestamptz column alike)
 *   string            text of no declared type: the server infers it, as before 1.2
 *   Array             a PostgreSQL array literal ('{1,"a b",NULL}'), of no declared type
 *   other objects     JSON text, of no declared type
 */
function param(v, i) {
  if (v === null || v === undefined) return { v: null, t: T.UNKNOWN };
  switch (typeof v) {
    case 'string': return { v, t: T.UNKNOWN };
    case 'boolean': return { v: v ? 't' : 'f', t: T.BOOL };
    case 'bigint': return { v: v.toString(), t: T.INT64 };
    case 'number':
      if (Number.isSafeInteger(v)) return { v: String(v), t: T.INT64 };
      return { v: String(v), t: T.FLOAT64 }; // -0, 1.5, 1e21, Infinity, NaN
    case 'object':
      if (v instanceof Date) return { v: dateText(v), t: T.UNKNOWN };
      if (ArrayBuffer.isView(v)) return { v: new Uint8Array(v.buffer, v.byteOffset, v.byteLength), t: T.BYTEA };
      if (v instanceof ArrayBuffer) return { v: new Uint8Array(v), t: T.BYTEA };
      if (Array.isArray(v)) return { v: arrayLiteral(v), t: T.UNKNOWN };
      return { v: JSON.stringify(v), t: T.UNKNOWN };
    default:
      throw new TypeError(`query parameter ${i + 1}: cannot send a ${typeof v}`);
  }
}

module.exports = { TYPE_NAMES, T, DEFAULT_PARSERS, parsersWith, parseDate, dateText, decode, param };
