// The handles the caller holds (pool_t *, pool_lease_t *) are not addresses. Each names a
// slot of a per-process table and the slot's serial when it was handed out, so checking one
// reads only the table, never memory at an address the caller passed, and works whatever
// bits the platform's pointers use (AArch64 top-byte tags, MTE, Android's tagged heap,
// 5-level paging).
//
// A handle, as a uintptr_t (64 bits; 32-bit builds in brackets):
//   bit 0            1: odd, so never the address of an object (ours are all aligned)
//   bit 1            kind: 0 a lease, 1 a pool; so neither is ever taken for the other
//   bits 2..23       the slot's index: 4 Mi slots of each kind [bits 2..13: 4096]
//   bits 24..63      the low 40 bits of the slot's serial [bits 14..31: 18 bits]
// A slot's state is serial << 1 | live. A lease slot is live while its lease is checked
// out, and every checkout raises the serial; a pool slot is live while its pool exists, and
// every pool that takes the slot raises it. So a handle from an earlier checkout, of an
// earlier record in the slot, or of a released pool is refused, until the slot's serial has
// grown by 2^40 (a trillion checkouts of one connection record).
//
// Slots live in chunks that are never freed or moved, so a lookup takes no lock and a stale
// handle always lands on live memory. The first chunk of each table (2048 slots) is static;
// further ones are mapped on demand and stay mapped for the life of the process (or of this
// load of the library). Slots are taken and given back through a lock-free free list: a fork
// at any instant leaves the table usable in the child.
#ifndef CONNPOOL_HANDLES_HH
#define CONNPOOL_HANDLES_HH

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace connpool {
namespace handle_table {

enum class kind : unsigned { lease = 0, pool = 1 };

constexpr unsigned handle_bits = 8 * sizeof(uintptr_t);
constexpr unsigned index_bits = handle_bits >= 64 ? 22 : 12;
constexpr unsigned serial_shift = 2 + index_bits;
constexpr unsigned serial_bits = handle_bits - serial_shift;  // 40 [18]
constexpr uint32_t max_slots = uint32_t(1) << index_bits;
constexpr uint64_t serial_mask = (uint64_t(1) << serial_bits) - 1;

// One cache line each: a checkout and a checkin write their lease's state, and threads that
// each hold their own lease must not share a line (acquire at 4 threads: 5.5M checkout+checkin
// pairs/s with 24-byte slots, 6.5-7.3M with 64).
struct alignas(64) slot {
  std::atomic<uint64_t> state{0};      // serial << 1 | live
  std::atomic<void *> object{nullptr};  // the lease record or the pool; null while free
  std::atomic<uint32_t> next_free{0};   // the free list: the next free index + 1, 0 at the end
};

// The handle of slot `index` of kind k at `serial` (only its low serial_bits are kept).
constexpr uintptr_t encode(kind k, uint32_t index, uint64_t serial) noexcept {
  return uintptr_t(1) | uintptr_t(k) << 1 | uintptr_t(index) << 2 |
         uintptr_t(serial & serial_mask) << serial_shift;
}

namespace detail {

constexpr unsigned chunk_bits = 11;
// 2048 slots: 128 KiB (pages never touched stay unmapped)
constexpr uint32_t chunk_slots = uint32_t(1) << chunk_bits;
constexpr uint32_t chunk_count = max_slots >> chunk_bits;

// Constant-initialised (no constructor runs at load) and trivially destructible (nothing
// runs at exit or dlclose): the first chunk is part of the object, the others are mapped.
class table {
 public:
  constexpr table() = default;

  slot *find(uint32_t index) noexcept {
    if (index < chunk_slots) return &first_[index];
    if (index >= max_slots) return nullptr;
    slot *chunk = chunks_[index >> chunk_bits].load(std::memory_order_acquire);
    return chunk ? chunk + (index & (chunk_slots - 1)) : nullptr;
  }
  uint32_t take();                        // a free slot's index; throws std::bad_alloc
  void give_back(uint32_t index) noexcept;

 private:
  void add_chunk(uint32_t c);

  slot first_[chunk_slots];
  std::atomic<slot *> chunks_[chunk_count] = {};  // [0] unused: first_
  std::atomic<uint64_t> free_head_{0};  // ABA tag << 32 | (index + 1); 0: empty
  std::atomic<uint32_t> next_unused_{0};
};

extern table lease_table, pool_table;

inline table &of(kind k) noexcept { return k == kind::lease ? lease_table : pool_table; }

}  // namespace detail

// The slot `index` of kind k, or nullptr if its chunk was never allocated.
inline slot *find(kind k, uint32_t index) noexcept { return detail::of(k).find(index); }

// The object a handle of kind k names if its slot is live at the handle's serial, else
// nullptr: also for any value that is not such a handle. Lock-free; reads only the table.
// Inline: it is on the path of every checkin and lease call.
inline void *lookup(kind k, uintptr_t handle) noexcept {
  if ((handle & 3) != (uintptr_t(1) | uintptr_t(k) << 1)) return nullptr;
  slot *s = find(k, uint32_t(handle >> 2) & (max_slots - 1));
  if (!s) return nullptr;
  uint64_t state = s->state.load(std::memory_order_acquire);
  if (!(state & 1) || ((state >> 1) & serial_mask) != uint64_t(handle >> serial_shift))
    return nullptr;
  return s->object.load(std::memory_order_acquire);
}

// One object's slot, for the object's lifetime (a member of it). A pool's slot is live at
// once; a lease record's becomes live at each checkout (lend() sets state()).
class binding {
 public:
  // Throws std::bad_alloc if the table is full or a chunk cannot be mapped.
  binding(kind k, void *object);
  ~binding();
  binding(const binding &) = delete;
  binding &operator=(const binding &) = delete;

  std::atomic<uint64_t> &state() const noexcept { return slot_->state; }
  uint32_t index() const noexcept { return index_; }
  // The handle for the slot's current serial.
  uintptr_t handle() const noexcept {
    return encode(kind_, index_, slot_->state.load(std::memory_order_relaxed) >> 1);
  }

 private:
  kind kind_;
  uint32_t index_;
  slot *slot_;
};

}  // namespace handle_table
}  // namespace connpool

#endif
