#!/usr/bin/env python3
"""smtp_client.py - protocol-level checks of kurier's submission server.

Driven by tests/e2e/submission.sh, which starts Redis and kurierd.  Runs
the named cases (or groups) against a running kurierd and prints one line
per check, "ok - NAME" or "not ok - NAME" followed by "#   detail" lines,
then "N passed, M failed"; exits 1 if any check failed.

    smtp_client.py --port P --sport PS --redis R [options] CASE...

Stdlib only.  Every socket has a timeout and every loop a bound, so a
server that hangs makes a check fail, never the test hang.  "Nothing
queued" is checked by searching the queue in Redis for a marker that each
case puts in its message (so cases running in parallel do not disturb
each other), and, where the case runs alone, by the set of queued ids.
"""

import argparse
import asyncio
import base64
import os
import random
import re
import select
import smtplib
import socket
import ssl
import sys
import threading
import time

TIMEOUT = 10.0
HOST = "127.0.0.1"

# --- results ----------------------------------------------------------------

_lock = threading.Lock()
PASSED = 0
FAILED = 0


def ok(name, cond, *detail):
    """Record one check: cond true passes; detail lines explain a failure."""
    global PASSED, FAILED
    with _lock:
        if cond:
            PASSED += 1
            print("ok - %s" % name, flush=True)
        else:
            FAILED += 1
            print("not ok - %s" % name, flush=True)
            for d in detail:
                for line in str(d).splitlines()[:20]:
                    print("#   %s" % line[:500], flush=True)
    return bool(cond)


def starts(name, reply, prefix):
    """The reply's last line starts with prefix ("250 2.0.0")."""
    text = reply.last if reply is not None else "(no reply)"
    return ok(name, reply is not None and text.startswith(prefix),
              "got:  %s" % text, "want: %s..." % prefix)


def codes_of(replies):
    return [r.code for r in replies]


# --- a tiny Redis client (RESP2) ------------------------------------------


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.f = self.sock.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read(0)

    def _read(self, depth):
        if depth > 4:
            raise RuntimeError("RESP nesting too deep")
        line = self.f.readline(1 << 20)
        if not line.endswith(b"\r\n"):
            raise ConnectionError("redis: connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest
        if t == b"-":
            raise RuntimeError("redis: " + rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("redis: short read")
            return data[:-2]
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read(depth + 1) for _ in range(n)]
        raise RuntimeError("redis: bad reply %r" % line[:40])


class Queue:
    """What the queue holds, read straight from Redis (queue/README.md)."""

    def __init__(self, port, prefix):
        self.port = port
        self.prefix = prefix

    def _do(self, *args):
        r = Redis(self.port)
        try:
            return r.cmd(*args)
        finally:
            r.close()

    def active(self):
        return set(x.decode() for x in self._do("ZRANGE", self.prefix + "active", "0", "-1"))

    def field(self, qid, name):
        return self._do("HGET", "%sm:%s" % (self.prefix, qid), name)

    def with_marker(self, marker):
        """Ids of queued messages whose header or body holds marker."""
        if isinstance(marker, str):
            marker = marker.encode()
        found = []
        for qid in sorted(self.active())[:5000]:
            for f in ("head", "body"):
                v = self.field(qid, f)
                if v is not None and marker in v:
                    found.append(qid)
                    break
        return found


# --- a raw SMTP client ------------------------------------------------------


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.last = lines[-1] if lines else ""
        self.code = int(self.last[:3]) if self.last[:3].isdigit() else 0

    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return "Reply(%r)" % self.lines


class Session:
    """One SMTP connection; replies are read line by line, bounded."""

    def __init__(self, port, implicit=False, source=None, timeout=TIMEOUT, banner=True, rcvbuf=0):
        if rcvbuf:
            # A small receive buffer, set before connecting (a client that reads slowly).
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(timeout)
            raw.connect((HOST, port))
        else:
            raw = socket.create_connection((HOST, port), timeout=timeout,
                                           source_address=(source, 0) if source else None)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = raw
        self.buf = b""
        self.tls = False
        self.reset = False
        if implicit:
            self.sock = tls_context().wrap_socket(raw)
            self.tls = True
        self.banner = self.reply() if banner else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def line(self):
        for _ in range(100000):
            i = self.buf.find(b"\n")
            if i >= 0:
                out, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return out
            if len(self.buf) > 65536:
                raise RuntimeError("reply line too long")
            self._fill()
        raise RuntimeError("no reply line")

    def reply(self):
        lines = []
        for _ in range(200):
            ln = self.line().rstrip(b"\r\n").decode("utf-8", "replace")
            lines.append(ln)
            if len(ln) < 4 or ln[3] != "-":
                break
        return Reply(lines)

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def cmd(self, text):
        self.send(text + "\r\n" if isinstance(text, str) else text + b"\r\n")
        return self.reply()

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name)

    def starttls(self):
        r = self.cmd("STARTTLS")
        if r.code == 220:
            if self.buf:
                raise RuntimeError("plaintext after the 220: %r" % self.buf[:80])
            self.sock = tls_context().wrap_socket(self.sock)
            self.tls = True
        return r

    def wait_closed(self, timeout):
        """Read until EOF (or reset) for up to timeout s: (closed, bytes read)."""
        end = time.monotonic() + timeout
        got = self.buf
        self.buf = b""
        for _ in range(100000):
            left = end - time.monotonic()
            if left <= 0:
                return False, got
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False, got
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                self.reset = True
                return True, got
            if not chunk:
                return True, got
            got += chunk
        return False, got

    def quiet(self, secs):
        """Nothing arrives for secs (the server sent no unexpected reply)."""
        if self.buf:
            return False
        r, _, _ = select.select([self.sock], [], [], secs)
        return not r


def plain_b64(user, password, authzid=""):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, user, password)).encode()).decode()


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def stuff(msg):
    """Dot-stuff msg (bytes, CRLF lines, ending in CRLF) and terminate it."""
    out = []
    for ln in msg.split(b"\r\n")[:-1] if msg.endswith(b"\r\n") else msg.split(b"\r\n"):
        out.append(b"." + ln if ln.startswith(b".") else ln)
    return b"\r\n".join(out) + b"\r\n.\r\n"


class Ctx:
    def __init__(self, a):
        self.a = a
        self.port = a.port
        self.sport = a.sport
        self.user = a.user
        self.password = a.password
        self.q = Queue(a.redis, a.prefix)
        self.ids = a.ids

    def record(self, name, qid):
        if self.ids:
            with _lock, open(self.ids, "a") as f:
                f.write("%s %s\n" % (name, qid))

    def authed(self, implicit=False, name="client.test"):
        """A session past TLS and AUTH, ready for MAIL."""
        s = Session(self.sport if implicit else self.port, implicit=implicit)
        if s.banner.code != 220:
            raise RuntimeError("banner: %s" % s.banner.text())
        if not implicit:
            s.ehlo(name)
            r = s.starttls()
            if r.code != 220:
                raise RuntimeError("STARTTLS: %s" % r.text())
        s.ehlo(name)
        r = s.cmd("AUTH PLAIN " + plain_b64(self.user, self.password))
        if r.code != 235:
            raise RuntimeError("AUTH: %s" % r.text())
        return s

    def marker(self, tag):
        return "kurier-e2e-%s-%d-%06d" % (tag, os.getpid(), random.randrange(10 ** 6))


def simple_msg(marker, subject="e2e"):
    return ("From: alice@shop.example\r\nTo: bob@example.org\r\nSubject: %s\r\n\r\n"
            "body %s\r\n" % (subject, marker)).encode()


def transaction(s, sender, rcpts, msg):
    """MAIL, RCPT..., DATA, message: the replies, last the final one."""
    out = [s.cmd("MAIL FROM:<%s>" % sender)]
    for r in rcpts:
        out.append(s.cmd("RCPT TO:<%s>" % r))
    d = s.cmd("DATA")
    out.append(d)
    if d.code == 354:
        s.send(stuff(msg))
        out.append(s.reply())
    return out


QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-Z]{16})$")

CASES = {}
GROUPS = {"fast": [], "slow": []}


def case(group="fast"):
    def reg(fn):
        CASES[fn.__name__] = fn
        if group:
            GROUPS[group].append(fn.__name__)
        return fn
    return reg


# --- greeting and EHLO --------------------------------------------------------


def ehlo_keywords(r):
    return [ln[4:] for ln in r.lines[1:]]


@case()
def banner(c):
    s = Session(c.port)
    ok("banner: 220 with the hostname", re.match(r"^220 kurier\.test ESMTP", s.banner.last), s.banner.text())
    ok("banner: single line", len(s.banner.lines) == 1, s.banner.text())
    s.close()
    s = Session(c.sport, implicit=True)
    ok("banner: 220 after the implicit TLS handshake", s.banner.last.startswith("220 kurier.test"), s.banner.text())
    s.close()


@case()
def ehlo(c):
    s = Session(c.port)
    r = s.ehlo()
    kw = ehlo_keywords(r)
    ok("ehlo: 250 and greets the client", r.code == 250 and r.lines[0].startswith("250-kurier.test"), r.text())
    for k in ("PIPELINING", "SIZE 1048576", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "STARTTLS", "DSN"):
        ok("ehlo before TLS lists %s" % k, k in kw, r.text())
    ok("ehlo before TLS offers no AUTH", not any(k.startswith("AUTH") for k in kw), r.text())
    r = s.starttls()
    starts("ehlo: STARTTLS answers 220 2.0.0", r, "220 2.0.0")
    starts("after STARTTLS the old EHLO is forgotten: AUTH gets 503 5.5.1",
           s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password)), "503 5.5.1")
    r = s.ehlo()
    kw = ehlo_keywords(r)
    for k in ("PIPELINING", "SIZE 1048576", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "AUTH PLAIN LOGIN"):
        ok("ehlo after STARTTLS lists %s" % k, k in kw, r.text())
    ok("ehlo after STARTTLS no longer offers STARTTLS", "STARTTLS" not in kw, r.text())
    starts("ehlo: STARTTLS again inside TLS is 503 5.5.1", s.cmd("STARTTLS"), "503 5.5.1")
    s.close()
    s = Session(c.sport, implicit=True)
    r = s.ehlo()
    kw = ehlo_keywords(r)
    ok("ehlo on implicit TLS lists AUTH PLAIN LOGIN", "AUTH PLAIN LOGIN" in kw, r.text())
    ok("ehlo on implicit TLS does not offer STARTTLS", "STARTTLS" not in kw, r.text())
    s.close()
    s = Session(c.port)
    r = s.cmd("HELO client.test")
    starts("helo: 250", r, "250 kurier.test")
    s.close()


# --- order and syntax ------------------------------------------------------------


@case()
def mail_before_auth(c):
    s = Session(c.port)
    s.ehlo()
    starts("mail before auth (plaintext): 530 5.7.0", s.cmd("MAIL FROM:<alice@shop.example>"), "530 5.7.0")
    s.starttls()
    s.ehlo()
    starts("mail before auth (TLS): 530 5.7.0", s.cmd("MAIL FROM:<alice@shop.example>"), "530 5.7.0")
    starts("rcpt before auth: 503 5.5.1", s.cmd("RCPT TO:<bob@example.org>"), "503 5.5.1")
    s.close()


@case()
def unknown_command(c):
    s = Session(c.port)
    r = s.cmd("FROBNICATE now")
    starts("unknown command: 500 5.5.1", r, "500 5.5.1")
    ok("unknown command: one status code in the text", not re.search(r"^500 5\.5\.1 .*\b[245]\d\d [245]\.\d", r.last), r.last)
    starts("unknown command alone: 500 5.5.1", s.cmd("XYZZY"), "500 5.5.1")
    starts("empty line: 500 5.5.1", s.cmd(""), "500 5.5.")
    starts("EXPN: 502 5.5.1", s.cmd("EXPN staff"), "502 5.5.1")
    starts("session goes on: NOOP 250", s.cmd("NOOP"), "250 2.0.0")
    s.close()


@case()
def bad_sequence(c):
    s = Session(c.port)
    starts("MAIL before EHLO: 503 5.5.1", s.cmd("MAIL FROM:<alice@shop.example>"), "503 5.5.1")
    starts("DATA before EHLO: 503 5.5.1", s.cmd("DATA"), "503 5.5.1")
    s.close()
    s = c.authed()
    starts("RCPT before MAIL: 503 5.5.1", s.cmd("RCPT TO:<bob@example.org>"), "503 5.5.1")
    starts("DATA before MAIL: 503 5.5.1", s.cmd("DATA"), "503 5.5.1")
    starts("MAIL: 250 2.1.0", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    starts("nested MAIL: 503 5.5.1", s.cmd("MAIL FROM:<alice@shop.example>"), "503 5.5.1")
    starts("DATA before RCPT: 503 5.5.1", s.cmd("DATA"), "503 5.5.1")
    starts("AUTH again: 503 5.5.1", s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password)), "503 5.5.1")
    starts("RSET: 250 2.0.0", s.cmd("RSET"), "250 2.0.0")
    starts("RCPT after RSET: 503 5.5.1", s.cmd("RCPT TO:<bob@example.org>"), "503 5.5.1")
    s.close()


@case()
def syntax(c):
    s = Session(c.port)
    starts("EHLO without a name: 501 5.5.4", s.cmd("EHLO"), "501 5.5.4")
    s.close()
    s = c.authed()
    starts("RSET with an argument: 501 5.5.4", s.cmd("RSET now"), "501 5.5.4")
    starts("MAIL without brackets: 501 5.5.4", s.cmd("MAIL FROM:alice@shop.example"), "501 5.5.4")
    starts("MAIL without FROM: 501 5.5.4", s.cmd("MAIL <alice@shop.example>"), "501 5.5.4")
    starts("MAIL with a bad address: 501 5.1.7", s.cmd("MAIL FROM:<alice@@shop.example>"), "501 5.1.7")
    starts("MAIL with an unknown parameter: 555 5.5.4", s.cmd("MAIL FROM:<alice@shop.example> FOO=BAR"), "555 5.5.4")
    starts("MAIL with a bad SIZE: 501 5.5.4", s.cmd("MAIL FROM:<alice@shop.example> SIZE=12x"), "501 5.5.4")
    starts("MAIL non-ASCII without SMTPUTF8: 553 5.6.7", s.cmd("MAIL FROM:<jörg@shop.example>"), "553 5.6.7")
    starts("MAIL ok", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    starts("RCPT without brackets: 501 5.5.4", s.cmd("RCPT TO:bob@example.org"), "501 5.5.4")
    starts("RCPT with a bad address: 501 5.1.3", s.cmd("RCPT TO:<bob@>"), "501 5.1.3")
    starts("RCPT with the null path: 501 5.1.3", s.cmd("RCPT TO:<>"), "501 5.1.3")
    starts("RCPT to a domain the queue cannot store: 553 5.1.3", s.cmd("RCPT TO:<bob@[x-tag:a/b]>"), "553 5.1.3")
    starts("RCPT non-ASCII without SMTPUTF8: 553 5.6.7", s.cmd("RCPT TO:<jörg@example.org>"), "553 5.6.7")
    starts("RCPT with a bad NOTIFY: 501 5.5.4", s.cmd("RCPT TO:<bob@example.org> NOTIFY=SOMETIMES"), "501 5.5.4")
    starts("RCPT ok after the errors", s.cmd("RCPT TO:<bob@example.org>"), "250 2.1.5")
    starts("RSET", s.cmd("RSET"), "250")
    starts("BODY=BINARYMIME without CHUNKING: 555 5.5.4", s.cmd("MAIL FROM:<alice@shop.example> BODY=BINARYMIME"), "555 5.5.4")
    starts("BDAT: 502 5.5.1", s.cmd("BDAT 10 LAST"), "502 5.5.1")
    starts("MAIL", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    starts("RCPT refused", s.cmd("RCPT TO:<bob@>"), "501 5.1.3")
    starts("DATA after every RCPT was refused: 554 5.5.1", s.cmd("DATA"), "554 5.5.1")
    s.close()


@case()
def sender_policy(c):
    s = c.authed()
    starts("MAIL FROM outside the user's domains: 550 5.7.1", s.cmd("MAIL FROM:<eve@other.example>"), "550 5.7.1")
    starts("MAIL FROM a subdomain: 550 5.7.1", s.cmd("MAIL FROM:<alice@mail.shop.example>"), "550 5.7.1")
    starts("null sender: 550 5.7.1", s.cmd("MAIL FROM:<>"), "550 5.7.1")
    starts("upper-case domain is the same domain: 250", s.cmd("MAIL FROM:<Alice@SHOP.example>"), "250 2.1.0")
    s.close()


@case()
def size_limits(c):
    s = c.authed()
    starts("SIZE above the maximum: 552 5.3.4 on MAIL", s.cmd("MAIL FROM:<alice@shop.example> SIZE=1048577"), "552 5.3.4")
    starts("SIZE at the maximum: 250", s.cmd("MAIL FROM:<alice@shop.example> SIZE=1048576"), "250 2.1.0")
    starts("RCPT", s.cmd("RCPT TO:<bob@example.org>"), "250 2.1.5")
    starts("DATA: 354", s.cmd("DATA"), "354")
    m = c.marker("big")
    line = b"x" * 78 + b"\r\n"
    body = simple_msg(m) + line * (1100 * 1024 // len(line))
    before = c.q.active()
    s.send(stuff(body))
    r = s.reply()
    starts("a message over the maximum: 552 5.3.4 after the data", r, "552 5.3.4")
    ok("the big message is not queued", not c.q.with_marker(m) and c.q.active() - before == set(),
       "queued: %s" % (c.q.active() - before))
    # The 552 (not a 421 4.4.2) says the server read it all before data_timeout.
    starts("the session goes on: NOOP", s.cmd("NOOP"), "250 2.0.0")
    s.close()


@case()
def too_many_recipients(c):
    s = c.authed()
    m = c.marker("rcpts")
    starts("MAIL", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    for i in range(3):
        starts("RCPT %d of 3: 250" % (i + 1), s.cmd("RCPT TO:<r%d@example.org>" % i), "250 2.1.5")
    starts("RCPT 4 over max_recipients: 452 4.5.3", s.cmd("RCPT TO:<r3@example.org>"), "452 4.5.3")
    starts("RCPT 5: 452 4.5.3", s.cmd("RCPT TO:<r4@example.org>"), "452 4.5.3")
    starts("DATA after 452: 354", s.cmd("DATA"), "354")
    s.send(stuff(simple_msg(m)))
    r = s.reply()
    mm = QUEUED.match(r.last)
    ok("queued with the 3 accepted recipients", mm, r.text())
    if mm:
        c.record("rcpt3", mm.group(1))
    s.close()


@case()
def duplicate_recipients(c):
    s = c.authed()
    m = c.marker("dups")
    starts("MAIL", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    starts("RCPT dup: 250", s.cmd("RCPT TO:<dup@example.org>"), "250 2.1.5 Ok")
    r = s.cmd("RCPT TO:<dup@EXAMPLE.org>")
    starts("the same recipient again (domain case aside): 250", r, "250 2.1.5")
    ok("and it is named a duplicate", "duplicate" in r.last, r.text())
    r = s.cmd("RCPT TO:<Dup@example.org>")
    ok("another local part case is another recipient (RFC 5321 2.4)", r.last == "250 2.1.5 Ok", r.text())
    starts("DATA: 354", s.cmd("DATA"), "354")
    s.send(stuff(simple_msg(m)))
    r = s.reply()
    mm = QUEUED.match(r.last)
    ok("queued", mm, r.text())
    if mm:
        env = c.q.field(mm.group(1), "env") or b""
        ok("the envelope holds dup@example.org once", env.count(b"dup@example.org") == 1, repr(env))
        ok("and Dup@example.org once", env.count(b"Dup@example.org") == 1, repr(env))
        ok("and not the upper-case domain", b"dup@EXAMPLE.org" not in env, repr(env))
    s.close()


# --- AUTH ----------------------------------------------------------------------


@case()
def auth(c):
    s = Session(c.port)
    s.ehlo()
    starts("AUTH before TLS on submission: 538 5.7.11", s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password)), "538 5.7.11")
    starts("AUTH LOGIN before TLS: 538 5.7.11", s.cmd("AUTH LOGIN"), "538 5.7.11")
    s.close()

    def tls_session():
        t = Session(c.port)
        t.ehlo()
        t.starttls()
        t.ehlo()
        return t

    s = tls_session()
    starts("AUTH PLAIN with initial response: 235 2.7.0", s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password)), "235 2.7.0")
    starts("MAIL after AUTH: 250", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    s.close()

    s = tls_session()
    r = s.cmd("AUTH PLAIN")
    ok("AUTH PLAIN without initial response: 334 with an empty challenge", r.last.rstrip() == "334", r.text())
    starts("AUTH PLAIN continuation: 235 2.7.0", s.cmd(plain_b64(c.user, c.password)), "235 2.7.0")
    s.close()

    s = tls_session()
    starts("AUTH LOGIN: 334 Username", s.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6")
    starts("AUTH LOGIN user: 334 Password", s.cmd(b64(c.user)), "334 UGFzc3dvcmQ6")
    starts("AUTH LOGIN password: 235 2.7.0", s.cmd(b64(c.password)), "235 2.7.0")
    s.close()

    s = tls_session()
    starts("AUTH LOGIN with the user as initial response: 334 Password", s.cmd("AUTH LOGIN " + b64(c.user)), "334 UGFzc3dvcmQ6")
    starts("AUTH LOGIN (initial) password: 235 2.7.0", s.cmd(b64(c.password)), "235 2.7.0")
    s.close()

    s = tls_session()
    starts("AUTH PLAIN wrong password: 535 5.7.8", s.cmd("AUTH PLAIN " + plain_b64(c.user, "wrong-password")), "535 5.7.8")
    starts("AUTH PLAIN unknown user: 535 5.7.8", s.cmd("AUTH PLAIN " + plain_b64("mallory", "whatever1")), "535 5.7.8")
    starts("AUTH PLAIN for another authzid: 535 5.7.8", s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password, "bob")), "535 5.7.8")
    starts("AUTH LOGIN wrong password: 334", s.cmd("AUTH LOGIN " + b64(c.user)), "334")
    starts("AUTH LOGIN wrong password: 535 5.7.8", s.cmd(b64("not-the-password")), "535 5.7.8")
    starts("MAIL after failed AUTH: 530 5.7.0", s.cmd("MAIL FROM:<alice@shop.example>"), "530 5.7.0")
    starts("AUTH with bad base64 (initial): 501 5.5.2", s.cmd("AUTH PLAIN %%%notbase64"), "501 5.5.2")
    starts("AUTH PLAIN then bad base64: 334", s.cmd("AUTH PLAIN"), "334")
    starts("AUTH with bad base64 (continuation): 501 5.5.2", s.cmd("this is not base64!"), "501 5.5.2")
    starts("AUTH LOGIN then bad base64 user: 334", s.cmd("AUTH LOGIN"), "334")
    starts("AUTH LOGIN bad base64 user: 501 5.5.2", s.cmd("dXNlcg"), "501 5.5.2")
    starts("AUTH PLAIN malformed (no NULs): 501 5.5.2", s.cmd("AUTH PLAIN " + b64("just-a-string")), "501 5.5.2")
    starts("AUTH PLAIN for cancel: 334", s.cmd("AUTH PLAIN"), "334")
    starts("'*' cancels AUTH: 501", s.cmd("*"), "501")
    starts("AUTH LOGIN for cancel: 334", s.cmd("AUTH LOGIN"), "334")
    starts("AUTH LOGIN user for cancel: 334", s.cmd(b64(c.user)), "334")
    starts("'*' cancels AUTH LOGIN at the password: 501", s.cmd("*"), "501")
    starts("AUTH with an unknown mechanism: 504 5.5.4", s.cmd("AUTH CRAM-MD5"), "504 5.5.4")
    starts("after all that AUTH still works: 235", s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password)), "235 2.7.0")
    s.close()

    s = Session(c.sport, implicit=True)
    s.ehlo()
    starts("AUTH on implicit TLS: 235 2.7.0", s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password)), "235 2.7.0")
    s.close()

    # Password guessing: each 535 is a protocol error; the session ends.
    s = Session(c.sport, implicit=True)
    s.ehlo()
    got = []
    for i in range(30):
        try:
            r = s.cmd("AUTH PLAIN " + plain_b64(c.user, "guess-%d" % i))
        except (EOFError, OSError):
            break
        got.append(r.last[:9])
        if r.code == 421:
            break
    ok("password guessing: 421 4.7.0 after at most 21 tries (%d)" % len(got),
       got and got[-1].startswith("421 4.7.0") and len(got) <= 21 and
       all(g.startswith("535 5.7.8") for g in got[:-1]), got[-3:])
    s.close()

    # AUTH pipelined with what follows: answered in order.
    s = Session(c.sport, implicit=True)
    s.ehlo()
    s.send("AUTH PLAIN %s\r\nMAIL FROM:<alice@shop.example>\r\nRSET\r\n" % plain_b64(c.user, c.password))
    rs = s.replies(3)
    ok("AUTH pipelined with MAIL: 235 then 250 250", codes_of(rs) == [235, 250, 250], rs)
    s.close()


# --- the other commands ------------------------------------------------------------


@case()
def misc_commands(c):
    s = Session(c.port)
    starts("NOOP before EHLO: 250", s.cmd("NOOP"), "250 2.0.0")
    s.ehlo()
    starts("VRFY: 252", s.cmd("VRFY bob"), "252 2.")
    starts("HELP: 214", s.cmd("HELP"), "214")
    starts("RSET: 250 2.0.0", s.cmd("RSET"), "250 2.0.0")
    starts("NOOP: 250 2.0.0", s.cmd("NOOP"), "250 2.0.0")
    starts("QUIT: 221 2.0.0", s.cmd("QUIT"), "221 2.0.0")
    closed, extra = s.wait_closed(3)
    ok("QUIT closes the connection", closed and extra == b"", extra[:100])
    s.close()


# --- messages --------------------------------------------------------------------------


@case()
def queued_reply(c):
    s = c.authed()
    m = c.marker("q")
    before = c.q.active()
    out = transaction(s, "alice@shop.example", ["bob@example.org"], simple_msg(m))
    mm = QUEUED.match(out[-1].last)
    ok("queued: 250 2.0.0 Ok: queued as ID", mm, out[-1].text())
    if mm:
        qid = mm.group(1)
        # Read at once: the 250 comes only after Redis stored the message.
        ok("queued: in Redis when the 250 arrives", c.q.field(qid, "body") is not None and m.encode() in c.q.field(qid, "body"))
        ok("queued: exactly one new message", c.q.active() - before == {qid}, c.q.active() - before)
        c.record("raw", qid)
    starts("a second message in the same session: MAIL", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    s.close()


@case()
def pipelining(c):
    s = c.authed()
    m = c.marker("pipe")
    s.send("MAIL FROM:<alice@shop.example>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n")
    rs = s.replies(4)
    ok("pipelined MAIL RCPT RCPT DATA: 250 250 250 354", codes_of(rs) == [250, 250, 250, 354], rs)
    s.send(stuff(simple_msg(m)) + b"NOOP\r\nQUIT\r\n")
    rs = s.replies(3)
    ok("pipelined data, NOOP, QUIT: 250 250 221", codes_of(rs) == [250, 250, 221], rs)
    ok("pipelined message queued", len(c.q.with_marker(m)) == 1)
    s.close()


def stored(c, qid):
    return c.q.field(qid, "head") or b"", c.q.field(qid, "body") or b""


@case()
def received_header(c):
    for implicit in (False, True):
        what = "implicit TLS" if implicit else "STARTTLS"
        s = c.authed(implicit=implicit)
        version, cipher = s.sock.version(), s.sock.cipher()[0]
        m = c.marker("rcvd")
        out = transaction(s, "alice@shop.example", ["bob@example.org"], simple_msg(m))
        mm = QUEUED.match(out[-1].last)
        if not ok("received (%s): queued" % what, mm, out[-1].text()):
            continue
        qid = mm.group(1)
        head, body = stored(c, qid)
        h = head.decode("utf-8", "replace")
        ok("received (%s): first field is Received" % what, h.startswith("Received: from client.test ([127.0.0.1])"), h[:300])
        ok("received (%s): with ESMTPSA and the id" % what, "by kurier.test (kurier) with ESMTPSA id %s" % qid in h, h[:400])
        ok("received (%s): TLS version %s and cipher %s" % (what, version, cipher),
           re.search(r"\(version=%s cipher=%s bits=\d+\)" % (re.escape(version), re.escape(cipher)), h), h[:400])
        ok("received (%s): the authenticated user" % what, "(authenticated user %s)" % c.user in h, h[:400])
        ok("received (%s): for the one recipient" % what, "for <bob@example.org>" in h, h[:400])
        secrets = [c.password.encode(), plain_b64(c.user, c.password).encode(), b64(c.password).encode()]
        env = c.q.field(qid, "env") or b""
        ok("received (%s): the password is nowhere in the stored message" % what,
           not any(x in head or x in body or x in env for x in secrets))
        s.close()


@case()
def message_id_date(c):
    s = c.authed()
    m = c.marker("mid")
    out = transaction(s, "alice@shop.example", ["bob@example.org"],
                      ("From: alice@shop.example\r\nSubject: no id\r\n\r\nbody %s\r\n" % m).encode())
    mm = QUEUED.match(out[-1].last)
    if ok("no Message-ID/Date: queued", mm, out[-1].text()):
        qid = mm.group(1)
        head, body = stored(c, qid)
        h = head.decode()
        ok("Message-ID added: <ID@hostname>", re.search(r"\r\nMessage-ID: <%s@kurier\.test>\r\n" % qid, h), h)
        ok("Date added (RFC 5322)", re.search(r"\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000\r\n", h), h)
        ok("added fields in the header section, before the blank line",
           h.endswith("\r\n\r\n") and h.index("Message-ID:") > h.index("Subject: no id"), h)
        ok("body unchanged", body == ("body %s\r\n" % m).encode(), body)
    m = c.marker("mid2")
    given = ("From: alice@shop.example\r\nmessage-id: <given-%s@shop.example>\r\nDATE: Tue, 02 Jan 2024 03:04:05 +0100\r\n"
             "Subject: has id\r\n\r\nbody\r\n" % m).encode()
    out = transaction(s, "alice@shop.example", ["bob@example.org"], given)
    mm = QUEUED.match(out[-1].last)
    if ok("with Message-ID/Date: queued", mm, out[-1].text()):
        head, body = stored(c, mm.group(1))
        h = head.decode()
        ok("Message-ID not added when present (any case)", len(re.findall(r"(?im)^message-id:", h)) == 1, h)
        ok("Date not added when present (any case)", len(re.findall(r"(?im)^date:", h)) == 1, h)
        ok("the header section is kept as sent", h.endswith(given[:given.index(b"\r\n\r\n") + 4].decode()), h)
    s.close()


@case()
def no_blank_line(c):
    s = c.authed()
    # A message must have a From field (policy_check_headers): none at all is refused.
    out = transaction(s, "alice@shop.example", ["bob@example.org"],
                      ("Hello %s\r\nsecond line\r\n" % c.marker("noblank")).encode())
    starts("no header section (so no From): 550 5.6.0", out[-1], "550 5.6.0")
    for label, msg, head_want, body_want in (
            ("header then text without a blank line",
             "From: alice@shop.example\r\nSubject: x\r\n\tfolded\r\nHello %s\r\n",
             "From: alice@shop.example\r\nSubject: x\r\n\tfolded\r\n", "Hello %s\r\n"),
            ("only a header section", "From: alice@shop.example\r\nSubject: %s\r\n",
             "From: alice@shop.example\r\nSubject: %s\r\n", "")):
        m = c.marker("noblank")
        out = transaction(s, "alice@shop.example", ["bob@example.org"], (msg % m).encode())
        mm = QUEUED.match(out[-1].last)
        if not ok("%s: queued" % label, mm, out[-1].text()):
            continue
        head, body = stored(c, mm.group(1))
        h = head.decode("utf-8", "replace")
        head_want = head_want % m if "%s" in head_want else head_want
        body_want = body_want % m if "%s" in body_want else body_want
        added = re.search(r"\r\n(Message-ID: <[^>]+>\r\nDate: [^\r]+\r\n\r\n)$", h)
        ok("%s: Message-ID, Date and the blank line end the header section" % label, added, h[-300:])
        ok("%s: the client's header lines before them" % label,
           added and h[:added.start(1)].endswith("\r\n" + head_want), h[-300:])
        ok("%s: the text is the body, byte for byte" % label, body == body_want.encode(), body[:200])
    s.close()


@case()
def body_exact(c):
    s = c.authed()
    m = c.marker("exact")
    headers = ("From: Alice <alice@shop.example>\r\nTo: bob@example.org\r\n"
               "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= %s\r\nMessage-ID: <%s@shop.example>\r\n"
               "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
               "X-Folded: first\r\n\tsecond part\r\n\r\n" % (m, m)).encode()
    lines = [
        "Grüße aus Köln – ünïcödé ✓ 日本語",
        ".",
        "..two dots",
        ". dot space",
        ".leading dot",
        "x" * 990,
        ("ä" * 480) + "end",
        "\ttab indented  ",
        "",
        "",
        "From the start of a line",
        "   ",
        "last line",
    ]
    body = ("\r\n".join(lines) + "\r\n").encode()
    r = s.cmd("MAIL FROM:<alice@shop.example> BODY=8BITMIME")
    starts("exact: MAIL BODY=8BITMIME", r, "250 2.1.0")
    starts("exact: RCPT", s.cmd("RCPT TO:<bob@example.org>"), "250 2.1.5")
    starts("exact: DATA", s.cmd("DATA"), "354")
    s.send(stuff(headers + body))
    r = s.reply()
    mm = QUEUED.match(r.last)
    if ok("exact: queued", mm, r.text()):
        head, sbody = stored(c, mm.group(1))
        ok("exact: body stored byte for byte", sbody == body,
           "stored %d bytes, sent %d; first difference at %s" % (
               len(sbody), len(body),
               next((i for i in range(min(len(sbody), len(body))) if sbody[i] != body[i]), min(len(sbody), len(body)))))
        ok("exact: header section stored after Received, as sent", head.startswith(b"Received: ") and head.endswith(headers),
           head[-600:])
        added = head[:len(head) - len(headers)].split(b"\r\n")[:-1]
        ok("exact: only a Received field added", added and added[0].startswith(b"Received: ")
           and all(x.startswith(b"\t") for x in added[1:]), added)
    s.close()


@case()
def smtputf8(c):
    s = c.authed()
    m = c.marker("utf8")
    starts("SMTPUTF8: MAIL with SMTPUTF8", s.cmd("MAIL FROM:<alice@shop.example> SMTPUTF8"), "250 2.1.0")
    starts("SMTPUTF8: UTF-8 local part in RCPT accepted", s.cmd("RCPT TO:<jörg@example.org>"), "250 2.1.5")
    starts("SMTPUTF8: DATA", s.cmd("DATA"), "354")
    s.send(stuff(("From: alice@shop.example\r\nTo: jörg@example.org\r\nSubject: Grüße\r\n\r\n%s ünïcödé\r\n" % m).encode()))
    r = s.reply()
    mm = QUEUED.match(r.last)
    if ok("SMTPUTF8: queued", mm, r.text()):
        c.record("utf8", mm.group(1))
        head, body = stored(c, mm.group(1))
        ok("SMTPUTF8: Received says UTF8SMTPSA", b"with UTF8SMTPSA id" in head, head[:300])
    starts("without SMTPUTF8: MAIL", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    starts("without SMTPUTF8: UTF-8 RCPT refused 553 5.6.7", s.cmd("RCPT TO:<jörg@example.org>"), "553 5.6.7")
    starts("without SMTPUTF8: ASCII RCPT still fine", s.cmd("RCPT TO:<joerg@example.org>"), "250 2.1.5")
    s.close()


@case()
def dsn_params(c):
    s = c.authed()
    m = c.marker("dsn")
    starts("DSN: MAIL with RET and ENVID", s.cmd("MAIL FROM:<alice@shop.example> RET=HDRS ENVID=order+2B4711"), "250 2.1.0")
    starts("DSN: RCPT with NOTIFY and ORCPT",
           s.cmd("RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@example.org"), "250 2.1.5")
    starts("DSN: RCPT with NOTIFY=NEVER", s.cmd("RCPT TO:<carol@example.net> NOTIFY=NEVER"), "250 2.1.5")
    starts("DSN: RSET", s.cmd("RSET"), "250 2.0.0")
    starts("DSN: RET twice: 501 5.5.4", s.cmd("MAIL FROM:<alice@shop.example> RET=HDRS RET=FULL"), "501 5.5.4")
    starts("DSN: MAIL again", s.cmd("MAIL FROM:<alice@shop.example> RET=HDRS ENVID=order+2B4711"), "250 2.1.0")
    s.cmd("RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@example.org")
    s.cmd("RCPT TO:<carol@example.net> NOTIFY=NEVER")
    starts("DSN: DATA", s.cmd("DATA"), "354")
    s.send(stuff(simple_msg(m)))
    r = s.reply()
    mm = QUEUED.match(r.last)
    if ok("DSN: queued", mm, r.text()):
        c.record("dsn", mm.group(1))
    s.close()


# --- DATA hazards ------------------------------------------------------------------------


SMUGGLE_VARIANTS = [
    ("LF.LF", b"\n.\n"),
    ("CR.CR", b"\r.\r"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CRLF.LF", b"\r\n.\n"),
    ("CRLF.CR", b"\r\n.\r"),
    ("CR.CRLF", b"\r.\r\n"),
    ("CRLF.CRCRLF", b"\r\n.\r\r\n"),
]


@case()
def smuggling(c):
    s = c.authed()
    for name, seq in SMUGGLE_VARIANTS:
        for split in (False, True):
            label = "smuggling %s%s" % (name, " (split writes)" if split else "")
            m = c.marker("smuggle")
            evil = c.marker("evil")
            before = c.q.active()
            s.cmd("MAIL FROM:<alice@shop.example>")
            s.cmd("RCPT TO:<bob@example.org>")
            r = s.cmd("DATA")
            if not starts(label + ": DATA 354", r, "354"):
                break
            head = ("Subject: smuggle\r\n\r\nhello %s" % m).encode()
            tail = ("MAIL FROM:<alice@shop.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
                    "Subject: smuggled\r\n\r\n%s\r\n" % evil).encode()
            probe = b"VRFY probe\r\n"
            if split:
                # The terminator-like bytes split over several writes.
                for part in (head, seq[:1], seq[1:2], seq[2:], tail, b".\r\n" + probe):
                    if part:
                        s.send(part)
                        time.sleep(0.02)
            else:
                s.send(head + seq + tail + b".\r\n" + probe)
            got = []
            for _ in range(8):
                rr = s.reply()
                got.append(rr)
                if rr.code == 252 or rr.code == 0:
                    break
            ok(label + ": one 550 5.6.0 after the real terminator, then the probe's reply",
               codes_of(got) == [550, 252] and got[0].last.startswith("550 5.6.0"), [g.last for g in got])
            new = c.q.active() - before
            ok(label + ": nothing queued, smuggled command not run",
               not new and not c.q.with_marker(evil) and not c.q.with_marker(m), new)
    # A proper message with the same text and no bare CR/LF is queued once.
    m = c.marker("clean")
    before = c.q.active()
    out = transaction(s, "alice@shop.example", ["bob@example.org"],
                      ("From: alice@shop.example\r\nSubject: clean\r\n\r\nhello %s\r\n.\r\nMAIL FROM:<alice@shop.example>\r\n" % m).encode())
    ok("a dot line and a command-like line inside the data: queued once",
       QUEUED.match(out[-1].last) and len(c.q.active() - before) == 1, out[-1].text())
    starts("after the smuggling attempts the session works: NOOP", s.cmd("NOOP"), "250 2.0.0")
    s.close()


@case()
def data_bad_bytes(c):
    s = c.authed()
    for label, payload in (("NUL", b"a\0b"), ("bare LF", b"line one\nline two"), ("bare CR", b"line one\rline two")):
        m = c.marker("bad")
        s.cmd("MAIL FROM:<alice@shop.example>")
        s.cmd("RCPT TO:<bob@example.org>")
        s.cmd("DATA")
        s.send(b"Subject: bad\r\n\r\n" + m.encode() + b" " + payload + b"\r\n.\r\n")
        r = s.reply()
        starts("%s in DATA: 550 5.6.0" % label, r, "550 5.6.0")
        ok("%s in DATA: nothing queued" % label, not c.q.with_marker(m))
    m = c.marker("longline")
    s.cmd("MAIL FROM:<alice@shop.example>")
    s.cmd("RCPT TO:<bob@example.org>")
    s.cmd("DATA")
    s.send(b"Subject: long\r\n\r\n" + m.encode() + b"y" * 1200 + b"\r\n.\r\n")
    r = s.reply()
    starts("a line over 998 octets in DATA: 550 5.6.0", r, "550 5.6.0")
    starts("session works after the refusals", s.cmd("NOOP"), "250 2.0.0")
    s.close()


# --- hostile input --------------------------------------------------------------------------


def normal_session_works(c, label):
    try:
        s = c.authed()
        m = c.marker("after")
        out = transaction(s, "alice@shop.example", ["bob@example.org"], simple_msg(m))
        s.close()
        return ok("%s: afterwards a normal session queues a message" % label, QUEUED.match(out[-1].last), out[-1].text())
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        return ok("%s: afterwards a normal session queues a message" % label, False, repr(e))


@case()
def starttls_injection(c):
    s = Session(c.port)
    s.ehlo()
    s.send("STARTTLS\r\nMAIL FROM:<x@shop.example>\r\n")
    r = s.reply()
    starts("injection: STARTTLS answered 220", r, "220 2.0.0")
    ok("injection: no plaintext answer to the injected MAIL", s.buf == b"" and s.quiet(0.3), s.buf)
    s.sock = tls_context().wrap_socket(s.sock)
    r = s.ehlo()
    ok("injection: the first reply inside TLS answers the client's EHLO", r.code == 250 and r.lines[0].startswith("250-kurier.test"), r.text())
    ok("injection: nothing else follows", s.quiet(0.3), s.buf)
    r = s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password))
    starts("injection: AUTH works inside TLS", r, "235")
    s.close()
    # The same with the injection in the TLS session's first record: EHLO
    # must come first anyway; a pipelined MAIL before EHLO is refused.
    normal_session_works(c, "injection")


@case()
def garbage(c):
    rnd = random.Random(4711)
    data = rnd.randbytes(10 * 1024 * 1024)
    s = Session(c.port)
    err = []

    def pump():
        try:
            for i in range(0, len(data), 65536):
                s.sock.sendall(data[i:i + 65536])
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    closed, got = s.wait_closed(20)
    t.join(5)
    text = got.decode("latin-1")
    ok("10 MB garbage: the server closes the connection", closed, text[-300:])
    lines = text.splitlines()
    ok("10 MB garbage: every reply is an error", lines and all(ln[:3] in ("500", "501", "421", "503", "530", "555") for ln in lines),
       text[-400:])
    ok("10 MB garbage: the last reply is 421 4.7.0 (or the connection was reset)",
       s.reset or (lines and lines[-1].startswith("421 4.7.0")), text[-400:])
    s.close()
    # Garbage on the implicit TLS port: a failed handshake.
    raw = socket.create_connection((HOST, c.sport), timeout=TIMEOUT)
    try:
        raw.sendall(rnd.randbytes(100000))
    except OSError:
        pass
    raw.settimeout(5)
    try:
        for _ in range(1000):
            if not raw.recv(65536):
                break
        end = True
    except (ConnectionResetError, socket.timeout) as e:
        end = not isinstance(e, socket.timeout)
    ok("garbage instead of a TLS handshake: connection closed", end)
    raw.close()
    # Garbage as message data: read to the end, refused, session goes on.
    s = c.authed()
    s.cmd("MAIL FROM:<alice@shop.example>")
    s.cmd("RCPT TO:<bob@example.org>")
    s.cmd("DATA")
    junk = rnd.randbytes(3 * 1024 * 1024).replace(b"\r\n.\r\n", b"\r\n..\r\n")
    s.send(junk + b"\r\n.\r\n")
    r = s.reply()
    starts("3 MB garbage as DATA: refused 552 5.3.4", r, "552 5.3.4")
    starts("3 MB garbage as DATA: session goes on", s.cmd("NOOP"), "250 2.0.0")
    s.close()
    normal_session_works(c, "garbage")


@case()
def nul_in_commands(c):
    s = Session(c.port)
    s.ehlo()
    for label, line in (("NUL in a verb", b"NO\0OP"), ("NUL in EHLO", b"EHLO a\0b"),
                        ("NUL in MAIL", b"MAIL FROM:<alice\0@shop.example>"), ("only NULs", b"\0\0\0\0")):
        r = s.cmd(line)
        ok("%s: 500 5.5.2, one status code" % label, re.match(r"^500 5\.5\.2 [^0-9]", r.last), r.last)
    r = s.cmd(b"NO\rOP")
    ok("bare CR in a command: 500 5.5.2", re.match(r"^500 5\.5\.2 [^0-9]", r.last), r.last)
    s.send(b"NOOP\n")
    r = s.reply()
    starts("bare LF ending a command: 500 5.5.2", r, "500 5.5.2")
    starts("after NULs the session works: NOOP", s.cmd("NOOP"), "250 2.0.0")
    s.close()
    s = c.authed()
    r = s.cmd(b"MAIL FROM:<alice@shop.example>\0 SIZE=10")
    ok("NUL after MAIL's path: 500 5.5.2", r.last.startswith("500 5.5.2"), r.last)
    s.close()
    normal_session_works(c, "NUL in commands")


@case()
def long_command(c):
    s = Session(c.port)
    s.ehlo()
    r = s.cmd("NOOP " + "a" * 1995)
    starts("2,000-byte command: 500 5.5.2 Line too long", r, "500 5.5.2 Line too long")
    starts("the next command works", s.cmd("NOOP"), "250 2.0.0")
    # The same line in pieces: its tail must not become a command.
    s.send("NOOP " + "b" * 1700)
    time.sleep(0.2)
    s.send("c" * 200 + " QUIT\r\nNOOP\r\n")
    rs = s.replies(2)
    ok("2,000-byte command in two writes: one 500 5.5.2, then NOOP's 250",
       codes_of(rs) == [500, 250] and rs[0].last.startswith("500 5.5.2"), rs)
    ok("the tail of the long line was not run", s.quiet(0.3), s.buf)
    # A long line without any LF at all, then the connection goes on.
    s.send("X" * 70000)
    time.sleep(0.2)
    s.send("\r\nNOOP\r\n")
    rs = s.replies(2)
    ok("70,000 bytes without LF: 500 5.5.2, then NOOP's 250", codes_of(rs) == [500, 250], rs)
    s.close()
    s = Session(c.port)
    s.ehlo()
    s.starttls()
    s.ehlo()
    starts("AUTH PLAIN for a long response: 334", s.cmd("AUTH PLAIN"), "334")
    starts("a 13,000-byte AUTH response: 500 5.5.2 Line too long", s.cmd("A" * 13000), "500 5.5.2")
    starts("after it the session is out of AUTH: AUTH works", s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password)), "235")
    s.close()
    normal_session_works(c, "long command")


@case()
def pipelined_garbage(c):
    s = c.authed()
    batch = (b"NOOP\r\nxyzzy plugh\r\n\x00\x01\x02\r\nMAIL FROM:<alice@shop.example>\r\n"
             b"RCPT TO:<bob@example.org>\r\nRCPT TO:<<<>>>\r\nVRFY bob\r\n\xff\xfe\xfd garbage\r\n"
             b"RCPT TO:<carol@example.net>\r\nBDAT 10 LAST\r\nRSET\r\nDATA\r\nNOOP\r\n")
    s.send(batch)
    rs = s.replies(13)
    want = [250, 500, 500, 250, 250, 501, 252, 500, 250, 502, 250, 503, 250]
    ok("pipelined mixed garbage: one reply per line, in order", codes_of(rs) == want,
       "got:  %s" % codes_of(rs), "want: %s" % want, [r.last for r in rs])
    ok("pipelined mixed garbage: nothing more", s.quiet(0.3), s.buf)
    s.close()
    normal_session_works(c, "pipelined garbage")


@case()
def too_many_errors(c):
    s = Session(c.port)
    s.ehlo()
    s.send(b"bogus\r\n" * 30)
    closed, got = s.wait_closed(5)
    lines = got.decode().splitlines()
    ok("too many errors: 421 4.7.0 then close", closed and lines and lines[-1].startswith("421 4.7.0"), lines[-3:])
    ok("too many errors: 20 errors answered before the 421", len(lines) == 21, len(lines))
    s.close()


@case()
def smtplib_clients(c):
    ctx = tls_context()
    m = c.marker("smtplib-starttls")
    msg = simple_msg(m, "smtplib starttls")
    with smtplib.SMTP(HOST, c.port, local_hostname="smtplib.test", timeout=TIMEOUT) as p:
        p.ehlo()
        ok("smtplib STARTTLS: server offers STARTTLS", p.has_extn("starttls"))
        p.starttls(context=ctx)
        p.ehlo()
        p.login(c.user, c.password)
        code, _ = p.mail("alice@shop.example")
        ok("smtplib STARTTLS: MAIL 250", code == 250, code)
        code, _ = p.rcpt("bob@example.org")
        ok("smtplib STARTTLS: RCPT 250", code == 250, code)
        code, text = p.data(msg)
        mm = re.match(r"2\.0\.0 Ok: queued as ([0-9A-Z]{16})$", text.decode())
        if ok("smtplib STARTTLS: queued", code == 250 and mm, code, text):
            c.record("smtplib-starttls", mm.group(1))
        refused = p.sendmail("alice@shop.example", ["bob@example.org", "carol@example.net"],
                             simple_msg(c.marker("smtplib-sendmail")))
        ok("smtplib sendmail: no recipient refused", refused == {}, refused)
    m = c.marker("smtplib-ssl")
    with smtplib.SMTP_SSL(HOST, c.sport, local_hostname="smtplib.test", timeout=TIMEOUT, context=ctx) as p:
        p.ehlo()
        p.user, p.password = c.user, c.password
        code, _ = p.auth("LOGIN", p.auth_login, initial_response_ok=False)
        ok("smtplib SMTP_SSL: AUTH LOGIN 235", code == 235, code)
        p.mail("alice@shop.example")
        p.rcpt("bob@example.org")
        code, text = p.data(simple_msg(m, "smtplib ssl"))
        mm = re.match(r"2\.0\.0 Ok: queued as ([0-9A-Z]{16})$", text.decode())
        if ok("smtplib SMTP_SSL: queued", code == 250 and mm, code, text):
            c.record("smtplib-ssl", mm.group(1))
        # smtplib takes 503 to a second login as "already logged in".
        code, _ = p.login(c.user, "wrong")
        ok("smtplib: a second AUTH gets 503", code == 503, code)
    try:
        with smtplib.SMTP_SSL(HOST, c.sport, timeout=TIMEOUT, context=ctx) as p:
            p.login(c.user, "wrong-password")
        ok("smtplib: wrong password raises SMTPAuthenticationError 535", False)
    except smtplib.SMTPAuthenticationError as e:
        ok("smtplib: wrong password raises SMTPAuthenticationError 535", e.smtp_code == 535, e)


# --- timeouts (slow: run them in parallel with the rest) -----------------------------


# How long a timeout case waits for the 421 before it calls the session
# hung.  A guard, not a figure: a loaded machine may be late, and nothing
# asserts how late.  What is asserted is the reply, the close, and that
# the timer did not fire before its configured time (a timer cannot fire
# early on a slow machine; lo leaves half a second for the client's clock
# starting after the server's).
HANG_GUARD = 60


def expect_timeout(c, s, label, lo, t0, marker=None):
    closed, got = s.wait_closed(HANG_GUARD)
    took = time.monotonic() - t0
    text = got.decode("utf-8", "replace")
    ok("%s: 421 4.4.2" % label, text.startswith("421 4.4.2"), text[:200])
    ok("%s: connection closed" % label, closed)
    ok("%s: not before the configured timeout (%.1fs, at least %.1fs)" % (label, took, lo), lo <= took)
    if marker:
        ok("%s: nothing queued" % label, not c.q.with_marker(marker))
    s.close()


@case("slow")
def command_timeout(c):
    s = Session(c.port)
    t0 = time.monotonic()
    expect_timeout(c, s, "command timeout after the banner", 1.5, t0)


@case("slow")
def command_timeout_in_transaction(c):
    s = c.authed()
    s.cmd("MAIL FROM:<alice@shop.example>")
    s.cmd("RCPT TO:<bob@example.org>")
    s.send("NOOP")   # half a command does not reset the timer
    t0 = time.monotonic()
    expect_timeout(c, s, "command timeout inside a transaction", 1.5, t0)


@case("slow")
def data_timeout(c):
    s = c.authed()
    m = c.marker("trickle")
    s.cmd("MAIL FROM:<alice@shop.example>")
    s.cmd("RCPT TO:<bob@example.org>")
    r = s.cmd("DATA")
    t0 = time.monotonic()
    s.send("Subject: trickle\r\n\r\n%s\r\n" % m)
    # A line every 0.4 s: each alone is within command_timeout; the whole
    # DATA phase is not, so the server cuts the client while it still
    # trickles (for up to 3x data_timeout: a timer reset by each line
    # would never fire while it does).
    cut = False
    for i in range(23):
        if not s.quiet(0.4):
            cut = True
            break
        try:
            s.send("line %d\r\n" % i)
        except OSError:
            cut = True
            break
    ok("total DATA timeout (trickling client): cut while still sending", cut)
    expect_timeout(c, s, "total DATA timeout (trickling client)", 2.5, t0, m)


@case("slow")
def data_stall(c):
    s = c.authed()
    m = c.marker("stall")
    s.cmd("MAIL FROM:<alice@shop.example>")
    s.cmd("RCPT TO:<bob@example.org>")
    s.cmd("DATA")
    t0 = time.monotonic()
    s.send("Subject: stall\r\n\r\n%s\r\nhalf a li" % m)
    expect_timeout(c, s, "client stalls mid-DATA", 2.5, t0, m)


@case("slow")
def auth_stall(c):
    s = Session(c.port)
    s.ehlo()
    s.starttls()
    s.ehlo()
    s.cmd("AUTH LOGIN")
    t0 = time.monotonic()
    expect_timeout(c, s, "client stalls in AUTH", 1.5, t0)


@case("slow")
def starttls_stall(c):
    s = Session(c.port)
    s.ehlo()
    starts("STARTTLS then no handshake: 220", s.cmd("STARTTLS"), "220")
    t0 = time.monotonic()
    closed, got = s.wait_closed(HANG_GUARD)
    took = time.monotonic() - t0
    ok("STARTTLS then no handshake: closed, not before the command timeout (%.1fs)" % took,
       closed and 1.5 <= took, got[:100])
    s.close()


def log_has(c, pattern, timeout):
    """The kurierd log (--log) matches pattern within timeout s."""
    end = time.monotonic() + timeout
    for _ in range(1000):
        try:
            with open(c.a.log, encoding="utf-8", errors="replace") as f:
                if re.search(pattern, f.read(), re.M):
                    return True
        except OSError:
            pass
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return False


@case("slow")
def close_unread(c):
    """A client that never reads: the close after a timeout is bounded too."""
    if not c.a.log:
        ok("close_unread: needs --log", False)
        return

    def flood(limit):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(TIMEOUT)
        s.connect((HOST, c.port))
        n = 0
        try:
            while n < limit:
                s.sendall(b"HELP\r\n" * 100)
                n += 100
                time.sleep(0.01)
        except OSError:
            pass
        return s, n

    # How many unread replies make the server drop the client (output_overflow)?
    s, n = flood(400000)
    s.close()
    ok("close_unread: a client that never reads is dropped at some point (%d commands)" % n, n < 400000)
    # Fewer: the kernel's buffers are full, the server's own queue is not.
    s, m = flood(max(0, n - 1500))
    port = s.getsockname()[1]
    t0 = time.monotonic()
    sid = None
    if log_has(c, r"event=connect sid=\w+ client=127\.0\.0\.1 port=%d " % port, 5):
        with open(c.a.log, encoding="utf-8", errors="replace") as f:
            sid = re.search(r"event=connect sid=(\w+) client=127\.0\.0\.1 port=%d " % port, f.read()).group(1)
    gone = sid is not None and log_has(c, r"event=disconnect sid=%s " % sid, HANG_GUARD)
    ok("close_unread: the session ends though the client reads nothing (%.1fs)" % (time.monotonic() - t0),
       gone, "sid %s" % sid)
    s.close()


@case("slow")
def tls_stall(c):
    raw = socket.create_connection((HOST, c.sport), timeout=TIMEOUT)
    t0 = time.monotonic()
    raw.settimeout(HANG_GUARD)
    closed = False
    try:
        closed = raw.recv(100) == b""
    except (ConnectionResetError, socket.timeout) as e:
        closed = not isinstance(e, socket.timeout)
    took = time.monotonic() - t0
    ok("no TLS handshake on the implicit port: closed, not before the command timeout (%.1fs)" % took,
       closed and 1.5 <= took)
    raw.close()


# --- Redis going away (run alone; the script restarts Redis) ------------------------


@case(None)
def redis_down(c):
    s = c.authed()
    m = c.marker("redisdown")
    starts("redis down: MAIL", s.cmd("MAIL FROM:<alice@shop.example>"), "250 2.1.0")
    starts("redis down: RCPT", s.cmd("RCPT TO:<bob@example.org>"), "250 2.1.5")
    r = Redis(c.q.port)
    try:
        r.cmd("SHUTDOWN", "NOSAVE")
    except (ConnectionError, OSError, RuntimeError):
        pass
    r.close()
    time.sleep(0.3)
    d = s.cmd("DATA")
    final = d
    if d.code == 354:
        s.send(stuff(simple_msg(m)))
        final = s.reply()
    ok("redis down: DATA ends in 451 4.3.0", final.last.startswith("451 4.3.0"), d.text(), final.text())
    ok("redis down: nothing acknowledged", not final.last.startswith("250"), final.text())
    starts("redis down: the session goes on (RSET)", s.cmd("RSET"), "250 2.0.0")
    starts("redis down: QUIT", s.cmd("QUIT"), "221")
    s.close()
    s = Session(c.sport, implicit=True)
    s.ehlo()
    starts("redis down: AUTH in a new session: 454 4.7.0", s.cmd("AUTH PLAIN " + plain_b64(c.user, c.password)), "454 4.7.0")
    s.close()


@case(None)
def normal(c):
    normal_session_works(c, "normal")


@case(None)
def shutdown(c):
    import signal
    idle = Session(c.port)
    idle.ehlo()
    busy = c.authed()
    m = c.marker("shutdown")
    busy.cmd("MAIL FROM:<alice@shop.example>")
    busy.cmd("RCPT TO:<bob@example.org>")
    starts("SIGTERM: a session in DATA", busy.cmd("DATA"), "354")
    msg = stuff(simple_msg(m))
    busy.send(msg[:20])
    os.kill(c.a.kurierd_pid, signal.SIGTERM)
    closed, got = idle.wait_closed(3)
    ok("SIGTERM: an idle session gets 421 4.3.2 and is closed", closed and got.startswith(b"421 4.3.2"), got[:200])
    time.sleep(0.2)
    try:
        socket.create_connection((HOST, c.port), timeout=2).close()
        ok("SIGTERM: no new connections", False, "connect succeeded")
    except OSError:
        ok("SIGTERM: no new connections", True)
    busy.send(msg[20:])
    r = busy.reply()
    mm = QUEUED.match(r.last)
    ok("SIGTERM: the message in DATA is still queued", mm and c.q.with_marker(m) == [mm.group(1)], r.text())
    closed, got = busy.wait_closed(3)
    ok("SIGTERM: then 421 4.3.2 and closed", closed and got.startswith(b"421 4.3.2"), got[:200])
    idle.close()
    busy.close()


@case(None)
def closing_is_final(c):
    """An answer that arrives after the session said 421 runs nothing more.

    A client that never reads keeps the 421's graceful close waiting; the
    password check, held up by a paused Redis, answers in that window.
    The commands pipelined after AUTH must not run, nor the message be
    queued.  (Redis is paused for everyone: run this case alone.)
    """
    def tls_flood(limit):
        s = Session(c.port, rcvbuf=4096)
        s.ehlo()
        s.starttls()
        s.ehlo()
        n = 0
        try:
            while n < limit:
                s.send(b"HELP\r\n" * 100)
                n += 100
                time.sleep(0.01)
        except OSError:
            pass
        return s, n

    s, n = tls_flood(400000)
    s.close()
    ok("closing_is_final: a client that never reads is dropped at some point (%d commands)" % n, n < 400000)
    s, _ = tls_flood(max(0, n - 1500))
    m = c.marker("closing")
    r = Redis(c.q.port)
    r.cmd("CLIENT", "PAUSE", "3200", "ALL")
    r.close()
    s.send("AUTH PLAIN %s\r\nMAIL FROM:<alice@shop.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n" %
           plain_b64(c.user, c.password))
    s.send(stuff(simple_msg(m)))
    time.sleep(6)
    ok("closing_is_final: nothing queued after the 421", not c.q.with_marker(m))
    s.close()


# --- connection limits (their own kurierd) ----------------------------------------------


@case(None)
def limits(c):
    port = c.a.limit_port
    held = []
    try:
        for i in range(2):
            s = Session(port, source="127.0.0.1")
            held.append(s)
            ok("limits: connection %d from 127.0.0.1 gets 220" % (i + 1), s.banner.code == 220, s.banner.text())
        s = Session(port, source="127.0.0.1")
        ok("limits: a third from 127.0.0.1 (max_connections_per_ip = 2): 421 4.7.0",
           s.banner.last.startswith("421 4.7.0"), s.banner.text())
        closed, _ = s.wait_closed(3)
        ok("limits: and is closed", closed)
        s.close()
        s = Session(port, source="127.0.0.2")
        held.append(s)
        ok("limits: from 127.0.0.2 (total 3 of max_connections = 3): 220", s.banner.code == 220, s.banner.text())
        try:
            s = Session(port, source="127.0.0.3", timeout=4)
            ok("limits: one more from 127.0.0.3 (over max_connections): 421 4.7.0",
               s.banner.last.startswith("421 4.7.0"), s.banner.text())
            s.close()
        except (socket.timeout, OSError, EOFError) as e:
            ok("limits: one more from 127.0.0.3 (over max_connections): 421 4.7.0", False, "no banner: %r" % e)
        held[0].cmd("QUIT")
        held[0].wait_closed(3)
        held[0].close()
        held.pop(0)
        time.sleep(0.3)
        s = Session(port, source="127.0.0.1", timeout=4)
        held.append(s)
        ok("limits: after one QUIT, 127.0.0.1 may connect again", s.banner.code == 220, s.banner.text())
        for h in held:
            starts("limits: held sessions still work", h.cmd("NOOP"), "250")
    finally:
        for h in held:
            h.close()


@case(None)
def concurrency(c):
    port = c.a.many_port
    n = c.a.many
    state = {"banner": 0, "refused": 0, "failed": 0, "quit": 0, "ready": 0, "errors": []}

    async def one(i, ready, go):
        released = False
        w = None

        def release():
            nonlocal released
            if not released:
                released = True
                state["ready"] += 1
                if state["ready"] == n:
                    ready.set()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 20)
            line = await asyncio.wait_for(r.readline(), 20)
            if line.startswith(b"220 "):
                state["banner"] += 1
            elif line.startswith(b"421 4.7.0"):
                state["refused"] += 1
                return
            else:
                state["failed"] += 1
                state["errors"].append("banner %d: %r" % (i, line[:80]))
                return
            release()
            await asyncio.wait_for(go.wait(), 40)
            w.write(b"QUIT\r\n")
            await w.drain()
            line = await asyncio.wait_for(r.readline(), 20)
            rest = await asyncio.wait_for(r.read(100), 20)
            if line.startswith(b"221 ") and rest == b"":
                state["quit"] += 1
            else:
                state["errors"].append("quit %d: %r %r" % (i, line[:80], rest[:40]))
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            state["failed"] += 1
            state["errors"].append("session %d: %r" % (i, e))
        finally:
            release()
            if w is not None:
                w.close()

    async def main():
        ready = asyncio.Event()
        go = asyncio.Event()
        tasks = [asyncio.create_task(one(i, ready, go)) for i in range(n)]
        try:
            await asyncio.wait_for(ready.wait(), 40)
        except asyncio.TimeoutError:
            state["errors"].append("not all connected within 40 s: %d" % state["ready"])
        state["open_at_once"] = state["banner"]
        go.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    t0 = time.monotonic()
    try:
        asyncio.run(main())
    except asyncio.TimeoutError:
        state["errors"].append("timed out")
    took = time.monotonic() - t0
    ok("%d concurrent connections: each got 220 or 421 (%d + %d, %.1fs)" % (n, state["banner"], state["refused"], took),
       state["banner"] + state["refused"] == n and state["failed"] == 0, state["errors"][:5])
    ok("%d concurrent connections: all %d open at once" % (n, n), state.get("open_at_once") == n, state.get("open_at_once"))
    ok("%d concurrent connections: every 220 session QUIT cleanly" % n, state["quit"] == state["banner"],
       "quit %d of %d" % (state["quit"], state["banner"]), state["errors"][:5])


# --- main ----------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True, help="submission (STARTTLS) port")
    p.add_argument("--sport", type=int, required=True, help="submissions (implicit TLS) port")
    p.add_argument("--redis", type=int, required=True, help="Redis port")
    p.add_argument("--prefix", default="e2e:")
    p.add_argument("--user", default="alice")
    p.add_argument("--password", default="correct horse battery")
    p.add_argument("--ids", help="append 'name ID' lines for queued messages here")
    p.add_argument("--limit-port", type=int, default=0)
    p.add_argument("--many-port", type=int, default=0)
    p.add_argument("--many", type=int, default=1000)
    p.add_argument("--kurierd-pid", type=int, default=0, help="for the shutdown case")
    p.add_argument("--log", help="kurierd's log (--port's), for close_unread")
    p.add_argument("--parallel", action="store_true", help="run the cases in threads")
    p.add_argument("cases", nargs="+")
    a = p.parse_args()
    c = Ctx(a)
    names = []
    for n in a.cases:
        names += GROUPS.get(n, [n])
    for n in names:
        if n not in CASES:
            print("unknown case %s; cases: %s" % (n, " ".join(sorted(CASES))), file=sys.stderr)
            return 2

    def run(n):
        try:
            CASES[n](c)
        except Exception as e:  # noqa: BLE001 - any error fails the case
            ok("%s: ran to the end" % n, False, "%s: %r" % (type(e).__name__, e))

    if a.parallel:
        threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
            if t.is_alive():
                ok("%s: finished in time" % t.name, False)
    else:
        for n in names:
            run(n)
    print("%d passed, %d failed" % (PASSED, FAILED), flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
