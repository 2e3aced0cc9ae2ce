#include "scrub.hh"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>

namespace connpool {

namespace {

const char mask[] = "****";

bool starts_with_nocase(const std::string &s, size_t at, const char *word) {
  size_t n = std::strlen(word);
  if (at + n > s.size()) return false;
  for (size_t i = 0; i < n; i++)
    if (std::tolower(static_cast<unsigned char>(s[at + i])) != word[i]) return false;
  return true;
}

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// The value after key=: to the closing quote, or to a separator. In an ODBC {braced} value
// "}}" stands for one "}"; in a libpq 'quoted' one a backslash escapes the next character.
size_t value_end(const std::string &s, size_t at) {
  if (at < s.size() && s[at] == '{') {
    for (size_t i = at + 1; i < s.size(); i++) {
      if (s[i] != '}') continue;
      if (i + 1 < s.size() && s[i + 1] == '}') i++;
      else return i + 1;
    }
    return s.size();
  }
  if (at < s.size() && (s[at] == '\'' || s[at] == '"')) {
    for (size_t i = at + 1; i < s.size(); i++) {
      if (s[i] == '\\' && i + 1 < s.size()) i++;
      else if (s[i] == s[at]) return i + 1;
    }
    return s.size();
  }
  size_t i = at;
  while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != ';' &&
         s[i] != '&' && s[i] != ',' && s[i] != '"' && s[i] != '\'')
    i++;
  return i;
}

// If a password key (password= or pwd=, any case, spaces allowed around "=") starts at i,
// returns where its value starts; else npos.
size_t password_value_at(const std::string &s, size_t i) {
  static const char *const keys[] = {"password", "pwd"};
  if (i > 0 && is_word_char(s[i - 1])) return std::string::npos;
  for (const char *key : keys) {
    if (!starts_with_nocase(s, i, key)) continue;
    size_t j = i + std::strlen(key);
    while (j < s.size() && s[j] == ' ') j++;
    if (j >= s.size() || s[j] != '=') continue;
    j++;
    while (j < s.size() && s[j] == ' ') j++;
    return j;
  }
  return std::string::npos;
}

void mask_key_values(std::string &s) {
  for (size_t i = 0; i < s.size(); i++) {
    size_t j = password_value_at(s, i);
    if (j == std::string::npos) continue;
    size_t end = value_end(s, j);
    // Whatever sticks to a closing quote goes too ('a b'\' is no value libpq accepts): left
    // behind, it would read as an unquoted value the next time, and scrubbing must be stable.
    if (end > j && (s[j] == '\'' || s[j] == '"' || s[j] == '{'))
      while (end < s.size() && !std::isspace(static_cast<unsigned char>(s[end])) && s[end] != ';' &&
             s[end] != '&')
        end++;
    if (end > j) s.replace(j, end - j, mask);
    i = j;
  }
}

void mask_uri_userinfo(std::string &s) {
  for (size_t at = s.find("://"); at != std::string::npos; at = s.find("://", at + 3)) {
    size_t start = at + 3;
    size_t end = start;
    while (end < s.size() && s[end] != '/' && s[end] != '@' &&
           !std::isspace(static_cast<unsigned char>(s[end])))
      end++;
    if (end >= s.size() || s[end] != '@') continue;
    size_t colon = s.find(':', start);
    if (colon == std::string::npos || colon > end) continue;
    s.replace(colon + 1, end - colon - 1, mask);
  }
}

// libpq's keywords (PQconndefaults of libpq 15). After an unquoted password with a space, only
// one of them begins the next pair: any other "word=" is part of the password, which libpq
// quotes back ("invalid connection option"). A keyword a newer libpq adds is missing here, which
// masks too much, never too little.
bool is_libpq_keyword(const std::string &word) {
  static const char *const keywords[] = {
      "service", "user", "password", "passfile", "channel_binding", "connect_timeout", "dbname",
      "host", "hostaddr", "port", "client_encoding", "options", "application_name",
      "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
      "keepalives_count", "tcp_user_timeout", "sslmode", "sslcompression", "sslcert", "sslkey",
      "sslpassword", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer",
      "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode", "krbsrvname",
      "gsslib", "replication", "target_session_attrs", "requiressl"};
  for (const char *keyword : keywords)
    if (word == keyword) return true;
  return false;
}

// Adds a value and, if it has several words, each word of 3 characters or more: a driver that
// cannot parse an unquoted password with a space quotes only one of its words back (shorter
// words would mask every "2" of a message and reveal little).
void add_secret(std::vector<std::string> &out, const std::string &value) {
  if (value.empty()) return;
  out.push_back(value);
  size_t start = 0;
  while (start < value.size()) {
    size_t end = value.find_first_of(" \t", start);
    if (end == std::string::npos) end = value.size();
    if (end - start >= 3 && end - start < value.size())
      out.push_back(value.substr(start, end - start));
    // libpq reads a later word "abc=..." as a key and quotes "abc" (invalid connection option).
    size_t eq = value.find('=', start);
    if (start > 0 && eq < end && eq - start >= 3) out.push_back(value.substr(start, eq - start));
    start = end + 1;
  }
}

// "{ab}}cd}" holds the password "ab}cd": the driver decodes it, and its messages show that.
std::string unbraced(const std::string &inner) {
  std::string out;
  for (size_t i = 0; i < inner.size(); i++) {
    out += inner[i];
    if (inner[i] == '}' && i + 1 < inner.size() && inner[i + 1] == '}') i++;
  }
  return out;
}

// The shortest piece of a secret masked wherever it appears (shorter ones only whole, or in
// quotes): shorter runs would mask ordinary words of messages, for little secrecy.
constexpr size_t min_piece = 4;

uint32_t gram_at(const std::string &s, size_t at) {
  uint32_t g = 0;
  for (size_t k = 0; k < min_piece; k++) g = g << 8 | static_cast<unsigned char>(s[at + k]);
  return g;
}

}  // namespace

std::vector<std::string> secrets_in_connection_string(const std::string &s) {
  std::vector<std::string> out;
  bool odbc = s.compare(0, 5, "odbc:") == 0;
  size_t scheme = s.find("://");
  if (scheme != std::string::npos) {
    size_t start = scheme + 3;
    // Like libpq: the userinfo ends at the first "@" before any "/" ("?" may be in a password).
    size_t at = s.find_first_of("@/", start);
    if (at != std::string::npos && s[at] == '@') {
      size_t colon = s.find(':', start);
      if (colon < at) add_secret(out, s.substr(colon + 1, at - colon - 1));
    }
    // A password left unencoded may hold '@' and '/': a host never holds '@', so the user
    // info may reach the last '@' before the query.
    size_t last_at = s.rfind('@', s.find('?', start));
    size_t colon = s.find(':', start);
    if (last_at != std::string::npos && last_at > start && colon < last_at && last_at != at)
      add_secret(out, s.substr(colon + 1, last_at - colon - 1));
  }
  for (size_t i = 0; i < s.size(); i++) {
    size_t j = password_value_at(s, i);
    if (j == std::string::npos) continue;
    // Quoted: libpq key=value quotes with '...', ODBC with {...}; a URI has no quotes.
    char quote = odbc ? '{' : scheme != std::string::npos ? '\0' : '\'';
    if (j < s.size() && quote && s[j] == quote) {
      size_t end = value_end(s, j);
      std::string inner = s.substr(j + 1, end > j + 1 ? end - j - 2 : 0);
      add_secret(out, inner);
      if (s[j] == '{' && inner.find("}}") != std::string::npos) add_secret(out, unbraced(inner));
      continue;
    }
    // Unquoted: to the grammar's separator (see scrub.hh). In a URI's query, an "&" not
    // followed by a libpq keyword and "=" is the password's own: libpq splits there and
    // quotes the rest back.
    size_t end = j;
    auto ends_uri_value = [&](size_t at) {
      if (scheme == std::string::npos || s[at] != '&') return false;
      size_t k = at + 1;
      while (k < s.size() && is_word_char(s[k])) k++;
      return k < s.size() && s[k] == '=' && is_libpq_keyword(s.substr(at + 1, k - at - 1));
    };
    while (end < s.size() && !(odbc ? s[end] == ';' : ends_uri_value(end))) {
      if (!odbc && std::isspace(static_cast<unsigned char>(s[end]))) {
        size_t k = end + 1;
        while (k < s.size() && is_word_char(s[k])) k++;
        std::string word = s.substr(end + 1, k - end - 1);
        while (k < s.size() && std::isspace(static_cast<unsigned char>(s[k]))) k++;
        if (k < s.size() && s[k] == '=' && is_libpq_keyword(word)) break;
      }
      end++;
    }
    std::string value = s.substr(j, end - j);
    while (!value.empty() && value.back() == ' ') value.pop_back();
    add_secret(out, value);
    // libpq itself splits a URI's query at every "&": what it takes for the password is the
    // first piece, and the others are what it quotes back.
    for (size_t from = 0, amp; scheme != std::string::npos && from < value.size(); from = amp + 1) {
      amp = value.find('&', from);
      if (amp == std::string::npos) amp = value.size();
      if (amp - from >= 3 && amp - from < value.size()) add_secret(out, value.substr(from, amp - from));
    }
  }
  return out;
}

std::string scrub(std::string text, const std::vector<std::string> &secrets) {
  // Every occurrence of every secret, and every run of min_piece or more characters that is a
  // piece of one and stands between the text's first and last double quote, is found in the
  // original text and masked at once. Pieces: a parser misled by a password's own characters
  // (an unencoded "@", "&" or quote) quotes back the token it failed on, a piece of the
  // password, whatever quotes it holds itself. Only there: elsewhere a message's own words
  // ("unterminated" and a password "hunter2") would be masked. All at once: masking one secret
  // first would break up an overlapping longer one, leaving the rest of it in clear.
  size_t quoted_begin = text.find('"'), quoted_end = text.rfind('"');
  if (quoted_begin == std::string::npos) quoted_begin = quoted_end = 0;
  std::vector<bool> secret_at(text.size(), false);
  for (const std::string &secret : secrets) {
    if (secret.empty()) continue;
    for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 1))
      std::fill(secret_at.begin() + at, secret_at.begin() + at + secret.size(), true);
    if (secret.size() < min_piece || quoted_end <= quoted_begin) continue;
    // A run of min_piece or more characters shared with the secret is covered by the
    // min_piece-grams it is made of: mark every gram of the text that is a gram of the secret
    // (sorted, so linear-logarithmic however long the text).
    std::vector<uint32_t> grams;
    for (size_t j = 0; j + min_piece <= secret.size(); j++) grams.push_back(gram_at(secret, j));
    std::sort(grams.begin(), grams.end());
    for (size_t i = quoted_begin; i + min_piece <= quoted_end; i++)
      if (std::binary_search(grams.begin(), grams.end(), gram_at(text, i)))
        std::fill(secret_at.begin() + long(i), secret_at.begin() + long(i + min_piece), true);
  }
  std::string masked;
  for (size_t i = 0; i < text.size(); i++) {
    if (!secret_at[i]) masked += text[i];
    else if (i == 0 || !secret_at[i - 1]) masked += mask;
  }
  text = std::move(masked);
  // A parser that splits a string where the password's own characters mislead it quotes
  // the token it fails on, a piece of the password: mask a quoted piece of any secret.
  for (size_t open = text.find('"'); open != std::string::npos; open = text.find('"', open + 1)) {
    size_t close = text.find('"', open + 1);
    if (close == std::string::npos) break;
    std::string inner = text.substr(open + 1, close - open - 1);
    bool piece = false;
    for (const std::string &secret : secrets)
      piece = piece || (inner.size() >= 3 && secret.find(inner) != std::string::npos);
    if (piece) {
      text.replace(open + 1, inner.size(), mask);
      close = open + 1 + sizeof mask - 1;
    }
    open = close;
  }
  mask_key_values(text);
  mask_uri_userinfo(text);
  return text;
}

}  // namespace connpool
