/*
 * inbound_cmd - the inbound MX's MAIL and RCPT arguments.  See
 * inbound_cmd.h.
 */
#include "relay/inbound_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/str.h"

int
inbound_mail(const char *arg, size_t len, const char *helo, uint64_t max_size,
    struct inbound_mail *m, char *replybuf, size_t replysize, const char **reply)
{
	const char *id;
	int rc;

	memset(m, 0, sizeof *m);
	*reply = NULL;
	if ((rc = smtp_parse_mail(arg, len, true, &m->from, &m->mp, reply)) < 0)
		return rc;
	if (m->mp.body == SMTP_BODY_BINARYMIME) {
		/* RFC 3030 3: BINARYMIME is for BDAT only, and CHUNKING is not offered. */
		*reply = "555 5.5.4 BODY=BINARYMIME needs CHUNKING, which is not offered";
		return -ENOTSUP;
	}
	if (m->mp.have_size && m->mp.size > max_size) {
		snprintf(replybuf, replysize,
		    "552 5.3.4 Message size exceeds fixed maximum message size (%" PRIu64 " bytes)",
		    max_size);
		*reply = replybuf;
		return -EFBIG;
	}
	if (mailaddr_format(&m->from, m->sender, sizeof m->sender) < 0) {
		*reply = "501 5.1.7 Bad sender address syntax";
		return -EINVAL;
	}
	/* RFC 7208 2.4: for the null sender, the HELO identity is checked. */
	m->spf_helo = m->from.null;
	id = m->from.null ? (helo != NULL ? helo : "") : m->from.domain;
	if (str_copy(m->spf_domain, id, sizeof m->spf_domain) < 0)
		m->spf_domain[0] = '\0';
	/* RFC 7208 4.3: an identity that is no domain name has no record. */
	m->spf_none = m->spf_domain[0] == '\0' || m->spf_domain[0] == '[' ||
	    strchr(m->spf_domain, '.') == NULL || (!m->from.null && m->from.ip_literal);
	return 0;
}

int
inbound_rcpt(const char *arg, size_t len, bool smtputf8, const char *postmaster_domain,
    struct inbound_rcpt *r, const char **reply)
{
	static const char pm[] = "TO:<postmaster>";
	char line[SMTP_CMD_LINE_MAX + 300];
	struct mailaddr to;
	size_t n = sizeof pm - 1;
	int rc, w;

	memset(r, 0, sizeof *r);
	*reply = NULL;
	if (len >= n && strncasecmp(arg, pm, n) == 0 && (len == n || arg[n] == ' ') &&
	    postmaster_domain != NULL && postmaster_domain[0] != '\0') {
		w = snprintf(line, sizeof line, "TO:<postmaster@%s>%.*s", postmaster_domain,
		    (int)(len - n), arg + n);
		if (w > 0 && (size_t)w < sizeof line) {
			arg = line;
			len = (size_t)w;
		}
	}
	if ((rc = smtp_parse_rcpt(arg, len, smtputf8, &to, &r->rp, reply)) < 0)
		return rc;
	if (mailaddr_format(&to, r->addr, sizeof r->addr) < 0) {
		*reply = "553 5.1.3 Bad recipient address syntax";
		return -EINVAL;
	}
	for (char *p = r->addr; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}
