/*
 * fuzz_imap_cmd - libFuzzer target for the IMAP command reader, the
 * tokeniser and the typed argument parsers (mailbox/imap_parse.h,
 * imap_args.h, mutf7.h).
 *
 * Byte 0 picks the mode (bit 0: limits before login, bit 1: refuse every
 * synchronising literal); bytes 1-8 are chunk sizes; the rest is what a
 * client sends.  The bytes are fed twice under small limits: in chunks
 * of those sizes, taken in turn, and all at once.
 *
 * Invariants, besides no crash, leak or read out of bounds: both feeds
 * give the same events and the same commands; a feed consumes no more
 * than it was given, and all of it when it needs more; the reader never
 * holds more than twice the command limit (its buffer doubles); no
 * command is longer than the command limit, no literal token longer than
 * the literal limit; every token lies inside its command, every list's
 * members inside the list; an idle reader owns no buffer.  On the
 * tokens: sequence sets have 1 to IMAP_SEQ_RANGES_MAX ranges with lo <=
 * hi and no 0; FETCH items have a response name; a SEARCH tree is no
 * deeper than its bound; a STORE result passes mbox_valid_flags; an
 * accepted mailbox name passes mbox_valid_folder and holds no wildcard;
 * modified UTF-7 gives back the UTF-8 it encoded.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "mailbox/imap_args.h"
#include "mailbox/imap_parse.h"
#include "mailbox/mutf7.h"
#include "mailbox/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHUNKS 8
#define CHUNK_MAX 64
#define FZ_LINE 256
#define FZ_LITERAL 512
#define FZ_LITERAL_PRELOGIN 64
#define FZ_COMMAND 2048
#define FZ_ABS 100000
#define FZ_DEPTH 8
#define FZ_TOKENS 200

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static unsigned
search_depth(const struct imap_search *s)
{
	unsigned d = 0;

	for (size_t i = 0; i < s->nsub; i++) {
		unsigned k = search_depth(s->sub[i]);

		if (k > d)
			d = k;
	}
	return d + 1;
}

static void
check_set(const struct imap_seqset *set)
{
	check(set->n >= 1 && set->n <= IMAP_SEQ_RANGES_MAX);
	for (size_t i = 0; i < set->n; i++)
		check(set->v[i].lo >= 1 && set->v[i].lo <= set->v[i].hi);
}

/* strings - the checks on one string token. */
static void
strings(const struct imap_tok *t)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct imap_seqset set;
	char err[IMAP_ERR_MAX];

	if (imap_seqset_parse(t->s, t->len, &set, err, sizeof err) == 0)
		check_set(&set);
	imap_seqset_free(&set);
	if (imap_mailbox_name(t->s, t->len, &a, err, sizeof err) == 0) {
		size_t first = strcspn(a.data, "/");

		check(a.len == t->len && strlen(a.data) == a.len);
		check(mbox_valid_folder(a.data) && strpbrk(a.data, "*%") == NULL);
		check(first != 5 || strncasecmp(a.data, "INBOX", 5) != 0 ||
		    memcmp(a.data, "INBOX", 5) == 0);
	}
	buf_reset(&a);
	if (mutf7_encode(t->s, t->len, &a, err, sizeof err) == 0) {
		check(mutf7_decode(a.data ? a.data : "", a.len, &b, err, sizeof err) == 0);
		check(b.len == t->len && (t->len == 0 || memcmp(b.data, t->s, t->len) == 0));
	}
	buf_reset(&b);
	if (mutf7_decode(t->s, t->len, &b, err, sizeof err) == 0) {
		buf_reset(&a);
		check(mutf7_encode(b.data ? b.data : "", b.len, &a, err, sizeof err) == 0);
		check(a.len == t->len && (t->len == 0 || memcmp(a.data, t->s, t->len) == 0));
	}
	buf_free(&a);
	buf_free(&b);
}

/* typed - the typed parsers over the arguments, as the command name says. */
static void
typed(const struct imap_cmd *cmd)
{
	const struct imap_tok *t = cmd->args, *end;
	const char *name = cmd->name;
	char err[IMAP_ERR_MAX];

	if (cmd->nargs == 0)
		return;
	end = cmd->args + cmd->nargs;

	if (strcasecmp(name, "UID") == 0 && t < end && t->type == IMAP_TOK_ATOM) {
		name = t->s;
		t = imap_tok_next(t);
	}
	if (strncasecmp(name, "FETCH", 5) == 0 && t < end) {
		struct imap_fetch f;

		if (imap_fetch_parse(imap_tok_next(t), end, &f, err, sizeof err) == 0) {
			check(f.n >= 1);
			for (size_t i = 0; i < f.n; i++)
				check(f.v[i].resp != NULL && f.v[i].resp[0] != '\0');
		}
		imap_fetch_free(&f);
	} else if (strncasecmp(name, "STORE", 5) == 0 && t < end) {
		struct imap_store s;

		if (imap_store_parse(imap_tok_next(t), end, &s, err, sizeof err) == 0)
			check(mbox_valid_flags(s.flags));
		imap_store_free(&s);
	} else if (strncasecmp(name, "SEARCH", 6) == 0) {
		struct imap_search *s;
		int rc = imap_search_parse(t, end, &s, err, sizeof err);

		check(rc == 0 || rc == -EINVAL || rc == -ENOTSUP);
		if (rc == 0)
			check(search_depth(s) <= IMAP_SEARCH_DEPTH_MAX + 1);
		else
			check(s == NULL);
		imap_search_free(s);
	}
	for (t = cmd->args; t < end; t++)
		if (t->type != IMAP_TOK_LIST)
			strings(t);
}

static void
tokens(const struct imap_cmd *cmd, const struct imap_limits *lim)
{
	const char *lo = cmd->raw, *hi = cmd->raw + cmd->raw_len;

	check(cmd->nargs <= lim->max_tokens);
	check(cmd->tag >= lo && cmd->tag < hi && cmd->name >= lo && cmd->name < hi);
	for (size_t i = 0; i < cmd->nargs; i++) {
		const struct imap_tok *t = &cmd->args[i];

		check(t->skip >= 1 && i + t->skip <= cmd->nargs);
		if (t->type == IMAP_TOK_LIST)
			continue;
		check(t->skip == 1 && t->s >= lo && t->s + t->len <= hi);
		if (t->type == IMAP_TOK_LITERAL)
			check(t->len <= lim->max_literal);
	}
}

/* feed - all of in, in chunks from sizes (NULL: at once); the events to log. */
static void
feed(const struct imap_limits *lim, bool reject, const uint8_t *sizes, const char *in,
    size_t len, struct buf *log)
{
	struct imap_reader r;
	size_t off = 0, k = 0;

	imap_reader_init(&r, lim);
	while (off < len) {
		size_t n = sizes ? 1 + sizes[k++ % CHUNKS] % CHUNK_MAX : len - off;
		bool dead = false;

		if (n > len - off)
			n = len - off;
		while (n > 0 && !dead) {
			size_t used = 0;
			enum imap_rd_status st = imap_reader_feed(&r, in + off, n, &used);
			struct imap_cmd cmd;
			char err[IMAP_ERR_MAX];

			check(used <= n);
			check(r.cmd.cap <= 2 * (lim->max_command + 1) + CHUNK_MAX);
			off += used;
			n -= used;
			if (st != IMAP_RD_NEEDMORE)
				buf_appendf(log, "%d:", (int)st);
			switch (st) {
			case IMAP_RD_NEEDMORE:
				check(n == 0);
				break;
			case IMAP_RD_CONTINUE:
				if (reject)
					imap_reader_reject(&r);
				break;
			case IMAP_RD_COMMAND:
				check(r.cmd.len <= lim->max_command);
				buf_append(log, r.cmd.data, r.cmd.len);
				if (imap_reader_take(&r, &cmd, err, sizeof err) == 0) {
					tokens(&cmd, lim);
					typed(&cmd);
				}
				imap_cmd_free(&cmd);
				check(imap_reader_idle(&r) && r.cmd.cap == 0);
				break;
			case IMAP_RD_ERROR:
				buf_appends(log, imap_reader_error(&r));
				check(imap_reader_idle(&r) && r.cmd.cap == 0);
				break;
			case IMAP_RD_FATAL:
				buf_appends(log, imap_reader_error(&r));
				dead = true;
				off = len;
				break;
			}
		}
	}
	imap_reader_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_limits lim;
	struct buf a = BUF_INIT, b = BUF_INIT;
	bool before_login, reject;

	if (size < 1 + CHUNKS)
		return 0;
	before_login = data[0] & 1;
	reject = data[0] & 2;
	imap_limits_default(&lim, before_login);
	lim.max_line = FZ_LINE;
	lim.max_literal = before_login ? FZ_LITERAL_PRELOGIN : FZ_LITERAL;
	lim.max_command = FZ_COMMAND;
	lim.abs_literal = FZ_ABS;
	lim.max_depth = FZ_DEPTH;
	lim.max_tokens = FZ_TOKENS;
	feed(&lim, reject, data + 1, (const char *)data + 1 + CHUNKS, size - 1 - CHUNKS, &a);
	feed(&lim, reject, NULL, (const char *)data + 1 + CHUNKS, size - 1 - CHUNKS, &b);
	/* NEEDMORE is not logged: how often it comes depends on the split. */
	check(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
	buf_free(&a);
	buf_free(&b);
	return 0;
}
