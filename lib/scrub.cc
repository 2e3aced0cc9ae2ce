#include "scrub.hh"

#include <cctype>
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
    if (end > j) s.replace(j, end - j, mask);
    i = j;
  }
}

void mask_uri_userinfo(std::string &s) {
  for (size_t at = s.find("://"); at != std::string::npos; at = s.find("://", at + 3)) {
    size_t start = at + 3;
    size_t end = start;
    while (end < s.size() && s[end] != '/' && s[end] != '@' && s[end] != '?' &&
           !std::isspace(static_cast<unsigned char>(s[end])))
      end++;
    if (end >= s.size() || s[end] != '@') continue;
    size_t colon = s.find(':', start);
    if (colon == std::string::npos || colon > end) continue;
    s.replace(colon + 1, end - colon - 1, mask);
  }
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

}  // namespace

std::vector<std::string> secrets_in_connection_string(const std::string &s) {
  std::vector<std::string> out;
  size_t scheme = s.find("://");
  if (scheme != std::string::npos) {
    size_t start = scheme + 3;
    size_t at = s.find_first_of("@/?", start);
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
    if (j < s.size() && (s[j] == '\'' || s[j] == '"' || s[j] == '{')) {
      size_t end = value_end(s, j);
      std::string inner = s.substr(j + 1, end > j + 1 ? end - j - 2 : 0);
      add_secret(out, inner);
      if (s[j] == '{' && inner.find("}}") != std::string::npos) add_secret(out, unbraced(inner));
      continue;
    }
    // Unquoted: up to the next "key=" (a password with a space is the likely mistake), or to
    // a URI or ODBC separator.
    size_t end = j;
    while (end < s.size() && s[end] != '&' && s[end] != ';') {
      if (s[end] == ' ') {
        size_t k = end + 1;
        while (k < s.size() && is_word_char(s[k])) k++;
        while (k < s.size() && s[k] == ' ') k++;
        if (k < s.size() && s[k] == '=') break;
      }
      end++;
    }
    std::string value = s.substr(j, end - j);
    while (!value.empty() && value.back() == ' ') value.pop_back();
    add_secret(out, value);
  }
  return out;
}

std::string scrub(std::string text, const std::vector<std::string> &secrets) {
  for (const std::string &secret : secrets) {
    if (secret.empty()) continue;
    for (size_t at = text.find(secret); at != std::string::npos;
         at = text.find(secret, at + sizeof mask - 1))
      text.replace(at, secret.size(), mask);
  }
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
