# pipeline: CI/CD pipelines that run inside PostgreSQL (PGXS build)
#
#   make                      build the extension and pipelinectl
#   make install              install both (needs write access to pg_config's dirs)
#   make installcheck         pg_regress + isolation specs against a running server
#                             (scripts/test starts a throwaway one and runs everything)

EXTENSION = pipeline
EXTVERSION = 0.4

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
	src/concurrency.o \
	src/defdag.o \
	src/transition.o \
	src/dagsched.o \
	src/schedule.o \
	src/definition.o \
	src/resolve.o \
	src/dag.o \
	src/run.o \
	src/chain.o \
	src/runctl.o \
	src/status.o \
	src/statuses.o \
	src/claim.o \
	src/gate.o \
	src/retry.o \
	src/play.o \
	src/reap.o \
	src/tasklog.o \
	src/event.o \
	src/trigger.o \
	src/trigger_payload.o \
	src/trigger_fire.o

DATA = pipeline--0.1.sql pipeline--$(EXTVERSION).sql pipeline--0.1--0.2.sql pipeline--0.2--0.3.sql pipeline--0.3--0.4.sql

REGRESS = init event_capture definitions runs status advance claim events cancel params gates retry reap hooks retention logs_graph privileges def_limits api_contract redaction secrets triggers dag dag_refusals batch event_payload concurrency chain
REGRESS_OPTS = --load-extension=pipeline

ISOLATION = fan_in claim_race cancel_vs_complete retry_vs_late_update reap_vs_final_report hook_claim_race dag_fan_in dag_diamond batch_fan_in concurrency_claim_race concurrency_cancel_vs_claim chain_once open_report_vs_cancel
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=pipeline

# TAP tests (PostgreSQL::Test::Cluster) for crashes, restarts, standbys, dump/restore, upgrades.
# scripts/test runs them one file at a time (as the postgres OS user when it is root).
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS = -I test/t

PG_CPPFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Werror
SHLIB_LINK =

# ---- pipelinectl: the command-line program (runner, hookd, watch, logs, graph, serve)
# main.c dispatches to one file per command (cmd_*.c); lib/ is the client library
# (connection, JSON via jansson, options, output, logging); runner/ and hookd/ are
# the insides of the two long-running commands; serve/ is the web dashboard
# (libmicrohttpd, a thread per connection).  Built with its own rule below.
CTL_OBJS = \
	src/pipelinectl/main.o \
	src/pipelinectl/cmd_runner.o \
	src/pipelinectl/cmd_hookd.o \
	src/pipelinectl/cmd_watch.o \
	src/pipelinectl/cmd_logs.o \
	src/pipelinectl/cmd_graph.o \
	src/pipelinectl/cmd_sign.o \
	src/pipelinectl/cmd_selftest.o \
	src/pipelinectl/cmd_apply.o \
	src/pipelinectl/cmd_run.o \
	src/pipelinectl/cmd_ls.o \
	src/pipelinectl/cmd_control.o \
	src/pipelinectl/cmd_runlogs.o \
	src/pipelinectl/cmd_serve.o \
	src/pipelinectl/serve/http.o \
	src/pipelinectl/serve/html.o \
	src/pipelinectl/serve/pages.o \
	src/pipelinectl/serve/svg.o \
	src/pipelinectl/serve/actions.o \
	src/pipelinectl/serve/session.o \
	src/pipelinectl/serve/dbpool.o \
	src/pipelinectl/serve/events.o \
	src/pipelinectl/serve/metrics.o \
	src/pipelinectl/cmd_triggerd.o \
	src/pipelinectl/runner/loop.o \
	src/pipelinectl/runner/spawn.o \
	src/pipelinectl/runner/supervise.o \
	src/pipelinectl/runner/workdir.o \
	src/pipelinectl/runner/env.o \
	src/pipelinectl/runner/logship.o \
	src/pipelinectl/runner/mask.o \
	src/pipelinectl/runner/report.o \
	src/pipelinectl/runner/complete.o \
	src/pipelinectl/hookd/deliver.o \
	src/pipelinectl/hookd/render.o \
	src/pipelinectl/lib/strbuf.o \
	src/pipelinectl/lib/text.o \
	src/pipelinectl/lib/clock.o \
	src/pipelinectl/lib/fs.o \
	src/pipelinectl/lib/log.o \
	src/pipelinectl/lib/sig.o \
	src/pipelinectl/lib/conn.o \
	src/pipelinectl/lib/retry.o \
	src/pipelinectl/lib/json.o \
	src/pipelinectl/lib/opts.o \
	src/pipelinectl/lib/out.o \
	src/pipelinectl/lib/sign.o \
	src/pipelinectl/lib/proc.o \
	src/pipelinectl/lib/daemon.o \
	src/pipelinectl/lib/yaml.o
CTL_HDRS = $(wildcard src/pipelinectl/*.h src/pipelinectl/*/*.h)
EXTRA_CLEAN = pipelinectl $(CTL_OBJS)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

CTL_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Wno-unused-parameter -Werror \
	-DPCTL_VERSION='"$(EXTVERSION)"' -I$(shell $(PG_CONFIG) --includedir) $(CTL_EXTRA_CFLAGS)
CTL_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq -lcurl -lcrypto -ljansson -lyaml -lmicrohttpd -lpthread $(CTL_EXTRA_LIBS)

all: pipelinectl

# each object from its source with the program's flags (not the server module's)
# the engine's objects (and their bitcode) depend on every engine header: PGXS tracks no header
# dependencies, and a struct that grows in a header (util.h's PlStmt) must not leave objects
# compiled with its old size
ENGINE_HDRS = $(wildcard src/*.h)
$(OBJS) $(OBJS:.o=.bc): $(ENGINE_HDRS)

$(CTL_OBJS): src/pipelinectl/%.o: src/pipelinectl/%.c $(CTL_HDRS)
	$(CC) $(CTL_CFLAGS) -c -o $@ $<

# the objects that print the version (EXTVERSION, above)
src/pipelinectl/main.o src/pipelinectl/hookd/deliver.o: Makefile

pipelinectl: $(CTL_OBJS)
	$(CC) $(CTL_CFLAGS) -o $@ $(CTL_OBJS) $(CTL_LIBS)

install: install-pipelinectl install-pipelinectl-docs

install-pipelinectl: pipelinectl
	$(INSTALL_PROGRAM) pipelinectl '$(DESTDIR)$(bindir)/pipelinectl'
	ln -sf '$(bindir)/pipelinectl' '$(DESTDIR)/usr/local/bin/pipelinectl' 2>/dev/null || true

# the manual page and the bash completion of pipelinectl (beside its /usr/local/bin link:
# man and bash-completion look under /usr/local/share by default)
CTL_MANDIR ?= /usr/local/share/man
CTL_COMPLETIONDIR ?= /usr/local/share/bash-completion/completions

install-pipelinectl-docs:
	$(MKDIR_P) '$(DESTDIR)$(CTL_MANDIR)/man1' '$(DESTDIR)$(CTL_COMPLETIONDIR)'
	$(INSTALL_DATA) docs/man/pipelinectl.1 '$(DESTDIR)$(CTL_MANDIR)/man1/pipelinectl.1'
	$(INSTALL_DATA) docs/completion/pipelinectl.bash '$(DESTDIR)$(CTL_COMPLETIONDIR)/pipelinectl'

.PHONY: install-pipelinectl install-pipelinectl-docs
