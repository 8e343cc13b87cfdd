/*
 * lib/fs.c: file-system helpers: rmtree (never follows symbolic links, makes
 * directories a job made unreadable ours again) and read_file_capped.
 *
 * Locking: none (single-threaded program).
 */
#define _GNU_SOURCE
#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- rmtree */

static int
rmtree_at(int dirfd, const char *name, int depth)
{
	int fd;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (depth > 512)
	{
		errno = ELOOP;
		return -1;
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
	{
		/* a directory the job made unreadable: make it ours again */
		fchmodat(dirfd, name, 0700, 0);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return -1;
	/* we need write and search permission to delete entries */
	fchmod(fd, 0700);
	d = fdopendir(fd);
	if (!d)
	{
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			continue;
		if (errno == EISDIR || errno == EPERM)
		{
			struct stat st;

			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			{
				if (rmtree_at(fd, de->d_name, depth + 1) != 0)
					rc = -1;
				continue;
			}
		}
		rc = -1;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0)
		rc = -1;
	return rc;
}

int
rmtree(const char *path)
{
	return rmtree_at(AT_FDCWD, path, 0);
}

char *
read_file_capped(const char *path, size_t max, size_t *len_out, bool *truncated)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	strbuf sb;
	char buf[8192];

	*len_out = 0;
	if (truncated)
		*truncated = false;
	if (fd < 0)
		return NULL;
	sb_init(&sb);
	sb_reserve(&sb, 0);
	for (;;)
	{
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			int e = errno;

			close(fd);
			sb_free(&sb);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		if (sb.len + (size_t) n > max)
		{
			sb_append(&sb, buf, max - sb.len);
			if (truncated)
				*truncated = true;
			break;
		}
		sb_append(&sb, buf, (size_t) n);
	}
	close(fd);
	*len_out = sb.len;
	return sb_steal(&sb);
}

