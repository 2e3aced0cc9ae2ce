// The statements one libpq connection keeps prepared (POOL_QUERY_PREPARE): keyed by SQL and
// parameter types, least recently used dropped first. Touched only by the lease's holder.
#ifndef CONNPOOL_PQ_STATEMENTS_HH
#define CONNPOOL_PQ_STATEMENTS_HH

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace connpool {

class prepared_statements {
 public:
  // prefix: unique to the process and the connection ("connpool_<pid>_<random>_").
  prepared_statements(size_t capacity, std::string prefix)
      : capacity_(capacity), prefix_(std::move(prefix)) {}

  size_t capacity() const noexcept { return capacity_; }

  // The name `key` is prepared under, made the most recently used; nullptr if none.
  const std::string *find(const std::string &key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return &it->second->second;
  }

  // A fresh name for `key`, to prepare it under. The least recently used entry beyond the
  // capacity goes to dropped() for a DEALLOCATE.
  const std::string &add(const std::string &key) {
    lru_.emplace_front(key, prefix_ + std::to_string(++serial_));
    index_[key] = lru_.begin();
    if (lru_.size() > capacity_) {
      dropped_.push_back(std::move(lru_.back().second));
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
    return lru_.front().second;
  }

  // The server does not have it (a failed PREPARE, or SQLSTATE 26000): nothing to drop.
  void forget(const std::string &key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    lru_.erase(it->second);
    index_.erase(it);
  }

  // DISCARD ALL dropped everything on the server.
  void clear() {
    lru_.clear();
    index_.clear();
    dropped_.clear();
  }

  // Names evicted and still prepared on the server, to DEALLOCATE when it is idle.
  std::vector<std::string> &dropped() noexcept { return dropped_; }

 private:
  size_t capacity_;
  std::string prefix_;
  uint64_t serial_ = 0;
  std::list<std::pair<std::string, std::string>> lru_;  // key, name; most recent first
  std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator>
      index_;
  std::vector<std::string> dropped_;
};

}  // namespace connpool

#endif
