/*
 * runner/env.c: the job's environment, in and out.
 *
 * In: the runner's own environment, less its database settings (every PG*
 * variable: host, port, user, password, passfile, service, SSL files ... -
 * a job must not reach the database as the runner), less what the task's
 * params and PIPELINE_OUTPUT override, plus one variable per param (the claim returns
 * each param's value as the text the variable gets: strings as they are,
 * numbers as the server wrote them, true / false; objects and arrays as
 * compact JSON).  With --job-user, HOME, USER and LOGNAME are the job user's.
 * Out: the NAME=value lines a command wrote to $PIPELINE_OUTPUT, as the
 * jsonb object of runtime envs reported with the final stage - unless it sets
 * a reserved name (PATH, LD_*, PG*, PIPELINE_*, ...: runtime envs reach every
 * later job of the run, so such a name would let one job poison the commands
 * of the next, which may hold secrets); then the task fails instead.
 * Also --labels parsing (k=v,... as a JSON object).
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

bool
labels_to_json(const char *spec, strbuf *out, char *err, size_t errlen)
{
	const char *p = spec ? spec : "";
	bool first = true;

	sb_reset(out);
	sb_putc(out, '{');
	while (*p)
	{
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t) (end - p) : strlen(p);
		char *item = xstrndup(p, n);
		char *k = item, *eq, *v;

		while (*k == ' ' || *k == '\t')
			k++;
		size_t kl = strlen(k);

		while (kl > 0 && (k[kl - 1] == ' ' || k[kl - 1] == '\t'))
			k[--kl] = '\0';
		if (*k)
		{
			eq = strchr(k, '=');
			if (!eq || eq == k)
			{
				snprintf(err, errlen, "bad label \"%s\": expected key=value", k);
				free(item);
				return false;
			}
			*eq = '\0';
			v = eq + 1;
			/* trim around the '=' */
			for (char *q = eq - 1; q >= k && (*q == ' ' || *q == '\t'); q--)
				*q = '\0';
			while (*v == ' ' || *v == '\t')
				v++;
			if (!first)
				sb_putc(out, ',');
			json_write_cstr(out, k);
			sb_putc(out, ':');
			json_write_cstr(out, v);
			first = false;
		}
		free(item);
		p += n;
		if (*p == ',')
			p++;
	}
	sb_putc(out, '}');
	return true;
}

static bool
env_name_ok(const char *s, size_t n)
{
	if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
	{
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

int
parse_output_envs(const char *text, size_t len, strbuf *out)
{
	typedef struct { const char *name; size_t nlen; const char *val; size_t vlen; } kv;
	kv *items = NULL;
	size_t count = 0, cap = 0;
	size_t pos = 0;
	int written = 0;

	while (pos < len)
	{
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t) (nl - line) : len - pos;

		pos += ll + (nl ? 1 : 0);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		while (ll > 0 && (*line == ' ' || *line == '\t'))
		{
			line++;
			ll--;
		}
		if (ll == 0 || line[0] == '#')
			continue;
		const char *eq = memchr(line, '=', ll);

		if (!eq || !env_name_ok(line, (size_t) (eq - line)))
			continue;			/* malformed: ignored */
		size_t nlen = (size_t) (eq - line);
		size_t i;

		/* a name given twice: the last value wins */
		for (i = 0; i < count; i++)
			if (items[i].nlen == nlen && memcmp(items[i].name, line, nlen) == 0)
				break;
		if (i == count)
		{
			if (count == cap)
			{
				cap = cap ? cap * 2 : 16;
				items = xrealloc(items, cap * sizeof(kv));
			}
			count++;
		}
		items[i].name = line;
		items[i].nlen = nlen;
		items[i].val = eq + 1;
		items[i].vlen = ll - nlen - 1;
	}
	sb_reset(out);
	sb_putc(out, '{');
	for (size_t i = 0; i < count; i++)
	{
		if (i)
			sb_putc(out, ',');
		json_write_string(out, items[i].name, items[i].nlen);
		sb_putc(out, ':');
		json_write_string(out, items[i].val, items[i].vlen);
		written++;
	}
	sb_putc(out, '}');
	free(items);
	return written;
}


/* a variable of the runner's environment a job does not get */
static bool
runner_only(const char *name, size_t len, const job_user *ju)
{
	if (len >= 2 && name[0] == 'P' && name[1] == 'G')
		return true;			/* libpq's settings: PGHOST, PGPASSWORD, PGPASSFILE, PGSSL*, ... */
	if (len == strlen("PIPELINE_OUTPUT") && memcmp(name, "PIPELINE_OUTPUT", len) == 0)
		return true;
	if (ju->set && ((len == 4 && memcmp(name, "HOME", 4) == 0) || (len == 4 && memcmp(name, "USER", 4) == 0) ||
					(len == 7 && memcmp(name, "LOGNAME", 7) == 0)))
		return true;
	return false;
}

char **
build_env(task *t, const job_user *ju)
{
	size_t n = 0, cap;
	char **envp;
	size_t nparams = json_is_object(t->params) ? json_object_size(t->params) : 0;
	const char *key;
	json_t *value;

	for (char **e = environ; e && *e; e++)
		n++;
	cap = n + nparams + 5;
	envp = xcalloc(cap, sizeof(char *));
	n = 0;

	/* the runner's environment, less what the params and PIPELINE_OUTPUT override */
	for (char **e = environ; e && *e; e++)
	{
		const char *eq = strchr(*e, '=');
		size_t kl = eq ? (size_t) (eq - *e) : strlen(*e);
		bool overridden = runner_only(*e, kl, ju);

		if (!overridden && nparams)
		{
			char *k = xstrndup(*e, kl);

			overridden = json_object_get(t->params, k) != NULL;
			free(k);
		}
		if (!overridden)
			envp[n++] = xstrdup(*e);
	}
	if (nparams)
	{
		json_object_foreach(t->params, key, value)
		{
			strbuf val;

			if (!*key || strchr(key, '=') || json_is_null(value))
				continue;		/* not a possible variable name, or no value */
			sb_init(&val);
			if (!pj_scalar_text(value, &val))
				pj_write(&val, value);
			envp[n++] = xasprintf("%s=%s", key, sb_str(&val));	/* cut at a NUL */
			sb_free(&val);
		}
	}
	if (ju->set)
	{
		if (!json_object_get(t->params, "HOME"))
			envp[n++] = xasprintf("HOME=%s", ju->home);
		if (!json_object_get(t->params, "USER"))
			envp[n++] = xasprintf("USER=%s", ju->name);
		if (!json_object_get(t->params, "LOGNAME"))
			envp[n++] = xasprintf("LOGNAME=%s", ju->name);
	}
	envp[n++] = xasprintf("PIPELINE_OUTPUT=%s", t->outfile);
	envp[n] = NULL;
	return envp;
}

void
free_env(char **envp)
{
	for (char **e = envp; e && *e; e++)
		free(*e);
	free(envp);
}

char *
read_output_envs(task *t)
{
	char *envs = NULL;
	size_t len;
	bool truncated;
	char *text = read_file_capped(t->outfile, OUTPUT_FILE_MAX, &len, &truncated);

	if (text)
	{
		strbuf sb;

		sb_init(&sb);
		if (truncated)
			log_warn("job task %s: PIPELINE_OUTPUT larger than %d bytes; the rest is ignored",
					 t->idstr, OUTPUT_FILE_MAX);
		if (parse_output_envs(text, len, &sb) > 0)
			envs = sb_steal(&sb);
		sb_free(&sb);
		free(text);
	}
	else if (errno != ENOENT)
		log_warn("job task %s: cannot read PIPELINE_OUTPUT: %s", t->idstr, strerror(errno));
	return envs;
}

bool
job_user_lookup(const char *spec, job_user *ju, char *err, size_t errlen)
{
	struct passwd *pw;
	int64_t uid;
	int n = 16;

	memset(ju, 0, sizeof(*ju));
	errno = 0;
	pw = parse_int64(spec, &uid) ? getpwuid((uid_t) uid) : getpwnam(spec);
	if (!pw)
	{
		snprintf(err, errlen, "no such user \"%s\"%s%s", spec, errno ? ": " : "", errno ? strerror(errno) : "");
		return false;
	}
	if (pw->pw_uid == 0)
	{
		snprintf(err, errlen, "\"%s\" is root: jobs would not be isolated", spec);
		return false;
	}
	ju->set = true;
	ju->uid = pw->pw_uid;
	ju->gid = pw->pw_gid;
	ju->name = xstrdup(pw->pw_name);
	ju->home = xstrdup(pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
	/* the supplementary groups now: initgroups() is not for a forked child */
	for (;;)
	{
		ju->groups = xrealloc(ju->groups, (size_t) n * sizeof(gid_t));
		if (getgrouplist(ju->name, ju->gid, ju->groups, &n) >= 0)
			break;
		if (n > 65536)
		{
			snprintf(err, errlen, "user \"%s\" is in too many groups", spec);
			job_user_free(ju);
			return false;
		}
		n *= 2;
	}
	ju->ngroups = n;
	return true;
}

void
job_user_free(job_user *ju)
{
	free(ju->name);
	free(ju->home);
	free(ju->groups);
	memset(ju, 0, sizeof(*ju));
}

/*
 * Names a job may not set as runtime envs (the same list as the engine's
 * pipeline.runtime_env_name_allowed(); README, Params): what changes which
 * program runs or what it loads, the shell's own variables, libpq's settings
 * and the names of the pipeline itself.
 */
static const char *const reserved_exact[] = {
	"PATH", "HOME", "SHELL", "IFS", "ENV", "BASH_ENV", "CDPATH", "PS4", "PWD", "OLDPWD", "TMPDIR",
	"GCONV_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PERL5LIB", "PERL5OPT", "RUBYOPT", "NODE_OPTIONS",
};
static const char *const reserved_prefix[] = {"LD_", "DYLD_", "PG", "PIPELINE_", "JOB_TASK_", "BASH_FUNC_"};

bool
runtime_env_reserved(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(reserved_exact); i++)
		if (strcmp(name, reserved_exact[i]) == 0)
			return true;
	for (size_t i = 0; i < ARRAY_LEN(reserved_prefix); i++)
		if (strncmp(name, reserved_prefix[i], strlen(reserved_prefix[i])) == 0)
			return true;
	return false;
}

char *
reserved_env_in(const char *envs_json)
{
	json_t *envs = pj_parse(envs_json, strlen(envs_json), NULL, 0);
	const char *key;
	json_t *value;
	char *found = NULL;

	if (json_is_object(envs))
		json_object_foreach(envs, key, value)
		{
			if (runtime_env_reserved(key))
			{
				found = xstrdup(key);
				break;
			}
		}
	json_decref(envs);
	return found;
}
