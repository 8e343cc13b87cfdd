# pipeline: CI/CD pipelines that run inside PostgreSQL (PGXS build)
#
#   make                      build the extension and pipelinectl
#   make install              install both (needs write access to pg_config's dirs)
#   make installcheck         pg_regress + isolation specs against a running server
#                             (scripts/test starts a throwaway one and runs everything)

EXTENSION = pipeline
EXTVERSION = 0.2

MODULE_big = pipeline
OBJS = \
	src/pipeline.o \
	src/guc.o \
	src/util.o \
	src/token.o \
	src/lock.o \
	src/announce.o \
	src/jobrow.o \
	src/notifier.o \
	src/redact.o \
	src/secrets.o \
	src/defcheck.o \
	src/defhooks.o \
	src/transition.o \
	src/schedule.o \
	src/definition.o \
	src/run.o \
	src/runctl.o \
	src/status.o \
	src/claim.o \
	src/gate.o \
	src/retry.o \
	src/reap.o \
	src/tasklog.o \
	src/event.o

DATA = pipeline--0.1.sql pipeline--$(EXTVERSION).sql pipeline--0.1--0.2.sql

REGRESS = init definitions runs status advance claim events cancel params gates retry reap hooks retention logs_graph privileges def_limits api_contract redaction secrets
REGRESS_OPTS = --load-extension=pipeline

ISOLATION = fan_in claim_race cancel_vs_complete retry_vs_late_update reap_vs_final_report hook_claim_race
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=pipeline

# TAP tests (PostgreSQL::Test::Cluster) for crashes, restarts, standbys, dump/restore, upgrades.
# scripts/test runs them one file at a time (as the postgres OS user when it is root).
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS = -I test/t

PG_CPPFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror
SHLIB_LINK =

# ---- pipelinectl: the command-line program (runner, hookd, watch, logs, graph)
CTL_SRCS = $(sort $(wildcard src/pipelinectl/*.c))
CTL_HDRS = $(wildcard src/pipelinectl/*.h)
EXTRA_CLEAN = pipelinectl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

CTL_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Werror \
	-I$(shell $(PG_CONFIG) --includedir) $(CTL_EXTRA_CFLAGS)
CTL_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq -lcurl -lcrypto $(CTL_EXTRA_LIBS)

ifneq ($(CTL_SRCS),)
all: pipelinectl

pipelinectl: $(CTL_SRCS) $(CTL_HDRS)
	$(CC) $(CTL_CFLAGS) -o $@ $(CTL_SRCS) $(CTL_LIBS)

install: install-pipelinectl

install-pipelinectl: pipelinectl
	$(INSTALL_PROGRAM) pipelinectl '$(DESTDIR)$(bindir)/pipelinectl'
	ln -sf '$(bindir)/pipelinectl' '$(DESTDIR)/usr/local/bin/pipelinectl' 2>/dev/null || true

.PHONY: install-pipelinectl
endif
