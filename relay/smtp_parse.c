/*
 * smtp_parse - SMTP command lines and their arguments.  See smtp_parse.h.
 */
#include "relay/smtp_parse.h"

#include <errno.h>
#include <string.h>

#include "core/str.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Replies; each used where smtp_parse.h lists it. */
#define R_UNKNOWN "500 5.5.1 Command unrecognized"
#define R_BADCHAR "500 5.5.2 Syntax error, invalid character"
#define R_MAIL_SYNTAX "501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPT_SYNTAX "501 5.5.4 Syntax: RCPT TO:<address>"
#define R_SENDER "501 5.1.7 Bad sender address syntax"
#define R_SENDER_LONG "501 5.1.7 Path too long"
#define R_RCPT "501 5.1.3 Bad recipient address syntax"
#define R_RCPT_NULL "501 5.1.3 Null recipient address not allowed"
#define R_RCPT_LONG "501 5.1.3 Path too long"
#define R_UTF8 "553 5.6.7 Non-ASCII address requires SMTPUTF8"
#define R_PARAM "501 5.5.4 Bad parameter syntax"
#define R_DUP "501 5.5.4 Duplicate parameter"
#define R_UNSUPPORTED "555 5.5.4 Unsupported parameter"
#define R_SIZE "501 5.5.4 Bad SIZE parameter syntax"
#define R_SIZE_BIG "552 5.3.4 Message size exceeds fixed maximum message size"
#define R_BODY "501 5.5.4 Bad BODY parameter syntax"
#define R_SMTPUTF8 "501 5.5.4 Bad SMTPUTF8 parameter syntax"
#define R_RET "501 5.5.4 Bad RET parameter syntax"
#define R_ENVID "501 5.5.4 Bad ENVID parameter syntax"
#define R_AUTHP "501 5.5.4 Bad AUTH parameter syntax"
#define R_NOTIFY "501 5.5.4 Bad NOTIFY parameter syntax"
#define R_ORCPT "501 5.5.4 Bad ORCPT parameter syntax"
#define R_AUTH_SYNTAX "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
#define R_AUTH_MECH "504 5.5.4 Unrecognized authentication type"

/* An esmtp-param as found in the line. */
struct param {
	const char *key;
	size_t klen;
	const char *val;  /* NULL when there is no "=" */
	size_t vlen;
};

static const struct verb {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{ "HELO", SMTP_HELO },
	{ "EHLO", SMTP_EHLO },
	{ "MAIL", SMTP_MAIL },
	{ "RCPT", SMTP_RCPT },
	{ "DATA", SMTP_DATA },
	{ "BDAT", SMTP_BDAT },
	{ "RSET", SMTP_RSET },
	{ "NOOP", SMTP_NOOP },
	{ "QUIT", SMTP_QUIT },
	{ "VRFY", SMTP_VRFY },
	{ "EXPN", SMTP_EXPN },
	{ "HELP", SMTP_HELP },
	{ "STARTTLS", SMTP_STARTTLS },
	{ "AUTH", SMTP_AUTH },
};

enum mail_param {
	MP_SIZE,
	MP_BODY,
	MP_SMTPUTF8,
	MP_RET,
	MP_ENVID,
	MP_AUTH,
};

static const struct keyword {
	const char *name;
	int id;
} mail_keywords[] = {
	{ "SIZE", MP_SIZE },         /* RFC 1870 */
	{ "BODY", MP_BODY },         /* RFC 6152, RFC 3030 */
	{ "SMTPUTF8", MP_SMTPUTF8 }, /* RFC 6531 */
	{ "RET", MP_RET },           /* RFC 3461 */
	{ "ENVID", MP_ENVID },       /* RFC 3461 */
	{ "AUTH", MP_AUTH },         /* RFC 4954 */
};

enum rcpt_param {
	RP_NOTIFY,
	RP_ORCPT,
};

static const struct keyword rcpt_keywords[] = {
	{ "NOTIFY", RP_NOTIFY },     /* RFC 3461 */
	{ "ORCPT", RP_ORCPT },       /* RFC 3461 */
};

static const struct {
	const char *name;
	unsigned bit;
} notify_words[] = {
	{ "NEVER", NOTIFY_NEVER },
	{ "SUCCESS", NOTIFY_SUCCESS },
	{ "FAILURE", NOTIFY_FAILURE },
	{ "DELAY", NOTIFY_DELAY },
};

static bool eq_ci(const char *, size_t, const char *);
static bool is_alnum(unsigned char);
static bool has_prefix_ci(const char *, size_t, const char *);
static bool has_8bit(const char *, size_t);
static int next_param(const char **, const char *, struct param *, bool);
static int keyword_id(const struct keyword *, size_t, const struct param *);
static int xtext_decode(const char *, size_t, char *, size_t, bool);
static int hexval(unsigned char);
static int parse_path(const char **, const char *, const char *, bool, bool,
    struct mailaddr *);
static int mail_param(const struct param *, int, bool, struct smtp_mail_params *,
    const char **);
static int parse_notify(const char *, size_t, unsigned *);
static int parse_orcpt(const char *, size_t, bool, char *, size_t);

/* eq_ci - s[0..n) equals the upper-case word w, ASCII case ignored. */
static bool
eq_ci(const char *s, size_t n, const char *w)
{
	size_t k;

	for (k = 0; k < n; k++) {
		char c = s[k];

		if (w[k] == '\0')
			return false;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c != w[k])
			return false;
	}
	return w[k] == '\0';
}

static bool
has_prefix_ci(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);

	return n >= wl && eq_ci(s, wl, w);
}

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static bool
has_8bit(const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if ((unsigned char)s[k] >= 0x80)
			return true;
	return false;
}

int
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd,
    const char **why)
{
	const char *sp;
	size_t vlen;

	cmd->verb = SMTP_UNKNOWN;
	cmd->arg = line + len;
	cmd->arglen = 0;
	*why = NULL;
	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL ||
	    memchr(line, '\n', len) != NULL) {
		*why = R_BADCHAR;
		return -EINVAL;
	}
	sp = memchr(line, ' ', len);
	vlen = sp != NULL ? (size_t)(sp - line) : len;
	for (size_t k = 0; k < NELEM(verbs); k++) {
		if (!eq_ci(line, vlen, verbs[k].name))
			continue;
		cmd->verb = verbs[k].verb;
		if (sp != NULL) {
			cmd->arg = sp + 1;
			cmd->arglen = len - vlen - 1;
		}
		return 0;
	}
	*why = R_UNKNOWN;
	return -EINVAL;
}

const char *
smtp_verb_name(enum smtp_verb v)
{
	for (size_t k = 0; k < NELEM(verbs); k++)
		if (verbs[k].verb == v)
			return verbs[k].name;
	return "UNKNOWN";
}

/*
 * next_param - the next esmtp-param after SP at *pp (RFC 5321 4.1.2):
 *   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   esmtp-value   = 1*(%d33-60 / %d62-126), and UTF-8 with utf8 (RFC 6531 3.3)
 * Returns 1 with *pm set, 0 at the end of the line, -1 on bad syntax.
 * Runs of SP are skipped, trailing SP included.
 */
static int
next_param(const char **pp, const char *end, struct param *pm, bool utf8)
{
	const char *p = *pp, *v;

	while (p < end && *p == ' ')
		p++;
	if (p == end) {
		*pp = p;
		return 0;
	}
	pm->key = p;
	if (!is_alnum((unsigned char)*p))
		return -1;
	while (p < end && (is_alnum((unsigned char)*p) || *p == '-'))
		p++;
	pm->klen = (size_t)(p - pm->key);
	pm->val = NULL;
	pm->vlen = 0;
	if (p < end && *p == '=') {
		v = ++p;
		while (p < end && *p != ' ') {
			unsigned char c = (unsigned char)*p;

			if (c >= 0x80 && utf8) {
				p++;
				continue;
			}
			if (c < 33 || c > 126 || c == '=')
				return -1;
			p++;
		}
		if (p == v)
			return -1;
		if (utf8 && !mailaddr_utf8_valid(v, (size_t)(p - v)))
			return -1;
		pm->val = v;
		pm->vlen = (size_t)(p - v);
	}
	if (p < end && *p != ' ')
		return -1;
	*pp = p;
	return 1;
}

static int
keyword_id(const struct keyword *kw, size_t n, const struct param *pm)
{
	for (size_t k = 0; k < n; k++)
		if (eq_ci(pm->key, pm->klen, kw[k].name))
			return kw[k].id;
	return -1;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* xtext_decode - as smtp_xtext_decode; with utf8, raw UTF-8 passes too. */
static int
xtext_decode(const char *s, size_t len, char *dst, size_t size, bool utf8)
{
	size_t i = 0, o = 0;

	if (size == 0)
		return -E2BIG;
	dst[0] = '\0';
	if (utf8 && !mailaddr_utf8_valid(s, len))
		return -EINVAL;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		int hi, lo;

		if (c == '+') {
			if (len - i < 3 || (hi = hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)s[i + 2])) < 0 ||
			    (hi == 0 && lo == 0))
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			i += 3;
		} else if ((c >= 33 && c <= 126 && c != '=') || (utf8 && c >= 0x80))
			i++;
		else
			goto bad;
		if (o + 1 >= size) {
			dst[0] = '\0';
			return -E2BIG;
		}
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return (int)o;
bad:
	dst[0] = '\0';
	return -EINVAL;
}

int
smtp_xtext_decode(const char *s, size_t len, char *dst, size_t size)
{
	return xtext_decode(s, len, dst, size, false);
}

int
smtp_xtext_encode(const char *s, size_t len, char *dst, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (size == 0)
		return -E2BIG;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = c >= 33 && c <= 126 && c != '+' && c != '=';

		if (o + (plain ? 1 : 3) >= size) {
			dst[0] = '\0';
			return -E2BIG;
		}
		if (plain)
			dst[o++] = (char)c;
		else {
			dst[o++] = '+';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0x0f];
		}
	}
	dst[o] = '\0';
	return (int)o;
}

/*
 * parse_path - "FROM:" / "TO:" (named by prefix), optional SP, then the
 * path; *pp moves past it.  Returns 0 or a MAILADDR_E* code, with
 * MAILADDR_ESYNTAX also for a missing prefix or '<' and for junk right
 * after the '>'; the caller picks the reply.
 */
static int
parse_path(const char **pp, const char *end, const char *prefix,
    bool allow_null, bool utf8, struct mailaddr *a)
{
	const char *p = *pp;
	int rc;

	if (!has_prefix_ci(p, (size_t)(end - p), prefix))
		return MAILADDR_ESYNTAX;
	p += strlen(prefix);
	while (p < end && *p == ' ')
		p++;
	if (p == end || *p != '<')
		return MAILADDR_ESYNTAX;
	rc = mailaddr_parse_path(a, p, (size_t)(end - p), allow_null, utf8, NULL);
	if (rc < 0)
		return rc == MAILADDR_ESYNTAX ? MAILADDR_ELOCAL : rc;
	p += rc;
	if (p < end && *p != ' ') {
		memset(a, 0, sizeof *a);
		return MAILADDR_ESYNTAX;
	}
	*pp = p;
	return 0;
}

static int
mail_param(const struct param *pm, int id, bool offered,
    struct smtp_mail_params *p, const char **reply)
{
	char tmp[SMTP_CMD_LINE_MAX];
	uint64_t v;
	int rc;

	switch (id) {
	case MP_SIZE:
		if (pm->val == NULL || (rc = str_to_u64n(pm->val, pm->vlen, &v)) == -EINVAL) {
			*reply = R_SIZE;
			return -EINVAL;
		}
		if (rc < 0) {
			*reply = R_SIZE_BIG;
			return -EMSGSIZE;
		}
		p->size = v;
		p->have_size = true;
		return 0;
	case MP_BODY:
		if (pm->val != NULL && eq_ci(pm->val, pm->vlen, "7BIT"))
			p->body = SMTP_BODY_7BIT;
		else if (pm->val != NULL && eq_ci(pm->val, pm->vlen, "8BITMIME"))
			p->body = SMTP_BODY_8BITMIME;
		else if (pm->val != NULL && eq_ci(pm->val, pm->vlen, "BINARYMIME"))
			p->body = SMTP_BODY_BINARYMIME;
		else {
			*reply = R_BODY;
			return -EINVAL;
		}
		p->have_body = true;
		return 0;
	case MP_SMTPUTF8:
		if (!offered) {
			*reply = R_UNSUPPORTED;
			return -EINVAL;
		}
		if (pm->val != NULL) {
			*reply = R_SMTPUTF8;
			return -EINVAL;
		}
		p->smtputf8 = true;
		return 0;
	case MP_RET:
		if (pm->val != NULL && eq_ci(pm->val, pm->vlen, "FULL"))
			p->ret = RET_FULL;
		else if (pm->val != NULL && eq_ci(pm->val, pm->vlen, "HDRS"))
			p->ret = RET_HDRS;
		else {
			*reply = R_RET;
			return -EINVAL;
		}
		return 0;
	case MP_ENVID:
		/* RFC 3461 4.4: printable US-ASCII once decoded. */
		if (pm->val == NULL || pm->vlen > SMTP_ENVID_MAX ||
		    smtp_xtext_decode(pm->val, pm->vlen, p->envid, sizeof p->envid) < 0)
			goto bad_envid;
		for (const char *c = p->envid; *c != '\0'; c++)
			if ((unsigned char)*c < 32 || (unsigned char)*c > 126)
				goto bad_envid;
		p->have_envid = true;
		return 0;
	case MP_AUTH:
		/* RFC 4954 5: "AUTH=" (xtext / "<>"); "<>" is valid xtext. */
		if (pm->val == NULL || smtp_xtext_decode(pm->val, pm->vlen, tmp, sizeof tmp) < 0) {
			*reply = R_AUTHP;
			return -EINVAL;
		}
		p->have_auth = true;
		return 0;
	}
	*reply = R_UNSUPPORTED;
	return -EINVAL;
bad_envid:
	p->envid[0] = '\0';
	*reply = R_ENVID;
	return -EINVAL;
}

int
smtp_parse_mail(const char *arg, size_t len, bool smtputf8_offered,
    struct mailaddr *from, struct smtp_mail_params *p, const char **reply)
{
	const char *s = arg, *end = arg + len, *path;
	struct param pm;
	unsigned seen = 0;
	int rc, id;

	memset(from, 0, sizeof *from);
	memset(p, 0, sizeof *p);
	p->body = SMTP_BODY_7BIT;
	p->ret = RET_UNSET;
	*reply = NULL;
	rc = parse_path(&s, end, "FROM:", true, smtputf8_offered, from);
	switch (rc) {
	case 0:
		break;
	case MAILADDR_ESYNTAX:
		*reply = R_MAIL_SYNTAX;
		return -EINVAL;
	case MAILADDR_ETOOLONG:
		*reply = R_SENDER_LONG;
		return -EINVAL;
	case MAILADDR_EUTF8:
		*reply = R_UTF8;
		return -EILSEQ;
	default:
		*reply = R_SENDER;
		return -EINVAL;
	}
	path = s;       /* end of the path; it started after "FROM:" */
	while ((rc = next_param(&s, end, &pm, smtputf8_offered)) > 0) {
		if ((id = keyword_id(mail_keywords, NELEM(mail_keywords), &pm)) < 0) {
			rc = -EINVAL;
			*reply = R_UNSUPPORTED;
			goto fail;
		}
		if (seen & (1u << id)) {
			rc = -EINVAL;
			*reply = R_DUP;
			goto fail;
		}
		seen |= 1u << id;
		if ((rc = mail_param(&pm, id, smtputf8_offered, p, reply)) < 0)
			goto fail;
	}
	if (rc < 0) {
		rc = -EINVAL;
		*reply = R_PARAM;
		goto fail;
	}
	/* RFC 6531 3.4: a non-ASCII path needs SMTPUTF8 on this MAIL. */
	if (!p->smtputf8 && has_8bit(arg, (size_t)(path - arg))) {
		rc = -EILSEQ;
		*reply = R_UTF8;
		goto fail;
	}
	return 0;
fail:
	memset(from, 0, sizeof *from);
	memset(p, 0, sizeof *p);
	return rc;
}

/*
 * parse_notify - "NEVER" or a comma list of SUCCESS, FAILURE, DELAY
 * (RFC 3461 4.1); NEVER with anything else is refused.
 */
static int
parse_notify(const char *v, size_t n, unsigned *bits)
{
	const char *end = v + n;

	*bits = 0;
	while (v <= end) {
		const char *comma = memchr(v, ',', (size_t)(end - v));
		size_t wl = comma != NULL ? (size_t)(comma - v) : (size_t)(end - v);
		size_t k;

		for (k = 0; k < NELEM(notify_words); k++)
			if (eq_ci(v, wl, notify_words[k].name))
				break;
		if (k == NELEM(notify_words))
			return -EINVAL;
		*bits |= notify_words[k].bit;
		if (comma == NULL)
			break;
		v = comma + 1;
	}
	if ((*bits & NOTIFY_NEVER) && *bits != NOTIFY_NEVER)
		return -EINVAL;
	return 0;
}

/*
 * parse_orcpt - "addr-type ; xtext" (RFC 3461 4.2), addr-type an atom,
 * into dst as addr-type ";" decoded address.  The address must be
 * printable: ASCII 32..126, and UTF-8 with utf8.
 */
static int
parse_orcpt(const char *v, size_t n, bool utf8, char *dst, size_t size)
{
	static const char atext[] = "!#$%&'*+-/=?^_`{|}~";
	const char *semi;
	size_t tl;
	int rc;

	dst[0] = '\0';
	if (n > SMTP_ORCPT_MAX || (semi = memchr(v, ';', n)) == NULL)
		return -EINVAL;
	tl = (size_t)(semi - v);
	if (tl == 0 || tl + 1 >= size)
		return -EINVAL;
	for (size_t k = 0; k < tl; k++)
		if (!is_alnum((unsigned char)v[k]) &&
		    (v[k] == '\0' || strchr(atext, v[k]) == NULL))
			return -EINVAL;
	memcpy(dst, v, tl + 1);
	rc = xtext_decode(semi + 1, n - tl - 1, dst + tl + 1, size - tl - 1, utf8);
	if (rc <= 0)
		goto bad;
	/* "+XX" may have made any byte: check what was decoded. */
	if (utf8 && !mailaddr_utf8_valid(dst + tl + 1, (size_t)rc))
		goto bad;
	for (const char *c = dst + tl + 1; *c != '\0'; c++) {
		unsigned char u = (unsigned char)*c;

		if (u < 32 || u == 127 || (u >= 0x80 && !utf8))
			goto bad;
	}
	return 0;
bad:
	dst[0] = '\0';
	return -EINVAL;
}

int
smtp_parse_rcpt(const char *arg, size_t len, bool smtputf8,
    struct mailaddr *to, struct smtp_rcpt_params *p, const char **reply)
{
	const char *s = arg, *end = arg + len;
	struct param pm;
	unsigned seen = 0;
	int rc, id;

	memset(to, 0, sizeof *to);
	memset(p, 0, sizeof *p);
	*reply = NULL;
	rc = parse_path(&s, end, "TO:", false, smtputf8, to);
	switch (rc) {
	case 0:
		break;
	case MAILADDR_ESYNTAX:
		*reply = R_RCPT_SYNTAX;
		return -EINVAL;
	case MAILADDR_ETOOLONG:
		*reply = R_RCPT_LONG;
		return -EINVAL;
	case MAILADDR_EUTF8:
		*reply = R_UTF8;
		return -EILSEQ;
	case MAILADDR_ENULL:
		*reply = R_RCPT_NULL;
		return -EINVAL;
	default:
		*reply = R_RCPT;
		return -EINVAL;
	}
	while ((rc = next_param(&s, end, &pm, smtputf8)) > 0) {
		if ((id = keyword_id(rcpt_keywords, NELEM(rcpt_keywords), &pm)) < 0) {
			rc = -EINVAL;
			*reply = R_UNSUPPORTED;
			goto fail;
		}
		if (seen & (1u << id)) {
			rc = -EINVAL;
			*reply = R_DUP;
			goto fail;
		}
		seen |= 1u << id;
		if (id == RP_NOTIFY) {
			if (pm.val == NULL || parse_notify(pm.val, pm.vlen, &p->notify) < 0) {
				rc = -EINVAL;
				*reply = R_NOTIFY;
				goto fail;
			}
		} else {
			if (pm.val == NULL || parse_orcpt(pm.val, pm.vlen, smtputf8,
			    p->orcpt, sizeof p->orcpt) < 0) {
				rc = -EINVAL;
				*reply = R_ORCPT;
				goto fail;
			}
			p->have_orcpt = true;
		}
	}
	if (rc < 0) {
		rc = -EINVAL;
		*reply = R_PARAM;
		goto fail;
	}
	return 0;
fail:
	memset(to, 0, sizeof *to);
	memset(p, 0, sizeof *p);
	return rc;
}

int
smtp_parse_auth(const char *arg, size_t len, struct smtp_auth_cmd *a,
    const char **reply)
{
	const char *sp, *r;
	size_t mlen, rlen;

	memset(a, 0, sizeof *a);
	*reply = NULL;
	sp = memchr(arg, ' ', len);
	mlen = sp != NULL ? (size_t)(sp - arg) : len;
	if (mlen == 0) {
		*reply = R_AUTH_SYNTAX;
		return -EINVAL;
	}
	if (eq_ci(arg, mlen, "PLAIN"))
		a->mech = SMTP_AUTH_PLAIN;
	else if (eq_ci(arg, mlen, "LOGIN"))
		a->mech = SMTP_AUTH_LOGIN;
	else {
		*reply = R_AUTH_MECH;
		return -EINVAL;
	}
	if (sp == NULL) {
		a->initial = arg + len;
		return 0;
	}
	r = sp + 1;
	rlen = len - mlen - 1;
	if (rlen == 0 || memchr(r, ' ', rlen) != NULL) {
		memset(a, 0, sizeof *a);
		*reply = R_AUTH_SYNTAX;
		return -EINVAL;
	}
	a->have_initial = true;
	if (rlen == 1 && r[0] == '=') {
		a->initial = r + 1;
		a->initial_len = 0;
	} else {
		a->initial = r;
		a->initial_len = rlen;
	}
	return 0;
}

bool
smtp_helo_ok(const char *p, size_t len)
{
	if (len == 0 || len >= 256)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}
