// A connector made of the caller's callbacks (pool_create_custom).
#include <algorithm>
#include <cstdio>

#include "connector.hh"
#include "error.hh"

namespace connpool {

namespace {

class custom_connector final : public connector {
 public:
  custom_connector(pool_open_cb open, pool_close_cb close, pool_reset_cb reset,
                   pool_ping_cb ping, pool_destroy_cb destroy, void *user_data)
      : open_(open), close_(close), reset_(reset), ping_(ping), destroy_(destroy),
        user_data_(user_data) {}
  ~custom_connector() override {
    if (destroy_) destroy_(user_data_);
  }

  void *open(clock::time_point deadline) override {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    char message[256] = "";
    void *handle = nullptr;
    int rc = open_(&handle, message, sizeof message, std::max<int64_t>(left.count(), 0),
                   user_data_);
    message[sizeof message - 1] = '\0';
    if (rc != 0 || !handle) {
      const char *why = message[0] ? message
                        : rc != 0  ? "the open callback failed without a message"
                                   : "the open callback returned no connection";
      throw error(POOL_ECONNECT, std::string("connect failed: ") + why);
    }
    return handle;
  }
  void close(void *handle) noexcept override { close_(handle, user_data_); }
  bool reset(void *handle, pool_reset_mode mode, bool, bool, clock::duration) noexcept override {
    return !reset_ || reset_(handle, mode, user_data_) == 0;
  }
  liveness looks_alive(void *) noexcept override { return liveness::quiet; }  // only ping can tell
  bool ping(void *handle, clock::time_point) noexcept override {
    return !ping_ || ping_(handle, user_data_) == 0;
  }
  int socket(void *) noexcept override { return -1; }
  // The callbacks make no promise about what close sends: an inherited connection is leaked.
  void discard_inherited(void *) noexcept override {}
  std::unique_ptr<result> query(void *, const statement &, clock::time_point) override {
    throw error(POOL_ENOTSUP, "pool_query() needs the libpq or ODBC connector; a custom "
                              "connector's connections are used through pool_lease_native()");
  }
  std::unique_ptr<row_stream> stream(void *, const statement &, clock::time_point) override {
    throw error(POOL_ENOTSUP, "pool_stream_open() needs the libpq or ODBC connector; a "
                              "custom connector's connections are used through "
                              "pool_lease_native()");
  }

 private:
  pool_open_cb open_;
  pool_close_cb close_;
  pool_reset_cb reset_;
  pool_ping_cb ping_;
  pool_destroy_cb destroy_;
  void *user_data_;
};

}  // namespace

std::unique_ptr<connector> make_custom_connector(pool_open_cb open, pool_close_cb close,
                                                 pool_reset_cb reset, pool_ping_cb ping,
                                                 pool_destroy_cb destroy, void *user_data) {
  return std::make_unique<custom_connector>(open, close, reset, ping, destroy, user_data);
}

}  // namespace connpool
