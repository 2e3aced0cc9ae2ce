# connpool: build, test, install. Plain GNU make; all output goes under build/.

VERSION_MAJOR := $(shell sed -n 's/^\#define CONNPOOL_VERSION_MAJOR  *//p' include/connpool.h)
VERSION_MINOR := $(shell sed -n 's/^\#define CONNPOOL_VERSION_MINOR  *//p' include/connpool.h)
VERSION_PATCH := $(shell sed -n 's/^\#define CONNPOOL_VERSION_PATCH  *//p' include/connpool.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC ?= cc
CXX ?= c++
AR ?= ar
CFLAGS ?= -O2 -g
CXXFLAGS ?= -O2 -g

# Sanitizers for the whole build: make check SAN=address (ASan+UBSan) or SAN=thread.
SAN ?=
ifeq ($(SAN),address)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifeq ($(SAN),thread)
SAN_FLAGS := -fsanitize=thread
else ifneq ($(SAN),)
$(error SAN must be address or thread)
endif
B := build$(if $(SAN),/san-$(SAN))

SONAME := libconnpool.so.$(VERSION_MAJOR)
SHARED := $(B)/libconnpool.so.$(VERSION)
STATIC := $(B)/libconnpool.a

PQ_CFLAGS = $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
PQ_LIBS = $(shell pkg-config --libs libpq 2>/dev/null || echo -lpq)
ODBC_CFLAGS = $(shell pkg-config --cflags odbc odbcinst 2>/dev/null)
ODBC_LIBS = $(shell pkg-config --libs odbc odbcinst 2>/dev/null || echo -lodbc -lodbcinst)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

WARN := -Wall -Wextra -Werror
LIB_CXXFLAGS = -std=c++17 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden $(WARN) \
	-Iinclude $(PQ_CFLAGS) $(ODBC_CFLAGS) -pthread -MMD -MP $(SAN_FLAGS) $(CPPFLAGS) $(CXXFLAGS)
TEST_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Iinclude -Itests \
	$(PQ_CFLAGS) -pthread -MMD -MP $(SAN_FLAGS) $(CPPFLAGS) $(CFLAGS)
TEST_LDFLAGS = -L$(B) -Wl,-rpath,$(abspath $(B)) $(SAN_FLAGS) $(LDFLAGS)

LIB_SRCS := $(wildcard lib/*.cc)
LIB_OBJS := $(LIB_SRCS:lib/%.cc=$(B)/obj/%.o)

.PHONY: all check check-run check-valgrind check-abi install uninstall clean deps bench soak example demo
all: $(SHARED) $(B)/$(SONAME) $(B)/libconnpool.so $(STATIC) $(B)/connpool.pc

$(B)/obj/%.o: lib/%.cc
	@mkdir -p $(@D)
	$(CXX) $(LIB_CXXFLAGS) -c -o $@ $<

$(B)/connpool.map: lib/exports.txt lib/exports-to-map.awk
	@mkdir -p $(@D)
	awk -f lib/exports-to-map.awk lib/exports.txt > $@

# -Bsymbolic-functions: the library's calls to its own exported functions (pool_checkout ->
# pool_checkout_tagged) bind inside it. Without it, a second copy dlopen()ed in a program that
# links another (a binding's own copy) would call into the first copy with its own handles.
SHARED_LDFLAGS := -Wl,-soname,$(SONAME) -Wl,--version-script=$(B)/connpool.map \
	-Wl,-Bsymbolic-functions -Wl,--no-undefined -Wl,-z,defs -pthread
$(SHARED): $(LIB_OBJS) $(B)/connpool.map
	$(CXX) -shared -o $@ $(LIB_OBJS) $(SHARED_LDFLAGS) $(SAN_FLAGS) $(LDFLAGS) $(PQ_LIBS) $(ODBC_LIBS)

$(B)/$(SONAME): $(SHARED)
	ln -sf $(notdir $<) $@
$(B)/libconnpool.so: $(B)/$(SONAME)
	ln -sf $(notdir $<) $@

$(STATIC): $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

# Paths under the prefix are written relative to ${prefix}, so the .pc file relocates (zstd).
# `install` writes it again, so a PREFIX given only to `make install` is honoured.
PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
GEN_PC = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	-e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' pkgconfig/connpool.pc.in
$(B)/connpool.pc: pkgconfig/connpool.pc.in include/connpool.h Makefile
	$(GEN_PC) > $@

# ---------------------------------------------------------------- tests
TESTS := test_options test_pool test_pq test_fork test_dlclose_fork test_odbc test_lifecycle test_health test_query \
	test_security test_pgbouncer test_failover test_faults test_pool_timeout test_hotpath test_types test_async
TEST_BINS := $(TESTS:%=$(B)/tests/%)
# The parsers' fuzz targets (tests/fuzz/): make fuzz runs them, make check replays their corpus.
FUZZ_TARGETS := fuzz_options fuzz_conninfo fuzz_scrub

$(B)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -c -o $@ $<

TEST_HELPERS := $(B)/tests/util.o $(B)/tests/child.o $(B)/tests/faultproxy.o $(B)/tests/backends.o \
	$(B)/tests/fake_connector.o
$(B)/tests/test_%: $(B)/tests/test_%.o $(TEST_HELPERS) $(B)/libconnpool.so
	$(CC) -o $@ $< $(TEST_HELPERS) $(TEST_LDFLAGS) -lconnpool $(CMOCKA_LIBS) $(PQ_LIBS) $(ODBC_LIBS) -pthread

# Loads the library only with dlopen, so that dlclose really unmaps it.
$(B)/tests/test_dlclose_fork: $(B)/tests/test_dlclose_fork.o $(B)/libconnpool.so
	$(CC) -o $@ $< $(SAN_FLAGS) $(LDFLAGS) -ldl $(CMOCKA_LIBS) -pthread

$(B)/tests/test_scrub: tests/test_scrub.cc $(STATIC)
	@mkdir -p $(@D)
	$(CXX) -std=c++17 $(WARN) -Iinclude -Ilib -pthread $(SAN_FLAGS) $(CXXFLAGS) -o $@ $< \
		$(STATIC) $(PQ_LIBS) $(ODBC_LIBS) $(CMOCKA_LIBS) $(LDFLAGS)

$(B)/tests/test_handles: tests/test_handles.cc $(STATIC)
	@mkdir -p $(@D)
	$(CXX) -std=c++17 $(WARN) -Iinclude -Ilib -pthread $(SAN_FLAGS) $(CXXFLAGS) -o $@ $< \
		$(STATIC) $(PQ_LIBS) $(ODBC_LIBS) $(CMOCKA_LIBS) $(LDFLAGS)

$(B)/tests/headertest-c: tests/headertest.c include/connpool.h
	@mkdir -p $(@D)
	$(CC) -std=c99 -pedantic $(WARN) -Iinclude -c -o $@ $<
$(B)/tests/headertest-cxx: tests/headertest.c include/connpool.h
	@mkdir -p $(@D)
	$(CXX) -x c++ -std=c++11 -pedantic $(WARN) -Iinclude -c -o $@ $<

# Each binding's tests (they skip, saying so, when their toolchain is missing).
BINDING_TESTS := bindings/python/run-tests.sh bindings/node/run-tests.sh bindings/rust/run-tests.sh

TEST_ALL := $(TEST_BINS) $(B)/tests/test_scrub $(B)/tests/test_handles $(B)/tests/headertest-c $(B)/tests/headertest-cxx \
	$(B)/examples/dlopen_query $(B)/examples/epoll_server $(FUZZ_TARGETS:fuzz_%=$(B)/tests/fuzz_replay_%)

# `make check` installs missing Debian packages first, then builds and runs everything
# against a throwaway PostgreSQL that tests/with-postgres.sh starts and always stops, with
# PgBouncer in front of it and a second server beside it (tests/with-pgbouncer.sh,
# tests/with-second-server.sh: they stop theirs too).
check: deps
	$(MAKE) check-run

check-run: all $(TEST_ALL) check-abi
	SAN=$(SAN) tests/with-postgres.sh tests/with-pgbouncer.sh tests/with-second-server.sh \
		tests/run-tests.sh $(B) $(TESTS) test_scrub test_handles fuzz-replay.sh test-install.sh test-examples.sh \
		$(BINDING_TESTS)

# valgrind memcheck on the core and fork tests (plain build: valgrind and the sanitizers do not
# mix). tests/run-valgrind.sh says what counts as a failure.
VALGRIND_TESTS := test_options test_pool test_lifecycle test_fork test_async
check-valgrind: deps
	$(MAKE) SAN= all $(VALGRIND_TESTS:%=build/tests/%)
	tests/with-postgres.sh tests/run-valgrind.sh build $(VALGRIND_TESTS)

# ---------------------------------------------------------------- fuzzing
# libFuzzer targets for the parsers (tests/fuzz/README.md). Two builds of each target:
# - `make fuzz`: clang with libFuzzer, ASan and UBSan; runs each target FUZZ_SECONDS over a
#   scratch corpus under build/fuzz/ seeded from the committed one, and fails on a crash or a
#   broken property (the input is saved under build/fuzz/artifacts/). Needs clang and
#   libclang-rt-14-dev. Independent of SAN: it always uses its own sanitizers and objects.
# - $(B)/tests/fuzz_replay_NAME: the normal compiler (and SAN_FLAGS), no libFuzzer; replays
#   the committed corpus and regressions (tests/fuzz-replay.sh, run by make check).
FUZZ_CXX ?= clang++
FUZZ_SECONDS ?= 60
# Option and connection strings are short; 4 KiB leaves room for the "very long" seeds.
FUZZ_MAX_LEN ?= 4096
FUZZ_DIR := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_LIB_CXXFLAGS = -std=c++17 -g -O1 -fvisibility=hidden -fvisibility-inlines-hidden $(WARN) \
	-Iinclude $(PQ_CFLAGS) $(ODBC_CFLAGS) -pthread -MMD -MP $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LIB_OBJS := $(LIB_SRCS:lib/%.cc=$(FUZZ_DIR)/obj/%.o)

.PHONY: fuzz fuzz-build fuzz-replay
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)
fuzz-replay: $(FUZZ_TARGETS:fuzz_%=$(B)/tests/fuzz_replay_%)

$(FUZZ_DIR)/obj/%.o: lib/%.cc
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_LIB_CXXFLAGS) -c -o $@ $<

$(FUZZ_DIR)/libconnpool.a: $(FUZZ_LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.cc tests/fuzz/fuzz_check.hh $(FUZZ_DIR)/libconnpool.a
	$(FUZZ_CXX) -std=c++17 -g -O1 $(WARN) -Iinclude -Ilib $(PQ_CFLAGS) -pthread $(FUZZ_SAN) \
		-fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libconnpool.a $(PQ_LIBS) $(ODBC_LIBS)

# One target after another, each for FUZZ_SECONDS; every target runs even if one fails.
fuzz: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
		tests/fuzz/run-fuzzer.sh $(FUZZ_DIR) $$t $(FUZZ_SECONDS) $(FUZZ_MAX_LEN) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed"; exit 1; fi; echo "fuzz: all targets passed"

$(B)/tests/fuzz_replay_%: tests/fuzz/fuzz_%.cc tests/fuzz/replay_main.cc tests/fuzz/fuzz_check.hh $(STATIC)
	@mkdir -p $(@D)
	$(CXX) -std=c++17 $(WARN) -Iinclude -Ilib $(PQ_CFLAGS) -pthread $(SAN_FLAGS) $(CXXFLAGS) -o $@ \
		$< tests/fuzz/replay_main.cc $(STATIC) $(PQ_LIBS) $(ODBC_LIBS) $(LDFLAGS)


# For the lead, in the Makefile proper (not done here):
#   TEST_ALL += $(FUZZ_TARGETS:fuzz_%=$(B)/tests/fuzz_replay_%)
#   check-run: add fuzz-replay.sh to the tests/run-tests.sh list (it takes $(B) like the others).
#   clean already removes build/fuzz.

# ---------------------------------------------------------------- example and benchmark
$(B)/examples/%: examples/%.c $(B)/libconnpool.so
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) -Iinclude $(PQ_CFLAGS) $(CFLAGS) -o $@ $< $(TEST_LDFLAGS) -lconnpool $(PQ_LIBS)

# Uses the library only through dlopen and dlsym, as an FFI does: links libdl, no -lconnpool.
$(B)/examples/dlopen_query: examples/dlopen_query.c
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) $(SAN_FLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS) -ldl

# Runs the example against a throwaway PostgreSQL (the demo issue replaces this).
example: all $(B)/examples/hello
	tests/with-postgres.sh $(B)/examples/hello

# The demo queries through libpq and ODBC, with threads and fork.
$(B)/examples/demo: examples/demo.c include/connpool.h $(B)/libconnpool.so
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) -Iinclude $(PQ_CFLAGS) $(ODBC_CFLAGS) -pthread $(SAN_FLAGS) $(CFLAGS) \
		-o $@ $< $(TEST_LDFLAGS) -lconnpool $(PQ_LIBS) $(ODBC_LIBS) -pthread

# `make demo`: no server needed, a throwaway SQLite file through the SQLite ODBC driver.
# `make demo DSN='postgresql://...'` (or DSN='odbc:...') runs the same demo on that database;
# DSN reaches the script through the environment, so its quotes and semicolons survive.
demo: deps
	$(MAKE) $(B)/examples/demo
	examples/run-demo.sh $(B)/examples/demo $(if $(value DSN),"$$DSN")

$(B)/bench/bench: bench/bench.c $(B)/libconnpool.so
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_GNU_SOURCE -O2 $(WARN) -Iinclude $(PQ_CFLAGS) -pthread -o $@ $< \
		$(TEST_LDFLAGS) -lconnpool $(PQ_LIBS) -ldl

$(B)/bench/blocking_threads: bench/blocking_threads.c $(B)/libconnpool.so
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_GNU_SOURCE -O2 $(WARN) -Iinclude -pthread -o $@ $< $(TEST_LDFLAGS) -lconnpool

# The same library with the fork check compiled out, so the benchmark can show its cost.
$(B)/bench/nofork/%.o: lib/%.cc
	@mkdir -p $(@D)
	$(CXX) $(LIB_CXXFLAGS) -O2 -DCONNPOOL_NO_FORK_CHECK -c -o $@ $<
$(B)/bench/nofork/libconnpool.so.1: $(LIB_SRCS:lib/%.cc=$(B)/bench/nofork/%.o) $(B)/connpool.map
	$(CXX) -shared -o $@ $(filter %.o,$^) $(SHARED_LDFLAGS) $(LDFLAGS) $(PQ_LIBS) $(ODBC_LIBS)

# Section 6 (after bench.c's five): 1,000 requests at once on a pool of 10, from one epoll
# loop (examples/epoll_server.c) and from 1,000 threads on the blocking API, 20 rounds each.
ASYNC_BENCH := 1000 10 20
bench: deps
	$(MAKE) all $(B)/bench/bench $(B)/bench/nofork/libconnpool.so.1 $(B)/examples/epoll_server \
		$(B)/bench/blocking_threads
	CONNPOOL_BENCH_NOFORK_LIB=$(abspath $(B)/bench/nofork/libconnpool.so.1) \
		tests/with-postgres.sh $(B)/bench/bench
	tests/with-postgres.sh sh -c 'echo; echo "6. 1,000 requests at once on a pool of 10 \
		(checkout + SELECT 1 + checkin, 20 rounds)"; \
		$(B)/examples/epoll_server "" $(ASYNC_BENCH) && $(B)/bench/blocking_threads "" $(ASYNC_BENCH)'

# `make soak` (SOAK_SECONDS=60 make soak for a short one): 64 threads against the test server
# through the fault-injecting proxy, then checks that nothing leaked (bench/soak.c).
$(B)/bench/soak: bench/soak.c tests/faultproxy.c tests/faultproxy.h $(B)/libconnpool.so
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_GNU_SOURCE -O2 $(WARN) -Iinclude -Itests $(PQ_CFLAGS) -pthread $(SAN_FLAGS) \
		-o $@ bench/soak.c tests/faultproxy.c $(TEST_LDFLAGS) -lconnpool $(PQ_LIBS)

soak: deps
	$(MAKE) all $(B)/bench/soak
	tests/with-postgres.sh $(B)/bench/soak

check-abi: $(SHARED)
	tests/check-abi.sh $(SHARED) lib/exports.txt include/connpool.h

deps:
	tests/install-deps.sh

# ---------------------------------------------------------------- install
install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/connpool.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libconnpool.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libconnpool.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	$(GEN_PC) > $(DESTDIR)$(PKGCONFIGDIR)/connpool.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/connpool.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/connpool.h $(DESTDIR)$(LIBDIR)/libconnpool.so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libconnpool.so \
		$(DESTDIR)$(LIBDIR)/libconnpool.a $(DESTDIR)$(PKGCONFIGDIR)/connpool.pc

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(wildcard $(B)/tests/*.d $(B)/bench/nofork/*.d $(FUZZ_DIR)/obj/*.d)
