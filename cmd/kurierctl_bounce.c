/*
 * kurierctl_bounce - kurierctl bounce parse: mailbox/bounce.h's parser
 * and classifier over message files, without Redis or a configuration;
 * and kurierctl bounce list: the bounce logs the inbound MX keeps per
 * user (policy_bounce_list).
 *
 *   kurierctl bounce parse [--json] FILE...      ("-" is standard input)
 *   kurierctl bounce list [--user U] [--class C] [--since 7d]
 *
 * Every file that can be read yields its output, whatever it holds:
 * with --json exactly one JSON object on one line,
 *   {"file": PATH, "type": "dsn|complaint|auto-reply|none",
 *    "recipients": [{"recipient": ADDR, "status": "5.1.1",
 *      "class": "hard|soft|complaint|auto-reply|none", "reason": WORD,
 *      "remote_mta": TEXT, "diagnostic": TEXT}]}
 * (RFC 8259 strings: control characters as \uXXXX, bytes that are not
 * UTF-8 as U+FFFD, so every line is valid JSON); without it a table,
 * one line per recipient.  A file that cannot be read is named on
 * stderr and the others go on; the exit status is then 1, else 0.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/ctl.h"
#include "cmd/kurierctl_int.h"
#include "core/buf.h"
#include "core/str.h"
#include "mailbox/bounce.h"

/* Bytes of one file parsed; a return is at most [mailbox] max_bounce_size (10M). */
#define BOUNCE_FILE_MAX (64u << 20)

int
check_bounce_parse(struct ctl *c, int argc, char **argv)
{
	c->files = argv;
	c->nfiles = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			c->json = true;
		} else if (strcmp(argv[i], "--") == 0) {
			for (i++; i < argc; i++)
				argv[c->nfiles++] = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return ctl_usage_error(c, "unknown option", argv[i],
			    "bounce parse takes --json and files (see kurierctl help)");
		} else {
			/* Files are compacted in place: argv outlives the command. */
			argv[c->nfiles++] = argv[i];
		}
	}
	if (c->nfiles == 0)
		return ctl_usage_error(c, "bounce parse", NULL,
		    "needs at least one FILE (e.g. kurierctl bounce parse --json return.eml)");
	return CTL_OK;
}

/* read_file - all of path ("-": stdin) into b, at most BOUNCE_FILE_MAX bytes; 0 or -errno. */
static int
read_file(const char *path, struct buf *b, bool *cut)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	int rc = 0;

	*cut = false;
	if (f == NULL)
		return -errno;
	errno = 0;
	for (;;) {
		char *p = buf_reserve(b, 65536);
		size_t n = fread(p, 1, 65536, f);

		buf_commit(b, n);
		if (b->len > BOUNCE_FILE_MAX) {
			b->len = BOUNCE_FILE_MAX;
			b->data[b->len] = '\0';
			*cut = true;
			break;
		}
		if (n == 0)
			break;
	}
	if (ferror(f))
		rc = errno != 0 ? -errno : -EIO;
	if (f != stdin)
		fclose(f);
	return rc;
}

/* utf8_len - length of the valid UTF-8 sequence at s (RFC 3629), 0 if none. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* No overlong forms, no surrogates, nothing above U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* json_str - s as a JSON string (RFC 8259 7), quotes included. */
static void
json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p);

	fputc('"', f);
	while (n > 0) {
		size_t l = utf8_len(p, n);

		if (l == 0) {
			fputs("\\ufffd", f);
			p++;
			n--;
			continue;
		}
		if (l == 1) {
			switch (*p) {
			case '"':
				fputs("\\\"", f);
				break;
			case '\\':
				fputs("\\\\", f);
				break;
			case '\n':
				fputs("\\n", f);
				break;
			case '\r':
				fputs("\\r", f);
				break;
			case '\t':
				fputs("\\t", f);
				break;
			default:
				if (*p < 0x20 || *p == 0x7f)
					fprintf(f, "\\u%04x", *p);
				else
					fputc(*p, f);
			}
		} else {
			fwrite(p, 1, l, f);
		}
		p += l;
		n -= l;
	}
	fputc('"', f);
}

static void
print_json(const char *path, const struct bounce_result *r)
{
	fputs("{\"file\": ", stdout);
	json_str(stdout, path);
	fputs(", \"type\": ", stdout);
	json_str(stdout, bounce_type_name(r->type));
	fputs(", \"recipients\": [", stdout);
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct bounce_rcpt *rc = &r->rcpt[i];

		fputs(i > 0 ? ", {\"recipient\": " : "{\"recipient\": ", stdout);
		json_str(stdout, rc->recipient);
		fputs(", \"status\": ", stdout);
		json_str(stdout, rc->status);
		fputs(", \"class\": ", stdout);
		json_str(stdout, bounce_class_name(rc->cls));
		fputs(", \"reason\": ", stdout);
		json_str(stdout, rc->reason);
		fputs(", \"remote_mta\": ", stdout);
		json_str(stdout, rc->remote_mta);
		fputs(", \"diagnostic\": ", stdout);
		json_str(stdout, rc->diagnostic);
		fputs("}", stdout);
	}
	fputs("]}\n", stdout);
}

/*
 * print_table - one line per recipient under a line for the file:
 *   FILE  TYPE
 *     RECIPIENT  STATUS  CLASS  REASON  DIAGNOSTIC
 */
static void
print_table(struct ctl *c, const char *path, const struct bounce_result *r)
{
	printf("%s  %s", ctl_esc(c, path, 0), bounce_type_name(r->type));
	if (r->type == BOUNCE_TYPE_COMPLAINT && r->feedback_type[0] != '\0')
		printf(" (%s)", ctl_esc(c, r->feedback_type, 32));
	printf("%s\n", r->nrcpt == 0 ? ", no recipient" : "");
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct bounce_rcpt *rc = &r->rcpt[i];

		printf("  %-36s %-7s %-10s %-17s %s\n",
		    rc->recipient[0] != '\0' ? ctl_esc(c, rc->recipient, 64) : "-",
		    rc->status[0] != '\0' ? rc->status : "-", bounce_class_name(rc->cls),
		    rc->reason, ctl_esc(c, rc->diagnostic, 100));
		if (rc->remote_mta[0] != '\0')
			printf("  %-36s remote MTA %s\n", "", ctl_esc(c, rc->remote_mta, 100));
	}
}

int
run_bounce_parse(struct ctl *c)
{
	int status = CTL_OK;

	if (!c->json)
		printf("FILE  TYPE\n  %-36s %-7s %-10s %-17s %s\n", "RECIPIENT", "STATUS", "CLASS",
		    "REASON", "DIAGNOSTIC");
	for (int i = 0; i < c->nfiles; i++) {
		struct buf b = BUF_INIT;
		struct bounce_result r;
		bool cut;
		int rc;

		if ((rc = read_file(c->files[i], &b, &cut)) < 0) {
			fflush(stdout);
			fprintf(stderr, "kurierctl: cannot read %s: %s\n", ctl_esc(c, c->files[i], 0),
			    strerror(-rc));
			status = CTL_FAIL;
			buf_free(&b);
			continue;
		}
		if (cut) {
			fflush(stdout);
			fprintf(stderr, "kurierctl: %s: larger than %u MiB, only its start parsed\n",
			    ctl_esc(c, c->files[i], 0), BOUNCE_FILE_MAX >> 20);
		}
		if ((rc = bounce_parse(b.data != NULL ? b.data : "", b.len, &r)) < 0) {
			fprintf(stderr, "kurierctl: %s: %s\n", ctl_esc(c, c->files[i], 0),
			    strerror(-rc));
			status = CTL_FAIL;
			buf_free(&b);
			continue;
		}
		if (c->json)
			print_json(c->files[i], &r);
		else
			print_table(c, c->files[i], &r);
		bounce_result_free(&r);
		buf_free(&b);
	}
	return status;
}

/* --- bounce list ----------------------------------------------------------------- */

int
check_bounce_list(struct ctl *c, int argc, char **argv)
{
	const char *v;
	bool bad = false;

	for (int i = 0; i < argc; i++) {
		if ((v = ctl_opt_value("--user", argc, argv, &i, &bad)) != NULL) {
			if (!str_is_username(v) || str_copy(c->user, v, sizeof c->user) < 0)
				return ctl_usage_error(c, "not a user name", v,
				    "1-64 of A-Z a-z 0-9 . _ @ + - (kurierctl user list shows them)");
		} else if (bad) {
			return ctl_usage_error(c, "--user needs a value", NULL, "e.g. --user shop");
		} else if ((v = ctl_opt_value("--class", argc, argv, &i, &bad)) != NULL) {
			if (policy_ret_class_parse(v, &c->bclass) < 0)
				return ctl_usage_error(c, "unknown --class", v,
				    "use hard, soft, complaint, auto-reply or none");
			c->has_bclass = true;
		} else if (bad) {
			return ctl_usage_error(c, "--class needs a value", NULL,
			    "use hard, soft, complaint, auto-reply or none");
		} else if ((v = ctl_opt_value("--since", argc, argv, &i, &bad)) != NULL) {
			if (str_to_duration_ms(v, &c->since_ms) < 0 || c->since_ms == 0)
				return ctl_usage_error(c, "bad --since", v,
				    "a duration back from now: 30m, 12h, 7d");
		} else if (bad) {
			return ctl_usage_error(c, "--since needs a value", NULL, "e.g. --since 7d");
		} else {
			return ctl_usage_error(c, "unexpected argument", argv[i],
			    "bounce list takes --user U, --class C and --since DURATION");
		}
	}
	return CTL_OK;
}

static void
on_bounce_list(void *arg, int status, const struct policy_bounce_entry *e, size_t n)
{
	struct ctl *c = arg;
	char t[32];
	size_t shown = 0;
	int uw = 4, aw = 9;

	if (c->finishing)
		return;
	if (status < 0) {
		ctl_call_failed(c, "bounce list", status);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (c->has_bclass && e[i].cls != c->bclass)
			continue;
		if ((int)strlen(e[i].user) > uw)
			uw = (int)strlen(e[i].user);
		if ((int)strlen(ctl_esc(c, e[i].addr, 60)) > aw)
			aw = (int)strlen(ctl_esc(c, e[i].addr, 60));
	}
	printf("%-19s  %-*s  %-10s  %-17s  %-7s  %-*s  %s\n", "DATE (UTC)", uw, "USER", "CLASS",
	    "REASON", "STATUS", aw, "RECIPIENT", "QUEUE ID");
	for (size_t i = 0; i < n; i++) {
		if (c->has_bclass && e[i].cls != c->bclass)
			continue;
		printf("%-19s  %-*s  %-10s  %-17s  %-7s  %-*s  %s\n", ctl_fmt_time(t, sizeof t, e[i].date_ms),
		    uw, ctl_esc(c, e[i].user, 0), policy_ret_class_name(e[i].cls),
		    ctl_esc(c, e[i].reason[0] ? e[i].reason : "-", 0),
		    ctl_esc(c, e[i].status[0] ? e[i].status : "-", 0), aw, ctl_esc(c, e[i].addr, 60),
		    ctl_esc(c, e[i].qid[0] ? e[i].qid : "-", 0));
		shown++;
	}
	printf("%zu %s\n", shown, ctl_plural(shown, "return", "returns"));
	ctl_finish(c, CTL_OK);
}

int
run_bounce_list(struct ctl *c)
{
	struct timespec ts;
	uint64_t now, since = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (c->since_ms > 0 && c->since_ms < now)
		since = now - c->since_ms;
	return policy_bounce_list(c->p, c->user[0] ? c->user : NULL, since, POLICY_BOUNCE_LIST_MAX,
	    on_bounce_list, c);
}
