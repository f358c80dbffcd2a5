/*
 * tlsctx - the OpenSSL contexts kurier's connections use (see conn.h).
 *
 * A server context carries kurier's certificate: [tls] cert and key from
 * the configuration, or, when both are empty, a self-signed certificate
 * kept in data_dir/tls/ and generated at first start.  A client context
 * (outbound SMTP) trusts the system store; whether to verify is decided
 * per connection in conn_start_tls().
 *
 * Contexts are reference-counted by OpenSSL: every SSL made from one (one
 * per TLS conn) holds a reference.  Reloading certificates (SIGHUP) is
 * therefore: build a new context with tlsctx_server(), use it for new
 * handshakes, and SSL_CTX_free() the old one; connections under way keep
 * the old context alive until they close.  A new context also has new
 * session-ticket keys, so tickets issued before the reload are refused
 * and those clients do a full handshake.
 *
 * Errors are 0 or a negative errno, with err holding a message that names
 * the file and the reason ("/etc/kurier/cert.pem: cannot read: No such
 * file or directory").  Nothing here runs on the loop's hot path: these
 * calls read files and may generate a key, so call them at start-up or
 * reload.
 */
#ifndef KURIER_CORE_TLSCTX_H
#define KURIER_CORE_TLSCTX_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "core/config.h"

/* "AB:CD:..." of a SHA-256 digest, NUL included. */
#define TLSCTX_FINGERPRINT_SIZE (32 * 3)

/*
 * tlsctx_server - a server context: TLS 1.2 and 1.3 only, ECDHE with
 * AEAD ciphers for TLS 1.2, the server's cipher preference, no
 * compression, no renegotiation, session tickets on (no server-side
 * session cache: tickets make it unnecessary and it would cost memory
 * per client).
 *
 * Certificate: cfg->tls.cert (PEM, the leaf first, then its chain) and
 * cfg->tls.key (PEM, unencrypted).  When both are empty it uses
 * cfg->server.data_dir/tls/self-signed.crt and .key, generating them when
 * absent: EC P-256, SHA-256, CN and subjectAltName DNS =
 * cfg->server.hostname, valid 10 years, key mode 0600, directory 0700.
 * Logs (info, component "tls") the certificate's SHA-256 fingerprint and
 * where it came from, and warns when it expires within 30 days.
 * Returns 0 with *out holding one reference (SSL_CTX_free() it), or a
 * negative errno with the reason in err.
 */
int tlsctx_server(SSL_CTX **out, const struct config *cfg, char *err,
    size_t errsz);

/*
 * tlsctx_client - a context for outbound connections: TLS 1.2 or newer,
 * the system trust store (SSL_CTX_set_default_verify_paths), no
 * compression, no renegotiation, peer verification off (conn_start_tls
 * records the verification result instead of failing the handshake).
 * Tests add trust anchors with SSL_CTX_load_verify_locations().
 */
int tlsctx_client(SSL_CTX **out, char *err, size_t errsz);

/*
 * tlsctx_fingerprint - the SHA-256 fingerprint of ctx's certificate as
 * 95 characters "AB:CD:...:EF" in dst (TLSCTX_FINGERPRINT_SIZE bytes are
 * enough; a smaller dst gets a cut string).  "" when ctx has no
 * certificate.  Returns dst.
 */
const char *tlsctx_fingerprint(SSL_CTX *ctx, char *dst, size_t size);

/*
 * tlsctx_ossl_reason - the reason text of OpenSSL's most recent error on
 * this thread's error queue (peeked, not removed), for error messages;
 * "unknown OpenSSL error" when the queue is empty.  A static string.
 */
const char *tlsctx_ossl_reason(void);

#endif
