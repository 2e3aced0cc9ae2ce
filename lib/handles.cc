// The handle tables (handles.hh): one for lease records, one for pools.
#include "handles.hh"

#include <new>

#include <sys/mman.h>

namespace connpool {
namespace handle_table {

namespace detail {

table lease_table, pool_table;

// The most recently given back, else the next never used.
uint32_t table::take() {
  uint64_t head = free_head_.load(std::memory_order_acquire);
  while (uint32_t top = uint32_t(head)) {
    // The slot may be taken and given back meanwhile: then the tag has moved on and the
    // exchange fails. Its memory is never freed, so reading it is always safe.
    uint32_t next = find(top - 1)->next_free.load(std::memory_order_relaxed);
    if (free_head_.compare_exchange_weak(head, ((head >> 32) + 1) << 32 | next,
                                         std::memory_order_acquire, std::memory_order_acquire))
      return top - 1;
  }
  uint32_t n = next_unused_.load(std::memory_order_relaxed);
  for (;;) {
    if (n >= max_slots) throw std::bad_alloc();
    add_chunk(n >> chunk_bits);  // before n is claimed, so a claimed slot always exists
    if (next_unused_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return n;
  }
}

void table::give_back(uint32_t index) noexcept {
  slot *s = find(index);
  uint64_t head = free_head_.load(std::memory_order_relaxed);
  do {
    s->next_free.store(uint32_t(head), std::memory_order_relaxed);
  } while (!free_head_.compare_exchange_weak(head, ((head >> 32) + 1) << 32 | (index + 1),
                                             std::memory_order_release,
                                             std::memory_order_relaxed));
}

void table::add_chunk(uint32_t c) {
  if (c == 0 || chunks_[c].load(std::memory_order_acquire)) return;
  size_t bytes = chunk_slots * sizeof(slot);
  void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw std::bad_alloc();
  slot *fresh = static_cast<slot *>(memory);
  for (uint32_t i = 0; i < chunk_slots; i++) new (fresh + i) slot();
  slot *expected = nullptr;
  if (!chunks_[c].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel))
    munmap(memory, bytes);  // another thread added it first
}

}  // namespace detail

using detail::of;

binding::binding(kind k, void *object) : kind_(k), index_(of(k).take()), slot_(of(k).find(index_)) {
  slot_->object.store(object, std::memory_order_release);
  if (k == kind::pool) {  // live from now on, at a serial no earlier pool in the slot had
    uint64_t serial = (slot_->state.load(std::memory_order_relaxed) >> 1) + 1;
    slot_->state.store(serial << 1 | 1, std::memory_order_release);
  }
}

// The serial stays: the slot's next object goes on from it, so no earlier handle matches.
binding::~binding() {
  slot_->state.fetch_and(~uint64_t(1), std::memory_order_acq_rel);
  slot_->object.store(nullptr, std::memory_order_relaxed);
  of(kind_).give_back(index_);
}

}  // namespace handle_table
}  // namespace connpool
