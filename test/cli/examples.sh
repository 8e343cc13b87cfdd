#!/usr/bin/env bash
# examples: the newcomer's path of the README's Quick start, without SQL: apply -f examples/,
# a real runner, "run hello-ci --watch", "logs --run", "graph"; then hello-deploy, whose audit
# gate is passed with "pipelinectl approve"; hello-nightly; all must succeed.  The jobs of
# examples/ carry no labels, so the runner here claims them (the CLI scripts run one at a time).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

pctl() {
	RC=0
	"$PIPELINECTL" "$@" >"$T_DIR/out" 2>"$T_DIR/err" || RC=$?
	OUT=$(cat "$T_DIR/out")
	ERR=$(cat "$T_DIR/err")
	[[ -z $ERR ]] || note "stderr: $ERR"
}
A=$T_DIR/artifacts
# hello-deploy allows one unfinished run at a time: none may be left over (before and after)
cancel_hello() {
	q "SELECT count(pipeline.cancel_pipeline_task(id, 'test clean-up')) FROM pipeline.pipeline_task
	    WHERE pipeline_name LIKE 'hello-%' AND stage < 'canceled'" >/dev/null
}
cancel_hello
on_exit cancel_hello

pctl lint "$PL_ROOT/examples/"
is "lint examples/: exit 0" "$RC" 0
pctl apply -f "$PL_ROOT/examples/"
is "apply -f examples/: exit 0" "$RC" 0
like "apply defined the jobs and pipelines" "$OUT" \
	"^job compile-hello: version [0-9]+"$'\n'"job package-hello: version [0-9]+"$'\n'"pipeline hello-ci: version [0-9]+"$'\n'"pipeline hello-deploy: version [0-9]+"$'\n'"pipeline hello-nightly: version [0-9]+$"

bg_start runner env TMPDIR="$T_DIR/tmp" "$PIPELINECTL" runner --concurrency 4 --poll-interval 0.2 --name "$T_ID-runner"

pctl run hello-ci -p "ARTIFACTS=$A/ci" --watch
is "run hello-ci --watch: exit 0 (the run succeeded)" "$RC" 0
ci=$(head -n 1 <<<"$OUT")
like "watch's summary" "$(tail -n 1 <<<"$OUT")" "hello-ci #$ci succeeded in .* \\(6/6 tasks done\\)$"
ok "the tarball was built" test -s "$A/ci/hello-1.0.$ci.tar.gz"
is "its checksum verifies" "$(cd "$A/ci" && sha256sum -c "hello-1.0.$ci.tar.gz.sha256")" "hello-1.0.$ci.tar.gz: OK"
pctl logs --run "$ci"
is "logs --run: exit 0" "$RC" 0
like "logs --run shows every task's output under its header" "$OUT" \
	"== build\\.compile \\(job task [0-9]+, attempt 1\\) ==
hello, world!
== test\\.run \\(job task [0-9]+, attempt 1\\) ==
hello, world!
== test\\.greeting .*bonjour, monde!.*== package\\.tarball .*hello-1\\.0\\.$ci/hello\\.c"
pctl graph "$ci"
is "graph: exit 0" "$RC" 0
like "graph prints a Mermaid flowchart of the run" "$OUT" "^(flowchart|graph) "
pctl status "$ci"
is "status of the finished run: exit 0" "$RC" 0

# the deploy: approve the gate with pipelinectl
pctl run hello-deploy -p "ARTIFACTS=$A/deploy" -p "DEPLOY_DIR=$A/site"
is "run hello-deploy: exit 0" "$RC" 0
dep=$OUT
install=$(task_id "$dep" deploy install)
_waits() { [[ $(task_field "$install" "coalesce(gate, '-')") == audit ]]; }
ok "the deploy waits at its audit gate" wait_until 60 _waits
pctl status "$dep"
like "status says who must approve" "$OUT" "waiting for approval \\(audit gate\\) by: postgres, release-manager"
wout=$(timeout 3 "$PIPELINECTL" watch "$dep" </dev/null 2>&1 || true)
like "watch shows the gate's task, who must act and how" "$wout" \
	"deploy/install \\[$install\\]  pending \\(waiting for approval by postgres, release-manager: pipelinectl approve $install\\)"
pctl approve "$install" --comment "ship it"
is "approve: exit 0" "$RC" 0
pctl watch "$dep"
is "the deploy run succeeds" "$RC" 0
is "the release is live" "$("$A/site/current/hello" there)" "hello, there!"

pctl run hello-nightly -p "ARTIFACTS=$A/nightly" --watch
is "run hello-nightly --watch: exit 0" "$RC" 0

t_done
