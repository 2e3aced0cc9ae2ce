// White-box: the handle tables (lib/handles.hh). A handle is made of a kind, a slot index and
// a serial, never of an address, and is checked against the table alone.
#include <atomic>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <memory>
#include <pthread.h>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "handles.hh"

using namespace connpool::handle_table;

// The layout, at compile time: nothing but (kind, index, serial) goes in.
static_assert(encode(kind::lease, 0, 0) == 1, "odd: never an object's address");
static_assert(encode(kind::pool, 0, 0) == 3, "the kind bit");
static_assert(encode(kind::lease, 5, 0) == (5 << 2 | 1), "the index above the two low bits");
static_assert(sizeof(uintptr_t) < 8 || serial_bits == 40, "40 serial bits in 64-bit handles");
static_assert(sizeof(uintptr_t) < 8 ||
                  encode(kind::lease, 5, 7) == (uintptr_t(7) << 24 | uintptr_t(5) << 2 | 1),
              "the serial above the index");
static_assert(encode(kind::lease, 1, 1) != encode(kind::lease, 1, 1 + 65536),
              "16 bits of serial are not all there is");
static_assert(encode(kind::lease, 1, 1) == encode(kind::lease, 1, 1 + (uint64_t(1) << serial_bits)),
              "the serial wraps only after 2^serial_bits");

// A live lease slot at `serial`, as lend() leaves it.
static void lend(binding &b, uint64_t serial) {
  b.state().store(serial << 1 | 1, std::memory_order_release);
}

static void a_handle_finds_its_object_only_at_its_serial(void **) {
  int object;
  binding b(kind::lease, &object);
  assert_null(lookup(kind::lease, b.handle()));  // not lent: not live
  lend(b, 41);
  uintptr_t h = b.handle();
  assert_int_equal(h, encode(kind::lease, b.index(), 41));
  assert_ptr_equal(lookup(kind::lease, h), &object);
  assert_null(lookup(kind::pool, h));       // a lease is not a pool
  assert_null(lookup(kind::lease, h ^ 2));  // nor the other way round
  assert_null(lookup(kind::lease, h - 1));  // even: an address, not a handle
  assert_null(lookup(kind::lease, h + (uintptr_t(1) << serial_shift)));  // another serial
  if (sizeof(uintptr_t) >= 8) {
    // the top byte changed, as AArch64's top-byte-ignore and MTE tags change it
    assert_null(lookup(kind::lease, h ^ (uintptr_t(0xB4) << (handle_bits - 8))));
  }
  // checked in, then lent again many times: the old handle stays refused
  b.state().fetch_and(~uint64_t(1));
  assert_null(lookup(kind::lease, h));
  for (uint64_t later : {uint64_t(42), uint64_t(41 + 65535), uint64_t(41 + 65536),
                         uint64_t(41) + (uint64_t(1) << 32)}) {
    lend(b, later);
    assert_null(lookup(kind::lease, h));
    assert_ptr_equal(lookup(kind::lease, b.handle()), &object);
  }
}

// A record's slot outlives it: the next record in the slot goes on from its serial, so no
// handle of the earlier one matches; a pool's slot is live while the pool exists.
static void a_reused_slot_refuses_the_handles_of_its_earlier_objects(void **) {
  int first, second;
  uintptr_t old_lease, old_pool;
  uint32_t lease_index, pool_index;
  {
    binding l(kind::lease, &first), p(kind::pool, &first);
    lend(l, 7);
    old_lease = l.handle();
    old_pool = p.handle();
    lease_index = l.index();
    pool_index = p.index();
    assert_ptr_equal(lookup(kind::pool, old_pool), &first);
  }
  assert_null(lookup(kind::lease, old_lease));
  assert_null(lookup(kind::pool, old_pool));
  binding l(kind::lease, &second), p(kind::pool, &second);
  assert_int_equal(l.index(), lease_index);  // the slot given back last is taken first
  assert_int_equal(p.index(), pool_index);
  lend(l, (l.state().load() >> 1) + 1);
  assert_ptr_equal(lookup(kind::lease, l.handle()), &second);
  assert_ptr_equal(lookup(kind::pool, p.handle()), &second);
  assert_int_not_equal(l.handle(), old_lease);
  assert_null(lookup(kind::lease, old_lease));
  assert_null(lookup(kind::pool, old_pool));
}

// Past the static first chunk, chunks are mapped as needed; a handle into a chunk never
// mapped is refused without touching memory.
static void the_table_grows_and_unmapped_slots_are_refused(void **) {
  int object;
  std::vector<std::unique_ptr<binding>> many;
  for (int i = 0; i < 5000; i++) many.push_back(std::make_unique<binding>(kind::lease, &object));
  uint32_t highest = 0;
  for (auto &b : many) {
    lend(*b, 3);
    assert_ptr_equal(lookup(kind::lease, b->handle()), &object);
    if (b->index() > highest) highest = b->index();
  }
  assert_true(highest >= 4999);
  assert_non_null(find(kind::lease, highest));
  assert_null(find(kind::lease, max_slots - 1));
  assert_null(find(kind::lease, max_slots));
  assert_null(lookup(kind::lease, encode(kind::lease, max_slots - 1, 3)));
  assert_null(lookup(kind::lease, UINTPTR_MAX));
}

// Threads taking and giving back slots at once never share one (the free list is lock-free).
static std::atomic<int> owners[1 << 16];

static void *churn(void *) {
  int object;
  for (int round = 0; round < 2000; round++) {
    std::vector<std::unique_ptr<binding>> held;
    for (int i = 0; i < 8; i++) {
      held.push_back(std::make_unique<binding>(kind::lease, &object));
      if (held.back()->index() >= (1 << 16) || owners[held.back()->index()].fetch_add(1) != 0)
        return reinterpret_cast<void *>(1);
    }
    for (auto &b : held) owners[b->index()].fetch_sub(1);
  }
  return nullptr;
}

static void concurrent_takers_never_share_a_slot(void **) {
  pthread_t threads[4];
  for (pthread_t &t : threads) assert_int_equal(pthread_create(&t, nullptr, churn, nullptr), 0);
  int shared = 0;
  for (pthread_t &t : threads) {
    void *rc;
    pthread_join(t, &rc);
    shared += rc != nullptr;
  }
  assert_int_equal(shared, 0);
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_handle_finds_its_object_only_at_its_serial),
      cmocka_unit_test(a_reused_slot_refuses_the_handles_of_its_earlier_objects),
      cmocka_unit_test(the_table_grows_and_unmapped_slots_are_refused),
      cmocka_unit_test(concurrent_takers_never_share_a_slot),
  };
  return cmocka_run_group_tests_name("handles", tests, nullptr, nullptr);
}
