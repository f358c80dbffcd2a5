/*
 * dkimsign - DKIM signatures (RFC 6376) for outgoing messages, made with
 * OpenDKIM's libopendkim.
 *
 * One struct dkimsign holds every sending domain's keys.  It is built at
 * start-up (dkimsign_open, then dkimsign_add_domain per [domain]) and is
 * read-only afterwards: dkimsign_sign() may then run on any number of
 * threads at once (the delivery worker calls it on libuv's thread pool).
 * dkimsign_add_domain() and dkimsign_close() must not overlap a sign.
 *
 * What a signature covers (one per loaded key of the signing domain, as
 * restricted by the destination's algorithms):
 *   - d= is the domain of the header From address (so it aligns for
 *     DMARC, RFC 7489 3.1.1), never the envelope sender's;
 *   - a=rsa-sha256 or a=ed25519-sha256 (RFC 8463) by the key's type;
 *   - c=relaxed/relaxed, t= the signing time, no l= (the whole body is
 *     signed, so nothing can be appended), no x=, no i=;
 *   - h= lists, in message order, those of From, To, Cc, Subject, Date,
 *     Message-ID, Reply-To, MIME-Version, Content-Type, List-Unsubscribe
 *     and List-Unsubscribe-Post that are present (every instance), and
 *     "From" once more than present, so a From added in transit breaks
 *     the signature (RFC 6376 8.15).
 *
 * Costs (2-core AMD EPYC, OpenSSL 3.0, 5 KB message, CPU time): the
 * library takes the private key as text in dkim_sign() and decodes it
 * for every signature; it offers no way to hand it a parsed key.  The
 * decode alone costs 330-370 us whatever the form (PEM or base64 DER,
 * PKCS#1 or PKCS#8, RSA or Ed25519), and an RSA key decoded afresh signs
 * in about 500 us instead of 260 us (its Montgomery and blinding set-up
 * is redone).  So one RSA-2048 signature costs about 0.95 ms of CPU
 * (1,050-1,100 per second per core) and one Ed25519 signature about
 * 0.45 ms (1,900-2,200 per second per core).  Decoding also takes
 * OpenSSL 3.0's provider locks, so it scales badly across threads: two
 * threads signing at once cost up to 20% (RSA) and 50% (Ed25519) more
 * CPU per signature than one.  Callers gain nothing from running more
 * signatures at once than there are cores.  Keys are kept in memory in
 * the cheapest form measured: RSA as PKCS#1 PEM ("RSA PRIVATE KEY",
 * about 4% cheaper to decode than PKCS#8), Ed25519 as PKCS#8 PEM
 * (libopendkim 2.11.0 recognises base64 DER only by the "MII" prefix of
 * RSA keys).  The key text is wiped when the struct is closed.
 *
 * Known defect of the library: libopendkim 2.11.0~beta2 (Debian 12)
 * never frees an Ed25519 signing key (its dkim_free() frees key data of
 * RSA handles only; fixed upstream in OpenDKIM pull request #321): each
 * Ed25519 signature leaves about 0.6 KB allocated, so a process signing
 * with Ed25519 grows until restarted, or until it runs on a fixed
 * libopendkim.  RSA signatures do not leak.  Under AddressSanitizer that
 * one allocation is declared to LeakSanitizer (__lsan_disable around the
 * call that makes it), so the sanitizer builds still fail on any other
 * leak.
 *
 * Errors are 0 or a negative errno; OpenDKIM's status is translated and
 * its detail kept in the result's why.
 */
#ifndef KURIER_DELIVER_DKIMSIGN_H
#define KURIER_DELIVER_DKIMSIGN_H

#include <stdbool.h>
#include <stddef.h>

enum {
	DKIMSIGN_RSA = 1 << 0,
	DKIMSIGN_ED25519 = 1 << 1,
	DKIMSIGN_ALL = DKIMSIGN_RSA | DKIMSIGN_ED25519,
};

struct dkimsign;

/*
 * dkimsign_open - an empty set of keys read from data_dir/dkim/.
 * Makes the one libopendkim library handle the set shares.  data_dir is
 * copied.  Returns 0 with *out set (dkimsign_close it), or a negative
 * errno (-ENOMEM, -ENOTSUP: the library lacks SHA-256 or Ed25519) with
 * err set.
 */
int dkimsign_open(struct dkimsign **out, const char *data_dir, char *err,
    size_t errsz);

/*
 * dkimsign_add_domain - load data_dir/dkim/<domain>.<selector>.key for
 * each of selectors[0..nsel) (see deliver/dkimkey.h for the file and its
 * permissions: a key more open than 0640 is refused).  The algorithm is
 * read from the key: RSA of at least 1024 bits (fewer than 2048 is
 * logged as a warning) or Ed25519.  Each key is tried once with
 * libopendkim before it is accepted.  Signatures are made in the order
 * of selectors.  All or nothing: on error no key of domain is kept.
 * Returns 0, or a negative errno with err naming the file and the fix:
 * -ENOENT (no key: "run kurierctl dkim keygen example.com --selector
 * s1"), -EPERM (mode), -EINVAL (bad name, key type or size, no
 * selector, a selector twice), -EEXIST (domain added before).
 */
int dkimsign_add_domain(struct dkimsign *ds, const char *domain,
    const char *const *selectors, size_t nsel, char *err, size_t errsz);

/* dkimsign_close - free ds and wipe its keys; NULL is allowed. */
void dkimsign_close(struct dkimsign *ds);

/* dkimsign_has_domain - whether keys were loaded for domain (any case). */
bool dkimsign_has_domain(const struct dkimsign *ds, const char *domain);

struct dkimsign_sig {
	unsigned algo;  /* DKIMSIGN_RSA or DKIMSIGN_ED25519 */
	char *header;   /* "DKIM-Signature: ...\r\n", folded with CRLF TAB */
};

struct dkimsign_result {
	int status;       /* 0, or a negative errno (see dkimsign_sign) */
	char domain[256]; /* the header From domain, lower-cased, or "" */
	size_t nsig;
	struct dkimsign_sig *sig; /* nsig signatures, in key order */
	char why[256];    /* "" on success; else one line for the log */
};

/*
 * dkimsign_sign - sign msg[0..len), a whole message (header section,
 * empty line, body) with CRLF line ends.  head_len is where the header
 * section ends: it may count the empty line after it (as struct
 * queue_job's head_len does) or stop just before it; the body is what
 * follows the empty line.  A message with no empty line is all header.
 * Lines ending in a bare LF are signed as if they ended in CRLF, which is
 * the form SMTP carries them in (so the sender must send CRLF).
 *
 * The signing domain is the domain of the one address in the header
 * From field, found with an RFC 5322 3.4 parser (display names, quoted
 * strings, nested comments, obsolete routes and RFC 6854 group syntax;
 * UTF-8 allowed, RFC 6532).  The parser does not allocate and is linear
 * in the field's length; comments nest at most 32 deep.
 *
 * Signs once per loaded key of that domain whose algorithm is in algos
 * (DKIMSIGN_*).  Fills *res (dkimsign_result_free it in every case):
 *   0        res->sig holds res->nsig >= 1 headers to put before the
 *            message, in that order;
 *   -ENOENT  unsigned: no key for the From domain, or none of its keys
 *            is of an allowed algorithm ("unsigned: no DKIM key for
 *            example.org");
 *   -EINVAL  no From field, more than one, a From with no address or
 *            more than one, or one that does not parse; head_len > len;
 *   -EMSGSIZE  a field to be signed is longer than 64,000 octets (the
 *            library would sign a truncated copy of it: a signature no
 *            verifier accepts; RFC 5322 lines stop at 998 octets);
 *   -EBADMSG  libopendkim refused a header field (a control character
 *            in its name, say);
 *   -ENOMEM, -ENOTSUP, -EIO   libopendkim failed (why has its detail).
 * On failure no signature is returned, even if some key succeeded.
 * msg is only read.  Thread-safe (see above).
 */
void dkimsign_sign(const struct dkimsign *ds, const char *msg,
    size_t head_len, size_t len, unsigned algos, struct dkimsign_result *res);

/* dkimsign_result_free - free res's signatures and zero it. */
void dkimsign_result_free(struct dkimsign_result *res);

#endif
