/*
 * runner/runner.h: "pipelinectl runner" claims job tasks and runs their
 * commands.  One event loop, no threads.  Each claimed task is a small state
 * machine:
 *
 *   ACTIVATE  claimed with start => true, so active already (no report):
 *             the command is started; a dry run or an unsupported job goes
 *             straight to FINISH
 *   RUNNING   /bin/sh -c <command> in its own process group, in a fresh
 *             work directory; stdout+stderr (one pipe) are read without
 *             blocking, repaired to UTF-8, kept as a 4 KiB tail and streamed
 *             to pipeline.append_job_task_log() in batches (0.5 s or 8 KiB);
 *             heartbeats; a task turned 'canceling', a timeout or a lost
 *             token stops the group (SIGTERM, SIGKILL 5 s later)
 *   FINISH    flush the rest of the output, then report the final stage with
 *             detail and runtime envs, batched with other tasks' (complete.c;
 *             retried while the database is away)
 *   DONE      freed
 *
 * Modules:
 *   loop.c     claims, LISTEN wake-ups, cancel checks, the event loop, signals
 *   spawn.c    starting, stopping (SIGTERM, then SIGKILL) and reaping a command
 *   supervise.c  the per-command supervisor: subreaper, kills all a command left
 *   workdir.c  work directories with a lock file; start-up clean-up of a dead runner's
 *   env.c      the job's environment in (params) and out (PIPELINE_OUTPUT)
 *   logship.c  output: UTF-8 repair, the tail, batches to append_job_task_log
 *   mask.c     sensitive values and the update token replaced by ****** in the output
 *   report.c   'active', heartbeats and the final report, under one retry policy
 *   complete.c the completer: final reports in batches of up to 50, sent once
 *              the oldest has waited 5 ms or nothing else could join them
 *
 * Locking: none on the client side; the engine's functions take the row
 * locks (claim_job_tasks SKIP LOCKED, update_job_task_status FOR UPDATE).
 */
#ifndef PCTL_RUNNER_H
#define PCTL_RUNNER_H

#include "../lib/pctl.h"

#define TAIL_MAX (4 * 1024)			/* output tail kept for detail */
#define LOG_FLUSH_BYTES (8 * 1024)	/* flush when this much is pending */
#define LOG_FLUSH_SECS 0.5			/* or when the oldest byte is this old */
#define LOG_PIECE_MAX (256 * 1024)	/* largest chunk sent in one call */
#define LOG_BUF_MAX (4 * 1024 * 1024)	/* pending output kept while the db is away */
#define LOG_TOTAL_MAX ((size_t) 64 * 1024 * 1024)	/* output stored per task */
#define READ_PER_TURN (256 * 1024)	/* fairness between children */
#define KILL_GRACE 5.0				/* SIGTERM -> SIGKILL */
#define DRAIN_GRACE 2.0				/* after the shell exits, wait this long for EOF */
#define OUTPUT_FILE_MAX (1024 * 1024)
#define MAX_TRIES 5					/* non-transient report errors before giving up */

typedef enum { TS_ACTIVATE, TS_RUNNING, TS_FINISH, TS_DONE } task_state;
typedef enum { STOP_NONE, STOP_CANCEL, STOP_TIMEOUT, STOP_LOST, STOP_SHUTDOWN } stop_reason;

/* ---------------------------------------------------------------- secrets */

typedef struct secrets
{
	char **values;				/* longest first */
	size_t *lens;
	int n;
	size_t max_len;
	bool first[256];			/* bytes a secret starts with */
	strbuf carry;				/* output held back: it may be the start of a secret */
} secrets;

void secrets_init(secrets *s);
void secrets_free(secrets *s);
void secrets_add(secrets *s, const char *v);
/* the values of the params the job declares sensitive, and the update token */
void secrets_from_job(secrets *s, const json_t *job, const json_t *params_env, const char *token);
/* masks a piece of a stream (valid UTF-8) into out; final: nothing more comes */
void secrets_mask_stream(secrets *s, const char *text, size_t len, bool final, strbuf *out);
/* a masked copy of a string (caller frees) */
char *secrets_mask_string(const secrets *s, const char *text);
/* a copy of a runtime envs object (of strings) with its values masked (caller frees) */
char *secrets_mask_envs(const secrets *s, const char *envs_json);

/* ------------------------------------------------------------------ task */

typedef struct task
{
	struct task *next;
	int64_t id;
	char idstr[24];
	char *token;
	int64_t pipeline_task_id;
	bool dry_run;
	char *kind;					/* job.runner */
	char *command;				/* job.command */
	long timeout_s;				/* job.timeout, 0 = none */
	json_t *params;				/* env text of each param (object of strings / JSON) */

	task_state state;
	retry_state retry;

	/* the child */
	pid_t pid;
	bool child_exited;
	int wstatus;
	int out_fd;
	char carry[4];
	size_t carry_len;
	int lock_fd;				/* flock held while the task is ours (workdir.c) */
	char *basedir;
	char *workdir;
	char *outfile;
	double started;
	double exit_time;
	stop_reason stop;
	double kill_at;				/* when to send SIGKILL, 0 = not yet signaled */
	bool killed_hard;

	/* output */
	strbuf logbuf;				/* not yet sent */
	double log_first;			/* when logbuf became non-empty */
	size_t log_dropped;			/* bytes dropped while the database was away */
	size_t log_sent;			/* bytes stored so far */
	bool log_truncated;
	bool log_error_logged;
	bool heartbeat_error_logged;
	strbuf tail;
	secrets secrets;			/* masked in everything the output goes to */

	/* the final report */
	char *final_stage;
	char *final_message;
	char *final_detail;
	char *final_envs;
	bool minimal_report;		/* retrying without detail and runtime envs */
	bool envs_checked;			/* the engine has vetted final_envs' names */
	double ready_at;			/* when its final report became ready to send, 0 = not */
} task;

/* --job-user: the OS user commands run as (the runner is then root) */
typedef struct job_user
{
	bool set;
	uid_t uid;
	gid_t gid;
	char *name;
	char *home;
	gid_t *groups;				/* supplementary groups */
	int ngroups;
} job_user;

typedef struct runner
{
	daemon_opts d;				/* name, concurrency, polling, --exit-when-idle ... */
	char *labels_json;
	double heartbeat;
	job_user ju;
	char *work_root;			/* where work directories are made ($TMPDIR or /tmp) */
	db_conn db;
	task *tasks;
	int ntasks;
	int handled_terms;
	bool stopping;
	bool force_stop;
	double next_claim;
	double last_claim;
	unsigned long seen_notifications;
	double next_heartbeat;
	double next_stage_check;
	bool stage_check_wanted;
	bool idle_after_claim;		/* the last claim returned nothing while nothing ran */
	char last_claim_error[256];
	double last_claim_error_at;
	double last_check_error_at;
} runner;

/* loop.c */
int runner_run(runner *r);
void runner_free(runner *r);
void task_free(task *t);
void set_final(task *t, const char *stage, const char *message, char *detail_owned, char *envs_owned);

/* spawn.c */
bool spawn(runner *r, task *t, char *errbuf, size_t errlen);
void stop_task(task *t, stop_reason why, double now);
void reap_children(runner *r, double now);
void kill_all_now(runner *r);
void kill_hard(task *t);
void kill_and_wait(task *t);

/* supervise.c */
typedef struct spawn_args
{
	const char *command;
	char **envp;
	const char *workdir;
	int out_fd;					/* write end of the output pipe */
	const job_user *ju;
	pid_t runner_pid;
} spawn_args;
PCTL_NORETURN void supervise_command(const spawn_args *a);
void close_from(int lowfd, int keep);

/* workdir.c */
bool workdir_create(runner *r, task *t, char *errbuf, size_t errlen);
void workdir_record(task *t, pid_t supervisor);
void workdir_remove(task *t);
void workdir_cleanup_dead(runner *r);

/* env.c */
bool labels_to_json(const char *spec, strbuf *out, char *err, size_t errlen);
int parse_output_envs(const char *text, size_t len, strbuf *out);
char **build_env(task *t, const job_user *ju);
/* --job-user NAME|UID: false with a message when there is no such user */
bool job_user_lookup(const char *spec, job_user *ju, char *err, size_t errlen);
void job_user_free(job_user *ju);
void free_env(char **envp);
/* the runtime envs of a finished command (PIPELINE_OUTPUT), or NULL */
char *read_output_envs(task *t);

/* logship.c */
typedef enum { FLUSH_OK, FLUSH_LATER, FLUSH_LOST } flush_result;
void output_feed(task *t, const char *data, size_t n, bool final);
void read_output(task *t);
flush_result flush_log(runner *r, task *t, bool all);
char *build_detail(task *t);

/* report.c */
void activate(runner *r, task *t, double now);
void finalize(task *t);
bool report_prepare(runner *r, task *t, double now);
void report_outcome(runner *r, task *t, const db_error *err, double now);
void heartbeat_all(runner *r);

/* complete.c: final reports in batches (update_job_task_statuses) */
#define REPORT_BATCH_MAX 50			/* reports per call */
#define REPORT_FLUSH_SECS 0.005		/* the longest a ready report waits for others */
/* ready the finishing tasks' reports; send a batch when one is due */
void complete_step(runner *r, double now);
/* when the waiting reports must go at the latest (0 = none waits) */
double complete_deadline(const runner *r);

#endif
