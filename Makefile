# shortd build.
#
#   make             build build/shortd
#   make run         install missing Debian packages, build, start shortd
#   make test        install missing Debian packages, build, run every test
#   make fuzz        run each fuzz target for FUZZ_SECONDS (default 60)
#   make WERROR=1    treat compiler warnings as errors (CI does this)
#
# Variant builds go to their own folder so that they never mix objects:
# build/ (release), build/asan (AddressSanitizer and UBSan), build/tsan
# (ThreadSanitizer), build/fuzz (clang with libFuzzer).

CC ?= cc
BUILD ?= build
SANITIZE ?=
WERROR ?= 0
OPT ?= -O2
FUZZ_SECONDS ?= 60
PYTEST ?= /usr/bin/python3 -m pytest

PKGS := sqlite3 jansson libidn2 libsodium liburiparser
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 -Wvla -Wno-unused-parameter
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -Isrc $(WARNINGS) $(CFLAGS) \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
TEST_LDLIBS := -lcmocka -lhttp_parser

ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

LIB_SRC := $(filter-out src/app/main.c,$(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
STRESS_SRC := $(wildcard tests/stress/stress_*.c)
STRESS_BIN := $(STRESS_SRC:tests/stress/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
MICRO_SRC := $(wildcard bench/micro_*.c)
MICRO_BIN := $(MICRO_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all run test deps deps-test unit stress unit-asan stress-tsan \
        integration integration-asan integration-tsan fuzz fuzz-build fuzz-replay \
        micro format clean

all: $(BUILD)/shortd

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libshortd.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/shortd: $(BUILD)/obj/src/app/main.o $(BUILD)/libshortd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libshortd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< $(BUILD)/libshortd.a \
	    $(LDLIBS) $(TEST_LDLIBS)

$(BUILD)/tests/stress_%: tests/stress/stress_%.c $(BUILD)/libshortd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< $(BUILD)/libshortd.a \
	    $(LDLIBS)

$(BUILD)/bench/micro_%: bench/micro_%.c $(BUILD)/libshortd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< $(BUILD)/libshortd.a \
	    $(LDLIBS) -lhttp_parser

# Micro-benchmarks of the components; each prints its own results.
micro: $(MICRO_BIN)
	@for b in $(MICRO_BIN); do echo "== $$b"; $$b || exit 1; done

deps:
	@scripts/install-deps build

deps-test:
	@scripts/install-deps test

run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/shortd $(ARGS)

# Unit tests, each program on its own so that one failure names its module.
unit: $(UNIT_BIN)
	@scripts/run-tests $(UNIT_BIN)

stress: $(STRESS_BIN)
	@scripts/run-tests $(STRESS_BIN)

unit-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address,undefined unit

stress-tsan:
	@$(MAKE) --no-print-directory BUILD=build/tsan SANITIZE=thread OPT=-O1 stress

integration: $(BUILD)/shortd
	SHORTD_BIN=$(CURDIR)/$(BUILD)/shortd $(PYTEST) -q tests/integration

# The integration suite against sanitizer builds of the daemon. A sanitizer
# report ends the process with a failure status, which fails the tests.
integration-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address,undefined integration

integration-tsan:
	@TSAN_OPTIONS=halt_on_error=1 $(MAKE) --no-print-directory BUILD=build/tsan \
	    SANITIZE=thread OPT=-O1 integration

test: deps-test
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory stress-tsan
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory integration-asan
	@$(MAKE) --no-print-directory integration-tsan

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang \
	    SANITIZE=fuzzer-no-link,address,undefined $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libshortd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libshortd.a $(LDLIBS)

fuzz: fuzz-build
	@scripts/run-fuzz $(FUZZ_SECONDS) build/fuzz

# Replays every seed corpus once: old findings stay fixed.
fuzz-replay: fuzz-build
	@scripts/run-fuzz 0 build/fuzz

format:
	clang-format -i $(wildcard src/*/*.c src/*/*.h tests/*/*.c)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
