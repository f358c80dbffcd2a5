# kurier - SMTP relay and transactional-mail gateway.
#
#   make            build bin/kurierd and bin/kurierctl
#   make run        install what running needs, build, start a Redis of its
#                   own under ./var (port 2679) and kurierd
#   make check      install dependencies, build, run every test (unit,
#                   queue against a real Redis, end-to-end, sanitizers, fuzz)
#   make bench      queue throughput and memory figures
#   make fuzz       run each fuzz target for FUZZ_SECONDS (default 60)
#   make install    install binaries, example config and units under PREFIX
#   make format     clang-format the lines changed since HEAD
#   make format-check  list where the C deviates from .clang-format
#
# Objects go to build/<variant>/: release (-O2), asan (AddressSanitizer +
# UndefinedBehaviorSanitizer) and fuzz (clang + libFuzzer).

CC       ?= cc
PREFIX   ?= /usr/local
PKGS     := libuv hiredis inih openssl libcares opendkim gmime-3.0
FUZZ_SECONDS ?= 60

PKG_CFLAGS   := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lspf2 -lcrypt
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wshadow -Wpointer-arith -Wvla -fno-common
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -I. -Ibuild/gen -MMD -MP $(WARN) $(PKG_CFLAGS)

release_CFLAGS := -O2 -g
release_LDFLAGS :=
asan_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
asan_LDFLAGS := -fsanitize=address,undefined

CORE_SRCS := \
	core/buf.c \
	core/config.c \
	core/config_value.c \
	core/conn.c \
	core/file.c \
	core/ipcount.c \
	core/listener.c \
	core/log.c \
	core/mailaddr.c \
	core/rdb.c \
	core/rfc5322.c \
	core/sasl.c \
	core/str.c \
	core/tlsctx.c \
	core/xmalloc.c

QUEUE_SRCS := \
	queue/envelope.c \
	queue/qid.c \
	queue/queue.c \
	queue/queue_admin.c \
	queue/queue_events.c \
	queue/schedule.c \
	queue/verp.c

POLICY_SRCS := \
	policy/auth.c \
	policy/authres.c \
	policy/check.c \
	policy/dest.c \
	policy/dkimverify.c \
	policy/dnswait.c \
	policy/lockout.c \
	policy/policy.c \
	policy/rate.c \
	policy/returns.c \
	policy/spf_dns.c \
	policy/spfcheck.c \
	policy/suppress.c \
	policy/throttle.c \
	policy/users.c

RELAY_SRCS := \
	relay/inbound_cmd.c \
	relay/smtp_data.c \
	relay/smtp_parse.c \
	relay/smtpd.c \
	relay/smtpd_auth.c \
	relay/smtpd_cmd.c \
	relay/smtpd_inbound.c \
	relay/smtpd_msg.c \
	relay/smtpd_session.c

DELIVER_SRCS := \
	deliver/deliver.c \
	deliver/dkimkey.c \
	deliver/dkimsign.c \
	deliver/dns.c \
	deliver/dns_answer.c \
	deliver/outcome.c \
	deliver/pool.c \
	deliver/route.c \
	deliver/sign.c \
	deliver/smtpc.c \
	deliver/smtpreply.c \
	deliver/task.c

# mailbox/: the bounce mailbox (store, reports, parsing and classifying returns).
MAILBOX_SRCS := \
	mailbox/bounce.c \
	mailbox/bounce_class.c \
	mailbox/bounce_lex.c \
	mailbox/bounce_ses.c \
	mailbox/bounce_text.c \
	mailbox/dsn.c \
	mailbox/imap_args.c \
	mailbox/imap_mime.c \
	mailbox/imap_mime_env.c \
	mailbox/imap_mime_text.c \
	mailbox/imap_parse.c \
	mailbox/imapd.c \
	mailbox/imapd_fetch.c \
	mailbox/imapd_mbox.c \
	mailbox/imapd_select.c \
	mailbox/ingest.c \
	mailbox/msrv.c \
	mailbox/mutf7.c \
	mailbox/names.c \
	mailbox/pop3_parse.c \
	mailbox/pop3d.c \
	mailbox/report.c \
	mailbox/store.c \
	mailbox/store_admin.c \
	mailbox/store_ops.c \
	mailbox/watch.c

# bin/kurierctl: the command table and main, the harness, one file per
# command group.
KURIERCTL_SRCS := \
	cmd/ctl.c \
	cmd/kurierctl.c \
	cmd/kurierctl_bounce.c \
	cmd/kurierctl_check.c \
	cmd/kurierctl_mailbox.c \
	cmd/kurierctl_queue.c \
	cmd/kurierctl_stats.c \
	cmd/kurierctl_sup.c \
	cmd/kurierctl_user.c

QUEUE_LUA := $(sort $(wildcard queue/lua/*.lua))
POLICY_LUA := $(sort $(wildcard policy/lua/*.lua))
# mailbox/lua/lib.lua (shared helpers) is put in front of every other
# mailbox script, so each runs alone as one atomic script.
MAILBOX_LUA := $(sort $(filter-out mailbox/lua/lib.lua,$(wildcard mailbox/lua/*.lua)))
GEN_SRCS  := build/gen/queue_lua.c build/gen/policy_lua.c build/gen/mailbox_lua.c

LIB_SRCS := $(CORE_SRCS) $(QUEUE_SRCS) $(POLICY_SRCS) $(DELIVER_SRCS) $(RELAY_SRCS) $(MAILBOX_SRCS)

# One Check runner (tests/check.c) over every suite, one folder per
# source folder; `check_kurier GROUP` runs one folder's suites.
CHECK_SRCS := \
	tests/check.c \
	tests/dnsmasq.c \
	tests/logcap.c \
	tests/redis_test.c \
	tests/tmpdir.c \
	tests/core/test_buf.c \
	tests/core/test_config.c \
	tests/core/test_config_value.c \
	tests/core/test_conn.c \
	tests/core/test_file.c \
	tests/core/test_hash.c \
	tests/core/test_ipcount.c \
	tests/core/test_log.c \
	tests/core/test_mailaddr.c \
	tests/core/test_rdb.c \
	tests/core/test_sasl.c \
	tests/core/test_str.c \
	tests/queue/qtest.c \
	tests/queue/test_envelope.c \
	tests/queue/test_qid.c \
	tests/queue/test_queue.c \
	tests/queue/test_queue_events.c \
	tests/queue/test_schedule.c \
	tests/queue/test_verp.c \
	tests/policy/test_auth.c \
	tests/policy/test_check.c \
	tests/policy/test_dest.c \
	tests/policy/test_dkimverify.c \
	tests/policy/test_policy.c \
	tests/policy/test_spfcheck.c \
	tests/relay/test_smtp_data.c \
	tests/relay/test_smtp_parse.c \
	tests/relay/test_session.c \
	tests/deliver/test_dkimsign.c \
	tests/deliver/test_dns.c \
	tests/deliver/test_outcome.c \
	tests/deliver/test_route.c \
	tests/deliver/test_smtpc.c \
	tests/deliver/test_smtpreply.c \
	tests/mailbox/test_bounce.c \
	tests/mailbox/test_dsn.c \
	tests/mailbox/test_imap_mime.c \
	tests/mailbox/test_imap_parse.c \
	tests/mailbox/test_ingest.c \
	tests/mailbox/test_pop3_parse.c \
	tests/mailbox/test_report.c \
	tests/mailbox/test_store.c \
	tests/mailbox/test_watch.c

FUZZ_TARGETS := fuzz_envelope fuzz_config fuzz_smtp_cmd fuzz_smtp_data fuzz_verp \
	fuzz_smtp_reply fuzz_dns_answer fuzz_dkim_from fuzz_header_check fuzz_mbox_names \
	fuzz_bounce fuzz_inbound_cmd fuzz_dsn fuzz_pop3_cmd fuzz_imap_cmd \
	fuzz_imap_mime

.PHONY: all run check check-build bench fuzz install clean deps format format-all format-check
all: bin/kurierd bin/kurierctl

# What building and testing need (install-deps.sh --check); `make run`
# installs only what running needs, `make bench` also what it measures
# against.
deps:
	@deploy/install-deps.sh --check

# --- generated sources -------------------------------------------------------
build/gen/queue_lua.c: $(QUEUE_LUA) core/lua_embed.sh
	@mkdir -p $(@D)
	sh core/lua_embed.sh queue $(QUEUE_LUA) > $@.tmp && mv $@.tmp $@

build/gen/policy_lua.c: $(POLICY_LUA) core/lua_embed.sh
	@mkdir -p $(@D)
	sh core/lua_embed.sh policy $(POLICY_LUA) > $@.tmp && mv $@.tmp $@

build/gen/mailbox/%.lua: mailbox/lua/lib.lua mailbox/lua/%.lua
	@mkdir -p $(@D)
	cat $^ > $@.tmp && mv $@.tmp $@

build/gen/mailbox_lua.c: $(patsubst mailbox/lua/%,build/gen/mailbox/%,$(MAILBOX_LUA)) core/lua_embed.sh
	@mkdir -p $(@D)
	sh core/lua_embed.sh mailbox $(filter %.lua,$^) > $@.tmp && mv $@.tmp $@

# --- one set of rules per variant ---------------------------------------------
define variant
$(1)_OBJ := build/$(1)
$(1)_LIB_OBJS := $$(patsubst %.c,build/$(1)/%.o,$(LIB_SRCS) $(GEN_SRCS))

build/$(1)/%.o: %.c | build/gen/queue_lua.c
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_CFLAGS) $$($(1)_CFLAGS) $$(CHECK_CFLAGS) -c -o $$@ $$<

build/$(1)/build/gen/%.o: build/gen/%.c
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_CFLAGS) $$($(1)_CFLAGS) -c -o $$@ $$<

build/$(1)/libkurier.a: $$($(1)_LIB_OBJS)
	@rm -f $$@
	$$(AR) rcs $$@ $$^

build/$(1)/bin/kurierd: build/$(1)/cmd/kurierd.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/bin/kurierctl: $$(patsubst %.c,build/$(1)/%.o,$(KURIERCTL_SRCS)) build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/check_kurier: $$(patsubst %.c,build/$(1)/%.o,$(CHECK_SRCS)) build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(PKG_LIBS) -lm

build/$(1)/tests/dkimsign_tool: build/$(1)/tests/tools/dkimsign_tool.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/sinkmx: build/$(1)/tests/bench/sinkmx.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/qload: build/$(1)/tests/tools/qload.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/mbox_append: build/$(1)/tests/tools/mbox_append.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/verp_addr: build/$(1)/tests/tools/verp_addr.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/qbench: build/$(1)/tests/bench/qbench.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/smtpload: build/$(1)/tests/bench/smtpload.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/bounceparse: build/$(1)/tests/bench/bounceparse.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/popload: build/$(1)/tests/bench/popload.o build/$(1)/tests/bench/tlsc.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm

build/$(1)/tests/imapload: build/$(1)/tests/bench/imapload.o build/$(1)/tests/bench/tlsc.o build/$(1)/libkurier.a
	@mkdir -p $$(@D)
	$$(CC) $$($(1)_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) -lm
endef
$(eval $(call variant,release))
$(eval $(call variant,asan))

# Replaced by rename, so a running bin/kurierd does not make the copy fail.
bin/%: build/release/bin/%
	@mkdir -p bin
	cp $< $@.tmp && mv -f $@.tmp $@

TEST_BINS := build/release/tests/check_kurier build/asan/tests/check_kurier \
	build/release/tests/qload build/release/tests/dkimsign_tool build/release/tests/sinkmx \
	build/release/tests/mbox_append \
	build/asan/bin/kurierd build/asan/bin/kurierctl

# --- fuzz targets (clang, libFuzzer + ASan/UBSan) ------------------------------
# The library sources are compiled once (instrumented for coverage, no
# fuzzer main) into build/fuzz/libfuzz.a; each target links its own
# tests/fuzz/NAME.c against it.
FUZZ_CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -I. -g -O1 -fno-sanitize-recover=all $(PKG_CFLAGS)
FUZZ_CFLAGS := $(FUZZ_CFLAGS_COMMON) -fsanitize=fuzzer,address,undefined
FUZZ_OBJ_CFLAGS := $(FUZZ_CFLAGS_COMMON) -fsanitize=fuzzer-no-link,address,undefined
FUZZ_LIB_SRCS := core/buf.c core/config.c core/config_value.c core/file.c core/log.c core/mailaddr.c core/sasl.c core/str.c \
	core/tlsctx.c \
	core/xmalloc.c queue/envelope.c queue/qid.c relay/smtp_data.c relay/smtp_parse.c relay/inbound_cmd.c \
	queue/verp.c deliver/smtpreply.c deliver/dns_answer.c deliver/dkimsign.c deliver/dkimkey.c \
	core/rfc5322.c policy/check.c policy/authres.c policy/spfcheck.c policy/spf_dns.c \
	policy/dkimverify.c policy/dnswait.c mailbox/names.c mailbox/bounce.c mailbox/bounce_class.c \
	mailbox/bounce_lex.c mailbox/bounce_ses.c mailbox/bounce_text.c mailbox/dsn.c \
	mailbox/pop3_parse.c mailbox/imap_parse.c mailbox/imap_args.c \
	mailbox/mutf7.c \
	mailbox/imap_mime.c mailbox/imap_mime_env.c mailbox/imap_mime_text.c

FUZZ_LIB_OBJS := $(patsubst %.c,build/fuzz/obj/%.o,$(FUZZ_LIB_SRCS))

build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	clang $(FUZZ_OBJ_CFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/libfuzz.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

build/fuzz/%: tests/fuzz/%.c build/fuzz/libfuzz.a
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(PKG_LIBS)

# --- top-level targets ---------------------------------------------------------
check-build: all $(TEST_BINS) $(addprefix build/fuzz/,$(FUZZ_TARGETS))

NPROC := $(shell nproc 2>/dev/null || echo 2)

check: deps
	@$(MAKE) --no-print-directory -j$(NPROC) check-build
	@tests/run-checks.sh

run:
	@deploy/install-deps.sh --run
	@$(MAKE) --no-print-directory -j$(NPROC) all
	@deploy/run-dev.sh

bench:
	@deploy/install-deps.sh --bench
	@$(MAKE) --no-print-directory all build/release/tests/qbench build/release/tests/smtpload \
		build/release/tests/sinkmx build/release/tests/mbox_append build/release/tests/bounceparse \
		build/release/tests/qload build/release/tests/verp_addr build/release/tests/popload \
		build/release/tests/imapload
	@tests/bench/run-bench.sh

fuzz: deps
	@$(MAKE) --no-print-directory $(addprefix build/fuzz/,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p tests/fuzz/corpus-$$t; \
		build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) tests/fuzz/corpus-$$t tests/fuzz/seeds/$$t || exit 1; \
	done

# The unit is generated from deploy/kurierd.service.in at every install,
# so that its paths are those of this PREFIX; Documentation= names the
# README installed beside it.  DESTDIR stages the whole tree.
SYSCONFDIR ?= /etc
DOCDIR ?= $(PREFIX)/share/doc/kurier
UNITDIR ?= /lib/systemd/system

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SYSCONFDIR)/kurier $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(DOCDIR) build
	install -m 0755 bin/kurierd bin/kurierctl $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 deploy/kurier.conf.example $(DESTDIR)$(SYSCONFDIR)/kurier/kurier.conf.example
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	sed -e '/^#%/d' -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		-e 's|@DOCDIR@|$(DOCDIR)|g' deploy/kurierd.service.in > build/kurierd.service
	install -m 0644 build/kurierd.service $(DESTDIR)$(UNITDIR)/kurierd.service

# Both use .clang-format.  format rewrites the C files git knows in
# place; format-check writes nothing, prints file:line of each deviation
# and how many files have one, and fails if any does.
FORMAT_FILES = $$(git ls-files '*.c' '*.h')

# format: the lines changed since HEAD (staged or not), so a clean
# checkout is left as it is; format-all: every file, for a deliberate
# restyle (clang-format 14 still re-lays hand-aligned tables and
# comments, see format-check).
format:
	git clang-format --style=file --extensions c,h -f

format-all:
	clang-format -i --style=file $(FORMAT_FILES)

format-check:
	@clang-format --dry-run --style=file $(FORMAT_FILES) 2>&1 | \
		sed -n 's/^\([^:]*:[0-9]*\):[0-9]*: warning: code should be clang-formatted.*/\1/p' | \
		awk -F: '{ print; if (!($$1 in f)) { f[$$1]; n++ } } \
		END { printf "format-check: %d deviations in %d files\n", NR, n; exit NR > 0 }'

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
