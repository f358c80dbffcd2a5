/*
 * file - reading secret files: keys, shared secrets, passwords kept on
 * disk (the VERP key, DKIM private keys, a Redis or smarthost password
 * file).
 *
 * A secret file must be a regular file that nobody but its owner can
 * read (group read may be allowed by the caller: a key shared with a
 * signing group), no larger than the caller's cap and not empty.  Its
 * bytes are read into memory owned by a struct file_secret, which
 * file_secret_free() zeroes before freeing; every copy the reader made on
 * the way (partial reads, a buffer that grew) is zeroed as well.
 *
 * Errors are 0 or a negative errno, with err holding one sentence that
 * names the file and what to do ("/var/lib/kurier/verp.key: mode 0644
 * lets group or others read the secret: chmod 600
 * /var/lib/kurier/verp.key").  Blocking file I/O: call at start-up,
 * reload or from a command, not on the loop's hot path.
 */
#ifndef KURIER_CORE_FILE_H
#define KURIER_CORE_FILE_H

#include <stddef.h>

/* A secret read from a file: len bytes at data, then a NUL not counted. */
struct file_secret {
	char *data;
	size_t len;
};

enum {
	FILE_SECRET_GROUP_READ = 1 << 0,  /* mode 0640 passes (not group write) */
	FILE_SECRET_NOFOLLOW = 1 << 1,    /* a symbolic link is refused (ELOOP) */
	FILE_SECRET_TRIM = 1 << 2,        /* drop one trailing "\n" or "\r\n" (text secrets) */
	FILE_SECRET_ANY_MODE = 1 << 3,    /* no mode check: for a reader that uses
					     only the public half (kurierctl dns) */
};

/*
 * file_read_secret - read the secret file at path into *out.
 * max is the largest size accepted, in bytes (after FILE_SECRET_TRIM,
 * the file may be up to 2 bytes longer); flags are FILE_SECRET_* bits.
 * Returns 0 with out->data holding out->len bytes and a NUL (release it
 * with file_secret_free()), or a negative errno with *out empty and err
 * set:
 *   -ENOENT and other open() errors  "PATH: cannot open: REASON"
 *   -ELOOP                           a link, with FILE_SECRET_NOFOLLOW
 *   -EINVAL                          "PATH: not a regular file", "PATH: empty"
 *   -EPERM                           "PATH: mode 0644 lets group or others
 *                                     read the secret: chmod 600 PATH"
 *   -EFBIG                           "PATH: larger than MAX bytes"
 *   read() errors                    "PATH: cannot read: REASON"
 * The mode is checked on the open file (fstat), so a rename between the
 * check and the read cannot swap in another file.
 */
int file_read_secret(struct file_secret *out, const char *path, size_t max,
    unsigned flags, char *err, size_t errsz);

/* file_secret_free - zero and free s's bytes; s is left empty.  NULL-safe. */
void file_secret_free(struct file_secret *s);

#endif
