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

// The value after key=: to the closing quote, or to a separator.
size_t value_end(const std::string &s, size_t at) {
  if (at < s.size() && (s[at] == '\'' || s[at] == '"' || s[at] == '{')) {
    char close = s[at] == '{' ? '}' : s[at];
    for (size_t i = at + 1; i < s.size(); i++) {
      if (s[i] == '\\' && i + 1 < s.size()) i++;
      else if (s[i] == close) return i + 1;
    }
    return s.size();
  }
  size_t i = at;
  while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != ';' &&
         s[i] != '&' && s[i] != ',' && s[i] != '"' && s[i] != '\'')
    i++;
  return i;
}

void mask_key_values(std::string &s) {
  static const char *const keys[] = {"password", "pwd"};
  for (size_t i = 0; i < s.size(); i++) {
    if (i > 0 && is_word_char(s[i - 1])) continue;
    for (const char *key : keys) {
      if (!starts_with_nocase(s, i, key)) continue;
      size_t j = i + std::strlen(key);
      while (j < s.size() && s[j] == ' ') j++;
      if (j >= s.size() || s[j] != '=') continue;
      j++;
      while (j < s.size() && s[j] == ' ') j++;
      size_t end = value_end(s, j);
      if (end > j) s.replace(j, end - j, mask);
      i = j;
      break;
    }
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

}  // namespace

std::string scrub(std::string text, const std::vector<std::string> &secrets) {
  for (const std::string &secret : secrets) {
    if (secret.empty()) continue;
    for (size_t at = text.find(secret); at != std::string::npos;
         at = text.find(secret, at + sizeof mask - 1))
      text.replace(at, secret.size(), mask);
  }
  mask_key_values(text);
  mask_uri_userinfo(text);
  return text;
}

}  // namespace connpool
