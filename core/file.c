/*
 * file - secret files.  See file.h.
 */
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/str.h"
#include "core/xmalloc.h"

/* First buffer when fstat gives no useful size (a file being written). */
#define SECRET_CHUNK 256

/* zfree - zero n bytes at p, then free it. */
static void
zfree(char *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

/*
 * read_capped - read fd to its end into *buf (*cap bytes, at least 2),
 * growing it (old copies zeroed) and keeping a byte for the NUL, but
 * stopping once more than max bytes came.  Returns the bytes read
 * (more than max means "too large") or -errno.
 */
static ssize_t
read_capped(int fd, size_t max, char **buf, size_t *cap)
{
	size_t got = 0;

	for (;;) {
		ssize_t n;

		if (got + 1 == *cap) {
			size_t ncap = *cap * 2 > max + 2 ? max + 2 : *cap * 2;
			char *nbuf;

			nbuf = xmalloc(ncap);
			memcpy(nbuf, *buf, got);
			zfree(*buf, *cap);
			*buf = nbuf;
			*cap = ncap;
		}
		n = read(fd, *buf + got, *cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return (ssize_t)got;
		got += (size_t)n;
		if (got > max)
			return (ssize_t)got;
	}
}

int
file_read_secret(struct file_secret *out, const char *path, size_t max,
    unsigned flags, char *err, size_t errsz)
{
	mode_t allowed = (flags & FILE_SECRET_GROUP_READ) ? 0640 : 0600;
	size_t limit = max + ((flags & FILE_SECRET_TRIM) ? 2 : 0), cap;
	struct stat st;
	char *buf;
	ssize_t got;
	int fd, e;

	out->data = NULL;
	out->len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC |
	    ((flags & FILE_SECRET_NOFOLLOW) ? O_NOFOLLOW : 0));
	if (fd < 0) {
		e = errno;
		if (e == ELOOP && (flags & FILE_SECRET_NOFOLLOW))
			return str_err(err, errsz, -e,
			    "%s: a symbolic link: name the file itself", path);
		return str_err(err, errsz, -e, "%s: cannot open: %s", path,
		    strerror(e));
	}
	if (fstat(fd, &st) != 0) {
		e = errno;
		close(fd);
		return str_err(err, errsz, -e, "%s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return str_err(err, errsz, -EINVAL, "%s: not a regular file", path);
	}
	if (!(flags & FILE_SECRET_ANY_MODE) && (st.st_mode & 0777 & ~allowed) != 0) {
		close(fd);
		return str_err(err, errsz, -EPERM,
		    "%s: mode %04o lets %s read the secret: chmod 600 %s", path,
		    (unsigned)(st.st_mode & 07777),
		    (flags & FILE_SECRET_GROUP_READ) ? "others than its owner and group" :
		    "group or others", path);
	}
	if (st.st_size > 0 && (uint64_t)st.st_size > limit) {
		close(fd);
		return str_err(err, errsz, -EFBIG, "%s: larger than %zu bytes", path, max);
	}
	/* Room for the whole file, one byte to see it grew, and the NUL. */
	cap = st.st_size > 0 ? (size_t)st.st_size + 2 : SECRET_CHUNK;
	if (cap > limit + 2)
		cap = limit + 2;
	buf = xmalloc(cap);
	got = read_capped(fd, limit, &buf, &cap);
	close(fd);
	if (got < 0) {
		zfree(buf, cap);
		return str_err(err, errsz, (int)got, "%s: cannot read: %s", path,
		    strerror((int)-got));
	}
	if ((flags & FILE_SECRET_TRIM) && got > 0 && buf[got - 1] == '\n') {
		got--;
		if (got > 0 && buf[got - 1] == '\r')
			got--;
	}
	if ((size_t)got > max) {
		zfree(buf, cap);
		return str_err(err, errsz, -EFBIG, "%s: larger than %zu bytes", path, max);
	}
	if (got == 0) {
		zfree(buf, cap);
		return str_err(err, errsz, -EINVAL, "%s: empty", path);
	}
	/* Shrinking would leave a copy behind: keep the buffer, zero the tail. */
	explicit_bzero(buf + got, cap - (size_t)got);
	out->data = buf;
	out->len = (size_t)got;
	return 0;
}

void
file_secret_free(struct file_secret *s)
{
	if (s == NULL)
		return;
	/* The buffer may be longer than len; its tail is zero already. */
	if (s->data != NULL)
		explicit_bzero(s->data, s->len);
	free(s->data);
	s->data = NULL;
	s->len = 0;
}
