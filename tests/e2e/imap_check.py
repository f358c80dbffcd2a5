#!/usr/bin/env python3
"""imap_check - the IMAP scenarios of tests/e2e/imap.sh, with Python's
imaplib (STARTTLS and implicit TLS) as a real client and a raw IMAP
connection (literals, pipelining, hostile input) for what imaplib will
not send.  Prints one line per check, "ok NAME" or "not ok NAME: DETAIL",
and "# ..." diagnostics; exits 0 when it could run the phase to its end
(failures are in the lines), 1 when it could not.

usage: imap_check.py PHASE [--host H] --imap PORT --imaps PORT
       --user U --password P [--other-user U --other-password P]
       [--files F...] [--profile kurier|dovecot] [phase options]

PHASE:
  seed      APPEND --files to the user's INBOX (for a server that has no
            mbox_append, e.g. a Dovecot used to check the expectations)
  main      every command and extension, real values, flags and UIDs
            across sessions, user isolation (the INBOX holds --files, in
            order, with no flags, and nothing else; the user has no
            other mailbox)
  hostile   literal bombs, nesting, bad sequence sets, bad names, long
            lines, every command before login, STARTTLS injection
  idle      IDLE told of an append (--inject CMD, a shell command that
            stores one message in the user's INBOX, or an APPEND through
            --append-port, an implicit-TLS IMAP port of another node), of
            a flag change and of an expunge made by another session
  pop3      POP3 and IMAP on one maildrop (--pop3s PORT)
  lockout   [policy] auth_fail_limit failed logins lock the address out
  timeout   an idle session is logged out after [mailbox] imap_timeout

--profile says what differs between servers where the RFCs leave it
open: kurier (the default) refuses LOGIN and AUTHENTICATE before TLS,
also on loopback, and greets with "kurier.test kurier IMAP ready";
dovecot trusts loopback connections with plaintext logins.
"""
import argparse
import base64
import email
import email.policy
import email.utils
import imaplib
import re
import socket
import ssl
import subprocess
import sys
import time

TIMEOUT = 20          # seconds any one read may take
IDLE_WAIT = 20        # seconds an IDLE waits for an announcement
HOST = "127.0.0.1"
LITERAL_WAIT = 5      # seconds a refusal of a literal too large may take

PROFILES = {
    "kurier": {
        "greeting": r"^\* OK \[CAPABILITY [^]]*\] kurier\.test kurier IMAP ready$",
        "login_needs_tls": True,
        "injection_breaks_tls": False,
        "wildcards_refused": True,
        "lenient_prelogin": False,
        "append_limit": True,
    },
    "dovecot": {
        "greeting": r"^\* OK \[CAPABILITY [^]]*\] Dovecot",
        "login_needs_tls": False,
        "injection_breaks_tls": True,
        "wildcards_refused": False,
        "lenient_prelogin": True,
        "append_limit": False,
    },
}

# What a logged-in session must offer (issue 12).
CAPS_AFTER_LOGIN = ("IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "ID", "ENABLE",
                    "LITERAL+", "UNSELECT", "CHILDREN", "SPECIAL-USE", "SASL-IR", "CONDSTORE")

results = []


def check(name, cond, detail=""):
    line = ("ok " if cond else "not ok ") + name
    if not cond and detail != "":
        line += ": " + str(detail)[:600].replace("\n", "\\n").replace("\r", "\\r")
    print(line, flush=True)
    results.append(bool(cond))
    return cond


def diag(text):
    print("# " + text, flush=True)


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def crlf(data):
    """The stored form of a message: CRLF line ends."""
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def split_head(raw):
    """(header section with its blank line, body) of a message."""
    i = raw.find(b"\r\n\r\n")
    return raw[:i + 4], raw[i + 4:]


def header_value(raw, name):
    """A top-level header field's value, unfolded (CRLF removed), or None."""
    head = split_head(raw)[0].decode("latin-1")
    m = re.search(r"(?im)^%s:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)" % re.escape(name), head)
    return m.group(1).replace("\r\n", "") if m else None


def mime_part1(raw):
    """(MIME header, body) of part 1 of a top-level multipart message."""
    boundary = email.message_from_bytes(raw).get_boundary().encode()
    body = split_head(raw)[1]
    delim = b"--" + boundary
    start = body.index(delim)
    start = body.index(b"\r\n", start) + 2
    end = body.index(b"\r\n" + delim, start)
    part = body[start:end]
    i = part.find(b"\r\n\r\n")
    return part[:i + 4], part[i + 4:]


# --- a raw IMAP connection ---------------------------------------------------------------


class Resp:
    """A command's outcome: status (OK, NO, BAD, + for a continuation,
    EOF), the tagged line, its response code and the untagged lines."""

    def __init__(self, status, line, untagged):
        self.status = status
        self.line = line
        self.untagged = untagged
        m = re.match(r"^\S+ \S+ \[([^]]*)\]", line)
        self.code = m.group(1) if m else ""

    def __repr__(self):
        return "%s | %s" % (self.line, b" / ".join(u[:160] for u in self.untagged[:6]))


class Imap:
    """A line-level IMAP connection, plaintext or TLS, with its own source address."""

    def __init__(self, port, tls=False, src=HOST, host=None):
        s = socket.create_connection((host or HOST, port), timeout=TIMEOUT, source_address=(src, 0))
        if tls:
            s = tls_ctx().wrap_socket(s)
        self.s = s
        self.buf = b""
        self.n = 0
        self.greeting = self.read().decode("utf-8", "replace")

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError("connection closed; buffered %r" % self.buf[:200])
        self.buf += chunk

    def read(self):
        """One response with its literals, without the last CRLF."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            out += line
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def tag(self):
        self.n += 1
        return "a%03d" % self.n

    def wait(self, tag):
        untagged = self.pending = []
        while True:
            r = self.read()
            if r.startswith(tag.encode() + b" "):
                t = r.decode("utf-8", "replace")
                return Resp(t.split(" ", 2)[1].upper() if " " in t else "", t, untagged)
            if r.startswith(b"+"):
                return Resp("+", r.decode("utf-8", "replace"), untagged)
            untagged.append(r)

    def cmd(self, text):
        """Send TAG TEXT and read to its tagged response (or a continuation)."""
        t = self.tag()
        if isinstance(text, str):
            text = text.encode()
        self.send(t.encode() + b" " + text + b"\r\n")
        self.last = t
        try:
            return self.wait(t)
        except (EOFError, OSError) as e:
            return Resp("EOF", "EOF %s" % e, self.pending)

    def cont(self, data):
        """Answer a continuation and read on to the command's tagged response."""
        self.send(data)
        try:
            return self.wait(self.last)
        except (EOFError, OSError) as e:
            return Resp("EOF", "EOF %s" % e, [])

    def starttls(self):
        self.s = tls_ctx().wrap_socket(self.s)

    def closed(self, wait=TIMEOUT):
        """True when the server closes the connection within WAIT seconds."""
        try:
            self.s.settimeout(wait)
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.s.settimeout(TIMEOUT)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def parse(data):
    """An IMAP response as nested lists: atoms as str, strings and
    literals as bytes, NIL as None."""
    stack = [[]]
    i, n = 0, len(data)
    while i < n:
        c = data[i:i + 1]
        if c in (b" ", b"\r", b"\n"):
            i += 1
        elif c == b"(":
            stack.append([])
            i += 1
        elif c == b")":
            if len(stack) == 1:
                raise ValueError("unbalanced ) at %d" % i)
            lst = stack.pop()
            stack[-1].append(lst)
            i += 1
        elif c == b'"':
            i += 1
            out = b""
            while data[i:i + 1] != b'"':
                if i >= n:
                    raise ValueError("unterminated string")
                if data[i:i + 1] == b"\\":
                    i += 1
                out += data[i:i + 1]
                i += 1
            i += 1
            stack[-1].append(out)
        elif c == b"{":
            m = re.compile(rb"\{(\d+)\}\r\n").match(data, i)
            if not m:
                raise ValueError("bad literal at %d" % i)
            k = int(m.group(1))
            stack[-1].append(data[m.end():m.end() + k])
            i = m.end() + k
        else:
            j = i
            depth = 0
            while j < n:
                d = data[j:j + 1]
                if d == b"[":
                    depth += 1
                elif d == b"]":
                    depth -= 1
                elif depth == 0 and d in (b" ", b"(", b")"):
                    break
                j += 1
            atom = data[i:j].decode("utf-8", "replace")
            stack[-1].append(None if atom.upper() == "NIL" else atom)
            i = j
    if len(stack) != 1:
        raise ValueError("unbalanced (")
    return stack[0]


def fetches(untagged):
    """{seq: {ITEM: value}} from the untagged FETCH responses."""
    out = {}
    for u in untagged:
        m = re.match(rb"^\* (\d+) FETCH ", u, re.I)
        if not m:
            continue
        items = parse(u[m.end():])[0]
        d = out.setdefault(int(m.group(1)), {})
        for k in range(0, len(items) - 1, 2):
            d[items[k].upper()] = items[k + 1]
    return out


def searched(untagged):
    """The numbers of the untagged SEARCH responses, and the MODSEQ if any."""
    nums, modseq = [], None
    for u in untagged:
        if u.upper().startswith(b"* SEARCH"):
            m = re.search(rb"\(MODSEQ (\d+)\)", u, re.I)
            if m:
                modseq = int(m.group(1))
                u = u[:m.start()]
            nums += [int(x) for x in u.split()[2:]]
    return nums, modseq


def untagged_num(untagged, word):
    """N of the last "* N WORD" response, or None."""
    got = None
    for u in untagged:
        m = re.match(rb"^\* (\d+) " + word.encode() + rb"$", u, re.I)
        if m:
            got = int(m.group(1))
    return got


def code_num(untagged, resp, name):
    """The number in an "[NAME n]" response code, untagged or tagged."""
    for t in [u.decode("utf-8", "replace") for u in untagged] + [resp.line]:
        m = re.search(r"\[%s (\d+)\]" % name, t, re.I)
        if m:
            return int(m.group(1))
    return None


def caps_of(untagged, resp=None):
    """The capability names of a CAPABILITY response or response code."""
    texts = [u.decode("utf-8", "replace") for u in untagged]
    if resp is not None:
        texts.append(resp.line)
    for t in texts:
        m = re.search(r"^\* CAPABILITY (.*)$", t, re.I) or re.search(r"\[CAPABILITY ([^]]*)\]", t, re.I)
        if m:
            return set(m.group(1).upper().split())
    return set()


def lists(untagged, word="LIST"):
    """{name: (attributes, delimiter)} from LIST or LSUB responses."""
    out = {}
    for u in untagged:
        if not u.upper().startswith(b"* " + word.encode() + b" "):
            continue
        p = parse(u[len(word) + 3:])
        name = p[2]
        name = name.decode() if isinstance(name, bytes) else name
        delim = p[1].decode() if isinstance(p[1], bytes) else p[1]
        out[name] = (set(a.upper() for a in p[0]), delim)
    return out


def bye_closed(r):
    """The server said * BYE (with a reason) and closed the connection."""
    return r.status == "EOF" and any(re.match(rb"^\* BYE \S", u) for u in r.untagged)


def plain(user, password, authz=""):
    return base64.b64encode(b"%s\0%s\0%s" % (authz.encode(), user.encode(), password.encode())).decode()


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def login(a, tls="ssl", src=HOST):
    """A logged-in raw session: implicit TLS (ssl) or STARTTLS (starttls)."""
    if tls == "ssl":
        c = Imap(a.imaps, tls=True, src=src, host=a.host)
    else:
        c = Imap(a.imap, src=src, host=a.host)
        r = c.cmd("STARTTLS")
        if r.status != "OK":
            raise RuntimeError("STARTTLS: %r" % r)
        c.starttls()
    r = c.cmd("AUTHENTICATE PLAIN " + plain(a.user, a.password))
    if r.status != "OK":
        raise RuntimeError("AUTHENTICATE: %r" % r)
    return c


def login_as(a, user, password):
    c = Imap(a.imaps, tls=True, host=a.host)
    r = c.cmd("LOGIN %s %s" % (quote(user), quote(password)))
    if r.status != "OK":
        raise RuntimeError("LOGIN %s: %r" % (user, r))
    return c


def server_up(a, what):
    """A new connection is greeted and answers NOOP: the server survived WHAT."""
    try:
        c = Imap(a.imap, host=a.host)
        r = c.cmd("NOOP")
        c.close()
        return check("server still up after " + what, r.status == "OK" and c.greeting.startswith("* OK"), r)
    except (OSError, EOFError) as e:
        return check("server still up after " + what, False, e)


# The message the main phase APPENDs: Cc, Bcc, an encoded UTF-8 subject
# and a token in its body, so every SEARCH key has one message to find.
APPENDED = (b"Date: Mon, 15 Jun 2020 08:30:00 +0000\r\n"
            b"From: Returns <returns@kurier.example>\r\n"
            b"To: shop@shop.example\r\n"
            b"Cc: cc-person@carbon.example\r\n"
            b"Bcc: bcc-person@blind.example\r\n"
            b"Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9_of_returns?=\r\n"
            b"Message-ID: <appended-1@kurier.example>\r\n"
            b"X-Kurier-Class: hard\r\n"
            b"\r\n"
            b"A digest of returns; unique-body-token-7 is in here.\r\n")
# Three days ago at noon UTC: inside [mailbox] retention (an older one is
# expunged by the store's limits at the next append), on a day of its own.
APPEND_DAY = time.gmtime(time.time() - 3 * 86400)
APPEND_DATE = time.strftime("%d-%b-%Y 12:00:00 +0000", APPEND_DAY)
DAY_AFTER = time.strftime("%d-%b-%Y", time.gmtime(time.time() - 2 * 86400)).lstrip("0")
ON_DAY = time.strftime("%d-%b-%Y", APPEND_DAY).lstrip("0")


def scratch(n):
    return (b"From: scratch@kurier.example\r\nSubject: scratch %d\r\n"
            b"Message-ID: <scratch-%d@kurier.example>\r\n\r\nscratch body %d\r\n" % (n, n, n))


def append(c, mailbox, msg, flags="", date=None, plus=False):
    """APPEND with a synchronizing literal (waiting for "+") or LITERAL+."""
    args = quote(mailbox)
    if flags:
        args += " (%s)" % flags
    if date:
        args += ' "%s"' % date
    if plus:
        return c.cmd(("APPEND %s {%d+}\r\n" % (args, len(msg))).encode() + msg)
    r = c.cmd("APPEND %s {%d}" % (args, len(msg)))
    if r.status != "+":
        return r
    return c.cont(msg + b"\r\n")


def uid_map(c):
    """[uid, ...] by sequence number of the selected mailbox."""
    r = c.cmd("FETCH 1:* (UID)")
    f = fetches(r.untagged)
    return [int(f[k]["UID"]) for k in sorted(f)]


def apply_expunges(uids, untagged):
    """UIDS after the "* N EXPUNGE" responses, in order; None if one is out of range."""
    uids = list(uids)
    for u in untagged:
        m = re.match(rb"^\* (\d+) EXPUNGE$", u, re.I)
        if m:
            k = int(m.group(1))
            if not 1 <= k <= len(uids):
                return None
            del uids[k - 1]
    return uids


def s_(x):
    """An atom or string as upper-case text."""
    return (x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)).upper()


def flags_of(f):
    return set(x.upper() for x in f.get("FLAGS", []))


def phase_main(a):
    prof = PROFILES[a.profile]
    files = [crlf(open(f, "rb").read()) for f in a.files]
    nf = len(files)

    # --- before login, in plaintext --------------------------------------------------
    c = Imap(a.imap, host=a.host)
    check("greeting: " + prof["greeting"], re.match(prof["greeting"], c.greeting), c.greeting)
    r = c.cmd("CAPABILITY")
    caps = caps_of(r.untagged)
    check("CAPABILITY before TLS: OK with IMAP4rev1 and STARTTLS",
          r.status == "OK" and "IMAP4REV1" in caps and "STARTTLS" in caps, r)
    check("greeting's CAPABILITY code equals CAPABILITY's", caps_of([], Resp("", c.greeting, [])) == caps,
          (c.greeting, caps))
    if prof["login_needs_tls"]:
        check("CAPABILITY before TLS: LOGINDISABLED, no AUTH=PLAIN",
              "LOGINDISABLED" in caps and "AUTH=PLAIN" not in caps, caps)
        r = c.cmd("LOGIN %s %s" % (quote(a.user), quote(a.password)))
        check("LOGIN before TLS: NO", r.status == "NO", r)
        r = c.cmd("AUTHENTICATE PLAIN " + plain(a.user, a.password))
        check("AUTHENTICATE PLAIN before TLS: NO or BAD", r.status in ("NO", "BAD"), r)
    r = c.cmd("NOOP")
    check("NOOP before login: OK", r.status == "OK", r)
    r = c.cmd('ID ("name" "imap_check" "version" "1")')
    check("ID before login: OK with an untagged ID",
          r.status == "OK" and any(u.upper().startswith(b"* ID ") for u in r.untagged), r)
    # STARTTLS command injection: what follows STARTTLS in the same packet is dropped.
    t = c.tag()
    c.send(("%s STARTTLS\r\n%s CAPABILITY\r\n" % (t, "inj1")).encode())
    r = c.wait(t)
    check("STARTTLS: OK", r.status == "OK", r)
    c.buf = b""
    try:
        c.starttls()
        r = c.cmd("CAPABILITY")
    except (OSError, EOFError) as e:
        r = Resp("EOF", "TLS handshake failed: %s" % e, [])
    leaked = [u for u in r.untagged if b"inj1" in u]
    if r.status == "EOF" and prof["injection_breaks_tls"]:
        diag("STARTTLS injection: the pipelined plaintext broke the TLS handshake (%s)" % r.line)
        c = Imap(a.imap, host=a.host)
        c.cmd("STARTTLS")
        c.starttls()
        r = c.cmd("CAPABILITY")
    else:
        check("STARTTLS injection: TLS comes up and the CAPABILITY pipelined in plaintext is not answered",
              r.status == "OK" and not leaked and not c.buf.startswith(b"inj1"), r)
    caps = caps_of(r.untagged)
    check("CAPABILITY after STARTTLS: AUTH=PLAIN, no STARTTLS, no LOGINDISABLED",
          "AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps)
    r = c.cmd("STARTTLS")
    check("STARTTLS a second time: BAD or NO", r.status in ("BAD", "NO"), r)
    r = c.cmd("LOGIN %s %s" % (quote(a.user), quote("wrong-password")))
    check("LOGIN with a wrong password: NO", r.status == "NO", r)
    r = c.cmd("LOGIN %s %s" % (quote(a.user), quote(a.password)))
    check("LOGIN over STARTTLS: OK", r.status == "OK", r)
    caps = caps_of(r.untagged, r)
    if not caps:
        caps = caps_of(c.cmd("CAPABILITY").untagged)
    missing = [x for x in CAPS_AFTER_LOGIN if x not in caps]
    check("capabilities after login include " + " ".join(CAPS_AFTER_LOGIN), not missing, "missing %s" % missing)
    check("no AUTH= and no LOGINDISABLED after login",
          not any(x.startswith("AUTH=") or x == "LOGINDISABLED" for x in caps), caps)
    r = c.cmd("LOGIN %s %s" % (quote(a.user), quote(a.password)))
    check("LOGIN when logged in: BAD", r.status == "BAD", r)
    r = c.cmd("LOGOUT")
    check("LOGOUT: * BYE then OK", r.status == "OK" and any(u.startswith(b"* BYE") for u in r.untagged), r)
    check("LOGOUT: the server closes the connection", c.closed())
    c.close()

    # --- AUTHENTICATE PLAIN over implicit TLS -----------------------------------------------
    c = Imap(a.imaps, tls=True, host=a.host)
    r = c.cmd("AUTHENTICATE PLAIN")
    check("AUTHENTICATE PLAIN without an initial response: continuation", r.status == "+", r)
    r = c.cont(b"*\r\n")
    check("AUTHENTICATE cancelled with *: BAD", r.status == "BAD", r)
    r = c.cmd("AUTHENTICATE PLAIN !!!notbase64")
    check("AUTHENTICATE PLAIN with bad base64: BAD or NO", r.status in ("BAD", "NO"), r)
    r = c.cmd("AUTHENTICATE CRAM-MD5")
    check("AUTHENTICATE with a mechanism not offered: NO or BAD", r.status in ("NO", "BAD"), r)
    if a.other_user:
        r = c.cmd("AUTHENTICATE PLAIN " + plain(a.other_user, a.other_password, authz=a.user))
        check("AUTHENTICATE PLAIN acting for another user (authzid): NO", r.status == "NO", r)
    r = c.cmd("AUTHENTICATE PLAIN")
    r = c.cont((plain(a.user, a.password) + "\r\n").encode())
    check("AUTHENTICATE PLAIN with a continuation: OK", r.status == "OK", r)
    c.cmd("LOGOUT")
    c.close()

    # --- imaplib, the real client, over STARTTLS and implicit TLS ------------------------------
    try:
        m = imaplib.IMAP4(a.host, a.imap, timeout=TIMEOUT)
        m.starttls(tls_ctx())
        m.login(a.user, a.password)
        typ, data = m.select("INBOX", readonly=True)
        check("imaplib STARTTLS: SELECT INBOX counts the stored reports", typ == "OK" and int(data[0]) == nf, data)
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        got = data[0][1] if typ == "OK" and data and isinstance(data[0], tuple) else b""
        check("imaplib STARTTLS: the first report byte for byte", got == files[0], "%d bytes, want %d" % (len(got), len(files[0])))
        m.logout()
    except (imaplib.IMAP4.error, OSError) as e:
        check("imaplib STARTTLS session", False, e)
    try:
        m = imaplib.IMAP4_SSL(a.host, a.imaps, ssl_context=tls_ctx(), timeout=TIMEOUT)
        m.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (a.user, a.password)).encode())
        m.select("INBOX", readonly=True)
        typ, data = m.uid("SEARCH", None, "ALL")
        uids = data[0].split()
        typ, data = m.uid("FETCH", uids[-1].decode(), "(BODY.PEEK[])")
        got = data[0][1] if typ == "OK" and data and isinstance(data[0], tuple) else b""
        check("imaplib implicit TLS + AUTHENTICATE: the last report by UID", got == files[-1],
              "%d bytes, want %d" % (len(got), len(files[-1])))
        m.logout()
    except (imaplib.IMAP4.error, OSError, IndexError) as e:
        check("imaplib implicit TLS session", False, e)

    # --- the authenticated state: mailboxes ------------------------------------------------
    c = Imap(a.imaps, tls=True, host=a.host)
    r = c.cmd("AUTHENTICATE PLAIN " + plain(a.user, a.password))
    check("AUTHENTICATE PLAIN with an initial response (SASL-IR): OK", r.status == "OK", r)
    r = c.cmd("NAMESPACE")
    ns = [u for u in r.untagged if u.upper().startswith(b"* NAMESPACE")]
    check('NAMESPACE: one personal namespace "" with delimiter "/"',
          r.status == "OK" and ns and parse(ns[0][12:]) == [[[b"", b"/"]], None, None], r)
    r = c.cmd("ENABLE CONDSTORE")
    check("ENABLE CONDSTORE: * ENABLED CONDSTORE",
          r.status == "OK" and any(re.match(rb"^\* ENABLED .*CONDSTORE", u, re.I) for u in r.untagged), r)
    r = c.cmd('LIST "" ""')
    l = lists(r.untagged)
    check('LIST "" "": the delimiter "/"', r.status == "OK" and l and list(l.values())[0][1] == "/", r)
    r = c.cmd('LIST "" "*"')
    l = lists(r.untagged)
    check('LIST "" "*": only INBOX', r.status == "OK" and list(l) == ["INBOX"], r)
    check("LIST: INBOX has \\HasNoChildren (CHILDREN)", "\\HASNOCHILDREN" in l.get("INBOX", ((), ""))[0], l)
    for name in ("Reports", "Reports/2026"):
        r = c.cmd("CREATE " + quote(name))
        check("CREATE %s: OK" % name, r.status == "OK", r)
    r = c.cmd("CREATE Reports")
    check("CREATE of an existing mailbox: NO", r.status == "NO", r)
    r = c.cmd("CREATE INBOX")
    check("CREATE INBOX: NO", r.status == "NO", r)
    r = c.cmd('LIST "" "*"')
    l = lists(r.untagged)
    check("LIST shows the created mailboxes", set(l) == {"INBOX", "Reports", "Reports/2026"}, r)
    check("CHILDREN: Reports \\HasChildren, Reports/2026 \\HasNoChildren",
          "\\HASCHILDREN" in l.get("Reports", ((), ""))[0] and "\\HASNOCHILDREN" in l.get("Reports/2026", ((), ""))[0], l)
    r = c.cmd('LIST "" "%"')
    check('LIST "" "%": the top level only', set(lists(r.untagged)) == {"INBOX", "Reports"}, r)
    r = c.cmd('LIST "Reports/" "%"')
    check('LIST "Reports/" "%": the level below', set(lists(r.untagged)) == {"Reports/2026"}, r)
    r = c.cmd("SUBSCRIBE Reports")
    check("SUBSCRIBE: OK", r.status == "OK", r)
    r = c.cmd('LSUB "" "*"')
    check("LSUB lists the subscribed mailbox", "Reports" in lists(r.untagged, "LSUB"), r)
    r = c.cmd("RENAME Reports Archive")
    check("RENAME: OK", r.status == "OK", r)
    r = c.cmd('LIST "" "*"')
    check("RENAME took the inferior mailbox along", set(lists(r.untagged)) == {"INBOX", "Archive", "Archive/2026"}, r)
    r = c.cmd("RENAME Nonexistent Other")
    check("RENAME of a mailbox that does not exist: NO", r.status == "NO", r)
    r = c.cmd("RENAME Archive INBOX")
    check("RENAME onto an existing mailbox: NO", r.status == "NO", r)
    r = c.cmd("UNSUBSCRIBE Archive")
    r2 = c.cmd("UNSUBSCRIBE Reports")
    r = c.cmd('LSUB "" "*"')
    check("UNSUBSCRIBE: gone from LSUB", r2.status == "OK" and not ({"Reports", "Archive"} & set(lists(r.untagged, "LSUB"))), r)
    r = c.cmd("DELETE Archive/2026")
    check("DELETE: OK", r.status == "OK", r)
    r = c.cmd("DELETE Archive/2026")
    check("DELETE of a mailbox that does not exist: NO", r.status == "NO", r)
    r = c.cmd("DELETE INBOX")
    check("DELETE INBOX: NO", r.status == "NO", r)
    # Modified UTF-7 (RFC 3501 5.1.3): "Résumé" is R&AOk-sum&AOk-.
    r = c.cmd('CREATE "R&AOk-sum&AOk-"')
    r2 = c.cmd('LIST "" "R*"')
    check("CREATE and LIST of a modified UTF-7 name", r.status == "OK" and "R&AOk-sum&AOk-" in lists(r2.untagged), (r, r2))
    r = c.cmd('CREATE "Bad&Jjo"')
    check("CREATE of broken modified UTF-7: NO or BAD", r.status in ("NO", "BAD"), r)
    r = c.cmd('DELETE "R&AOk-sum&AOk-"')
    check("DELETE of the modified UTF-7 name", r.status == "OK", r)
    bads = ["../bob/INBOX", "/etc", "~bob", "~bob/INBOX", "Archive/../../bob"]
    if prof["wildcards_refused"]:
        bads += ["a*b", "a%b"]
    for bad in bads:
        r = c.cmd("CREATE " + quote(bad))
        check("CREATE %s: NO or BAD" % bad, r.status in ("NO", "BAD"), r)
    r = c.cmd('LIST "" "*"')
    check("no bad name was made", set(lists(r.untagged)) == {"INBOX", "Archive"}, r)
    r = c.cmd("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT HIGHESTMODSEQ)")
    st = {}
    for u in r.untagged:
        if u.upper().startswith(b"* STATUS"):
            p = parse(u[9:])
            st = {p[1][k].upper(): int(p[1][k + 1]) for k in range(0, len(p[1]) - 1, 2)}
    check("STATUS INBOX: MESSAGES and UNSEEN count the reports", st.get("MESSAGES") == nf and st.get("UNSEEN") == nf, r)
    check("STATUS INBOX: UIDNEXT, UIDVALIDITY, RECENT, HIGHESTMODSEQ",
          all(k in st for k in ("UIDNEXT", "UIDVALIDITY", "RECENT", "HIGHESTMODSEQ")), r)
    r = c.cmd("STATUS Nonexistent (MESSAGES)")
    check("STATUS of a mailbox that does not exist: NO", r.status == "NO", r)
    r = c.cmd("FETCH 1 FLAGS")
    check("FETCH with no mailbox selected: BAD", r.status == "BAD", r)

    # --- SELECT -----------------------------------------------------------------------------
    r = c.cmd("SELECT INBOX")
    check("SELECT INBOX: OK [READ-WRITE]", r.status == "OK" and r.code.upper() == "READ-WRITE", r)
    check("SELECT: EXISTS counts the reports", untagged_num(r.untagged, "EXISTS") == nf, r)
    check("SELECT: RECENT is told", untagged_num(r.untagged, "RECENT") is not None, r)
    uidvalidity = code_num(r.untagged, r, "UIDVALIDITY")
    uidnext = code_num(r.untagged, r, "UIDNEXT")
    hms = code_num(r.untagged, r, "HIGHESTMODSEQ")
    check("SELECT: UIDVALIDITY equals STATUS's", uidvalidity == st.get("UIDVALIDITY"), (uidvalidity, st))
    check("SELECT: UIDNEXT equals STATUS's", uidnext == st.get("UIDNEXT"), (uidnext, st))
    check("SELECT with CONDSTORE enabled: HIGHESTMODSEQ", hms is not None and hms >= 1, r)
    fl = [u for u in r.untagged if u.upper().startswith(b"* FLAGS ")]
    fl = set(x.upper() for x in parse(fl[0][8:])[0]) if fl else set()
    check("SELECT: FLAGS lists the system flags",
          {"\\ANSWERED", "\\FLAGGED", "\\DELETED", "\\SEEN", "\\DRAFT"} <= fl, fl)
    check("SELECT: PERMANENTFLAGS allows keywords (\\*)",
          any(re.search(rb"\[PERMANENTFLAGS \(.*\\\*.*\)\]", u) for u in r.untagged), r)

    # --- FETCH ------------------------------------------------------------------------------
    r = c.cmd("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)")
    f = fetches(r.untagged)
    uids = [int(f[k]["UID"]) for k in sorted(f)]
    check("UID FETCH 1:*: one response per message, UIDs ascending",
          sorted(f) == list(range(1, nf + 1)) and uids == sorted(set(uids)), r)
    check("UIDs are below UIDNEXT", uids and uids[-1] < (uidnext or 0), (uids, uidnext))
    sizes = [int(f[k]["RFC822.SIZE"]) for k in sorted(f)]
    check("RFC822.SIZE is each message's size in octets (CRLF)", sizes == [len(x) for x in files],
          (sizes, [len(x) for x in files]))
    check("INTERNALDATE is a date-time", all(re.match(rb"^[ 0-3]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}$", f[k]["INTERNALDATE"]) for k in f), f)
    check("no message is \\Seen yet", all("\\SEEN" not in flags_of(f[k]) for k in f), f)
    r = c.cmd("FETCH 1:* (BODY.PEEK[])")
    f = fetches(r.untagged)
    for k in range(1, nf + 1):
        got = f.get(k, {}).get("BODY[]", b"")
        check("BODY.PEEK[] of message %d equals the stored report" % k, got == files[k - 1],
              "%d bytes, want %d" % (len(got), len(files[k - 1])))
    r = c.cmd("FETCH 1:* (FLAGS)")
    check("BODY.PEEK does not set \\Seen", all("\\SEEN" not in flags_of(v) for v in fetches(r.untagged).values()), r)
    m1 = files[0]
    head, text = split_head(m1)
    r = c.cmd("FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[]<0.10> BODY.PEEK[]<100.50> BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    f = fetches(r.untagged).get(1, {})
    check("BODY[HEADER]: the header section and its blank line", f.get("BODY[HEADER]") == head, f.get("BODY[HEADER]", b"")[-40:])
    check("BODY[TEXT]: the body", f.get("BODY[TEXT]") == text, len(f.get("BODY[TEXT]") or b""))
    check("BODY[]<0.10>: the first 10 octets, named BODY[]<0>", f.get("BODY[]<0>") == m1[:10], f.keys())
    check("BODY[]<100.50>: 50 octets from 100", f.get("BODY[]<100>") == m1[100:150], f.get("BODY[]<100>"))
    hf = [v for k, v in f.items() if k.startswith("BODY[HEADER.FIELDS")]
    want = b"Subject: " + header_value(m1, "Subject").encode() + b"\r\n\r\n"
    check("BODY[HEADER.FIELDS (SUBJECT)]: the field and a blank line", hf == [want], (hf, want))
    if email.message_from_bytes(m1).is_multipart():
        mh, mb = mime_part1(m1)
        r = c.cmd("FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME])")
        f = fetches(r.untagged).get(1, {})
        check("BODY[1]: the first part's body", f.get("BODY[1]") == mb, (f.get("BODY[1]", b"")[:80], mb[:80]))
        check("BODY[1.MIME]: the first part's MIME header", f.get("BODY[1.MIME]") == mh, f.get("BODY[1.MIME]"))
    r = c.cmd("FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)")
    f = fetches(r.untagged).get(1, {})
    env = f.get("ENVELOPE") or [None] * 10
    check("ENVELOPE: date is the Date field", env[0] == (header_value(m1, "Date") or "").encode(), (env[0], header_value(m1, "Date")))
    check("ENVELOPE: subject is the Subject field", env[1] == (header_value(m1, "Subject") or "").encode(), env[1])
    frm = email.utils.parseaddr(header_value(m1, "From"))[1].split("@")
    got = [(x[2], x[3]) for x in (env[2] or [])]
    check("ENVELOPE: from's mailbox and host", got == [(frm[0].encode(), frm[1].encode())], (got, frm))
    check("ENVELOPE: sender and reply-to default to from", env[3] == env[2] and env[4] == env[2], env[2:5])
    mid = header_value(m1, "Message-ID") or header_value(m1, "Message-Id")
    check("ENVELOPE: message-id", env[9] == (mid or "").encode(), (env[9], mid))
    bs = f.get("BODYSTRUCTURE") or []
    ctype = email.message_from_bytes(m1).get_content_type().split("/")
    if email.message_from_bytes(m1).is_multipart():
        subtype_at = next((i for i, x in enumerate(bs) if not isinstance(x, list)), None)
        check("BODYSTRUCTURE: multipart with the message's subtype",
              subtype_at is not None and subtype_at >= 1 and s_(bs[subtype_at]) == ctype[1].upper(), bs)
        params = bs[subtype_at + 1] if subtype_at is not None and len(bs) > subtype_at + 1 else []
        check("BODYSTRUCTURE: the boundary parameter",
              isinstance(params, list) and email.message_from_bytes(m1).get_boundary().upper() in [s_(x) for x in params], params)
        part1 = bs[0] if bs and isinstance(bs[0], list) else []
        p1type = email.message_from_bytes(m1).get_payload(0).get_content_type().split("/")
        check("BODYSTRUCTURE: part 1's type and size", len(part1) > 6 and isinstance(part1[0], bytes) and
              part1[0].upper() == p1type[0].upper().encode() and part1[1].upper() == p1type[1].upper().encode() and
              int(part1[6]) == len(mime_part1(m1)[1]), part1)
        body = f.get("BODY") or []
        check("BODY (no extension data): the same parts and subtype",
              len(body) == subtype_at + 1 and s_(body[subtype_at]) == ctype[1].upper(), body)
    r = c.cmd("FETCH %d (RFC822.HEADER RFC822.TEXT)" % nf)
    f = fetches(r.untagged).get(nf, {})
    h, t = split_head(files[-1])
    check("RFC822.HEADER and RFC822.TEXT", f.get("RFC822.HEADER") == h and f.get("RFC822.TEXT") == t, f.keys())
    r = c.cmd("FETCH %d (FLAGS)" % nf)
    check("RFC822.TEXT sets \\Seen", "\\SEEN" in flags_of(fetches(r.untagged).get(nf, {})), r)
    r = c.cmd("FETCH 1 (RFC822.SIZE RFC822.PEEK)")
    check("FETCH of an unknown item: BAD", r.status == "BAD", r)
    r = c.cmd("FETCH %d FLAGS" % (nf + 5))
    check("FETCH of a sequence number past EXISTS: BAD or nothing",
          r.status == "BAD" or (r.status == "OK" and not fetches(r.untagged)), r)
    r = c.cmd("UID FETCH %d FLAGS" % (uids[-1] + 1000))
    check("UID FETCH of a UID that does not exist: OK and nothing", r.status == "OK" and not fetches(r.untagged), r)

    # --- APPEND (UIDPLUS) ---------------------------------------------------------------------
    r = append(c, "INBOX", APPENDED, flags="\\Seen", date=APPEND_DATE)
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", r.line, re.I)
    check("APPEND: OK [APPENDUID uidvalidity uid]", r.status == "OK" and m, r)
    app_uid = int(m.group(2)) if m else 0
    check("APPENDUID: the mailbox's UIDVALIDITY", m and int(m.group(1)) == uidvalidity, (r, uidvalidity))
    check("APPENDUID: a UID not below UIDNEXT", app_uid >= (uidnext or 0), (app_uid, uidnext))
    r = c.cmd("NOOP")
    # The EXISTS may come with APPEND's own response or with the NOOP.
    check("APPEND to the selected mailbox: EXISTS grows by one", nf + 1 in (untagged_num(r.untagged, "EXISTS"),) or
          len(uid_map(c)) == nf + 1, r)
    r = c.cmd("UID FETCH %d (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])" % app_uid)
    f = list(fetches(r.untagged).values())
    f = f[0] if f else {}
    check("the APPENDUID is the UID FETCH shows, with the bytes appended", f.get("BODY[]") == APPENDED, f)
    check("APPEND's flags are kept", "\\SEEN" in flags_of(f), f)
    check("APPEND's date is the INTERNALDATE", f.get("INTERNALDATE", b"").lstrip(b" 0") == APPEND_DATE.lstrip("0").encode(),
          (f.get("INTERNALDATE"), APPEND_DATE))
    check("RFC822.SIZE of the appended message", int(f.get("RFC822.SIZE", -1)) == len(APPENDED), f.get("RFC822.SIZE"))
    r = append(c, "Archive", scratch(1), plus=True)
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", r.line, re.I)
    check("APPEND with a LITERAL+ literal: OK [APPENDUID]", r.status == "OK" and m, r)
    arch_first = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    r = append(c, "Nonexistent", scratch(2))
    check("APPEND to a mailbox that does not exist: NO [TRYCREATE]", r.status == "NO" and r.code.upper() == "TRYCREATE", r)
    r = c.cmd('APPEND INBOX "not a literal"')
    check("APPEND without a literal: BAD", r.status == "BAD", r)
    seq = uid_map(c)
    n = len(seq)
    check("the INBOX now holds the reports and the appended message", seq == uids + [app_uid], (seq, uids, app_uid))

    # --- STORE and CONDSTORE ------------------------------------------------------------------
    r = c.cmd("FETCH 1:* (MODSEQ)")
    ms = {k: int(v["MODSEQ"][0]) for k, v in fetches(r.untagged).items() if "MODSEQ" in v}
    h0 = max(ms.values()) if ms else 0
    check("FETCH MODSEQ: one per message, none above HIGHESTMODSEQ",
          len(ms) == n and h0 <= max(hms or 0, h0) and all(v >= 1 for v in ms.values()), r)
    r = c.cmd("STORE 1 +FLAGS (\\Flagged $Bounce)")
    f = fetches(r.untagged).get(1, {})
    check("STORE +FLAGS: the FETCH shows \\Flagged and the keyword",
          r.status == "OK" and {"\\FLAGGED", "$BOUNCE"} <= flags_of(f), r)
    m1s = int(f["MODSEQ"][0]) if "MODSEQ" in f else 0
    check("STORE with CONDSTORE: the FETCH carries a MODSEQ above the old highest", m1s > h0, (m1s, h0))
    r = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h0)
    check("FETCH CHANGEDSINCE: only the changed message", sorted(fetches(r.untagged)) == [1], r)
    r = c.cmd("STORE 2 +FLAGS.SILENT (\\Answered)")
    check("STORE .SILENT: no FLAGS in a FETCH response (a MODSEQ may come, RFC 7162 3.1.3)",
          r.status == "OK" and "FLAGS" not in fetches(r.untagged).get(2, {}), r)
    r = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h0)
    check("FETCH CHANGEDSINCE: both changed messages", sorted(fetches(r.untagged)) == [1, 2], r)
    r = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m1s)
    f = fetches(r.untagged)
    check("FETCH CHANGEDSINCE a later MODSEQ: only the later change", sorted(f) == [2], r)
    m2s = int(f[2]["MODSEQ"][0]) if 2 in f and "MODSEQ" in f[2] else 0
    r = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m1s)
    check("UID FETCH CHANGEDSINCE: the same, with UIDs", [int(v["UID"]) for v in fetches(r.untagged).values()] == [seq[1]], r)
    r = c.cmd("STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\\Draft)" % m1s)
    check("STORE UNCHANGEDSINCE: OK [MODIFIED 2] for the message changed since",
          r.status == "OK" and re.sub(r"\s", "", r.code.upper()) == "MODIFIED2", r)
    r = c.cmd("FETCH 1:2 (FLAGS)")
    f = fetches(r.untagged)
    check("UNCHANGEDSINCE: message 1 got \\Draft, message 2 did not",
          "\\DRAFT" in flags_of(f.get(1, {})) and "\\DRAFT" not in flags_of(f.get(2, {})), f)
    r = c.cmd("STORE 1 -FLAGS (\\Draft)")
    check("STORE -FLAGS: the flag is gone, the others stay",
          flags_of(fetches(r.untagged).get(1, {})) >= {"\\FLAGGED", "$BOUNCE"} and "\\DRAFT" not in flags_of(fetches(r.untagged).get(1, {})), r)
    r = c.cmd("SEARCH MODSEQ %d" % m2s)
    nums, smod = searched(r.untagged)
    check("SEARCH MODSEQ: the messages changed at or after it, with the highest MODSEQ",
          sorted(nums) == [1, 2] and smod is not None and smod > m2s, r)
    r = c.cmd("STORE 3 FLAGS (\\Seen $Triaged)")
    check("STORE FLAGS replaces the flags", flags_of(fetches(r.untagged).get(3, {})) - {"\\RECENT"} == {"\\SEEN", "$TRIAGED"}, r)
    r = c.cmd("STORE 3 FLAGS (\\Seen)")
    r = c.cmd("STORE 1 +FLAGS (\\Recent)")
    check("STORE of \\Recent: BAD or NO (a server-set flag)", r.status in ("BAD", "NO"), r)

    # Another session sees the flags; EXAMINE is read-only.
    c2 = login(a, tls="starttls")
    r = c2.cmd("EXAMINE INBOX")
    check("EXAMINE: OK [READ-ONLY]", r.status == "OK" and r.code.upper() == "READ-ONLY", r)
    check("UIDVALIDITY is the same in another session", code_num(r.untagged, r, "UIDVALIDITY") == uidvalidity, r)
    r = c2.cmd("FETCH 1:3 (UID FLAGS)")
    f = fetches(r.untagged)
    check("flags set in one session are seen in another",
          {"\\FLAGGED", "$BOUNCE"} <= flags_of(f.get(1, {})) and "\\ANSWERED" in flags_of(f.get(2, {})), f)
    check("UIDs are the same in another session", [int(f[k]["UID"]) for k in sorted(f)] == seq[:3], f)
    r = c2.cmd("STORE 2 +FLAGS (\\Deleted)")
    r2 = c2.cmd("FETCH 2 (FLAGS)")
    check("STORE in an EXAMINEd mailbox: NO, or OK that changes nothing",
          r.status == "NO" or (r.status == "OK" and "\\DELETED" not in flags_of(fetches(r2.untagged).get(2, {}))), (r, r2))
    r = c2.cmd("FETCH 2 (BODY[])")
    r = c2.cmd("FETCH 2 (FLAGS)")
    check("FETCH BODY[] in an EXAMINEd mailbox does not set \\Seen", "\\SEEN" not in flags_of(fetches(r.untagged).get(2, {})), r)
    c2.cmd("LOGOUT")
    c2.close()
    c.cmd("STORE %d +FLAGS.SILENT (\\Deleted)" % n)
    c2 = login(a, tls="starttls")
    c2.cmd("EXAMINE INBOX")
    r = c2.cmd("EXPUNGE")
    check("EXPUNGE in an EXAMINEd mailbox: NO, or OK that expunges nothing",
          r.status in ("NO", "OK") and untagged_num(r.untagged, "EXPUNGE") is None and len(uid_map(c2)) == n, r)
    c.cmd("STORE %d -FLAGS.SILENT (\\Deleted)" % n)
    c2.cmd("LOGOUT")
    c2.close()

    # --- SEARCH ---------------------------------------------------------------------------------
    msgs = files + [APPENDED]
    hv = lambda i, name: (header_value(msgs[i], name) or "").lower()

    def sent(i):
        d = email.utils.parsedate_tz(header_value(msgs[i], "Date") or "")
        return (d[0], d[1], d[2]) if d else None

    def expect(pred):
        return [i + 1 for i in range(n) if pred(i)]
    cur = fetches(c.cmd("FETCH 1:* (FLAGS RFC822.SIZE)").untagged)
    fset = {k: flags_of(v) for k, v in cur.items()}
    size = {k: int(v["RFC822.SIZE"]) for k, v in cur.items()}
    mid_size = sorted(size.values())[len(size) // 2]
    recent, _ = searched(c.cmd("SEARCH RECENT").untagged)
    unseen = [k for k in range(1, n + 1) if "\\SEEN" not in fset[k]]
    arf = next((i for i in range(nf) if "fbl-abuse" in hv(i, "to")), None)
    cases = [
        ("ALL", list(range(1, n + 1))),
        ("SEEN", [k for k in range(1, n + 1) if "\\SEEN" in fset[k]]),
        ("UNSEEN", unseen),
        ("FLAGGED", [1]),
        ("ANSWERED", [2]),
        ("DELETED", []),
        ("KEYWORD $Bounce", [1]),
        ("NOT KEYWORD $Bounce", list(range(2, n + 1))),
        ("OR FLAGGED ANSWERED", [1, 2]),
        ("NEW", sorted(set(recent) & set(unseen))),
        ("OLD", [k for k in range(1, n + 1) if k not in recent]),
        ('FROM "sijo.example"', expect(lambda i: "sijo.example" in hv(i, "from"))),
        ('TO "kijitora@example.jp"', expect(lambda i: "kijitora@example.jp" in hv(i, "to"))),
        ('CC "carbon.example"', [n]),
        ('BCC "blind.example"', [n]),
        ('SUBJECT "undeliverable"', expect(lambda i: "undeliverable" in hv(i, "subject"))),
        ('HEADER X-Kurier-Class "hard"', [n]),
        ('HEADER Message-ID "x34.mx.example.net"', expect(lambda i: "x34.mx.example.net" in hv(i, "message-id"))),
        ('BODY "unique-body-token-7"', [n]),
        ('TEXT "unique-body-token-7"', [n]),
        ('TEXT "cc-person"', [n]),
        ('BODY "cc-person"', []),
        ("BEFORE " + DAY_AFTER, [n]),
        ("ON " + ON_DAY, [n]),
        ("SINCE " + DAY_AFTER, list(range(1, n))),
        ("SENTBEFORE 1-Jan-2011", expect(lambda i: sent(i) and sent(i) < (2011, 1, 1))),
        ("SENTSINCE 1-Jan-2018", expect(lambda i: sent(i) and sent(i) >= (2018, 1, 1))),
        ("SENTON 15-Jun-2020", [n]),
        ("LARGER %d" % mid_size, [k for k in range(1, n + 1) if size[k] > mid_size]),
        ("SMALLER %d" % mid_size, [k for k in range(1, n + 1) if size[k] < mid_size]),
        ("UID %d:%d" % (seq[1], seq[2]), [2, 3]),
        ("2:*", list(range(2, n + 1))),
        ("1,3", [1, 3]),
        ("*", [n]),
        ("NOT SEEN FLAGGED", [k for k in [1] if k in unseen]),
        ("CHARSET UTF-8 SUBJECT R\u00e9sum\u00e9 (a LITERAL+ literal)", [n]),
    ]
    if arf is not None:
        cases.append(('TO "fbl-abuse"', [arf + 1]))
    for key, want in cases:
        if key.startswith("CHARSET"):
            word = "R\u00e9sum\u00e9".encode()
            r = c.cmd(b"SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n%s" % (len(word), word))
        else:
            r = c.cmd("SEARCH " + key)
        got, _ = searched(r.untagged)
        check("SEARCH %s" % key, r.status == "OK" and sorted(got) == sorted(want),
              "got %s want %s (%s)" % (sorted(got), sorted(want), r.line))
    check("SEARCH RECENT: a subset of ALL", set(recent) <= set(range(1, n + 1)), recent)
    r = c.cmd("UID SEARCH FLAGGED")
    check("UID SEARCH answers UIDs", searched(r.untagged)[0] == [seq[0]], r)
    r = c.cmd('SEARCH CHARSET X-UNKNOWN SUBJECT "x"')
    check("SEARCH CHARSET unknown: NO [BADCHARSET]", r.status == "NO" and r.code.upper().startswith("BADCHARSET"), r)
    r = c.cmd("SEARCH FROZZLE")
    check("SEARCH with an unknown key: BAD", r.status == "BAD", r)

    # --- COPY and MOVE (UIDPLUS COPYUID) -------------------------------------------------------
    r = c.cmd("COPY 1:2 Archive")
    m = re.search(r"\[COPYUID (\d+) (\S+) (\S+)\]", r.line, re.I)
    check("COPY: OK [COPYUID ...]", r.status == "OK" and m, r)

    def uidset(s):
        out = []
        for part in s.split(","):
            lo, _, hi = part.partition(":")
            lo, hi = int(lo), int(hi or lo)
            out += list(range(min(lo, hi), max(lo, hi) + 1))
        return out
    copied = dict(zip(uidset(m.group(2)), uidset(m.group(3)))) if m else {}
    check("COPYUID: the source UIDs and the Archive's UIDVALIDITY",
          m and sorted(copied) == seq[:2] and int(m.group(1)) == arch_first[0], (r, seq[:2], arch_first))
    r = c.cmd("COPY 1 Nonexistent")
    check("COPY to a mailbox that does not exist: NO [TRYCREATE]", r.status == "NO" and r.code.upper() == "TRYCREATE", r)
    r = c.cmd("UID MOVE %d Archive" % app_uid)
    mv = [u for u in r.untagged if re.search(rb"\[COPYUID ", u, re.I)] + ([r.line.encode()] if "COPYUID" in r.line.upper() else [])
    mm = re.search(rb"\[COPYUID (\d+) (\d+) (\d+)\]", mv[0], re.I) if mv else None
    check("MOVE: OK with COPYUID", r.status == "OK" and mm and int(mm.group(2)) == app_uid, r)
    check("MOVE: * N EXPUNGE of the moved message", untagged_num(r.untagged, "EXPUNGE") == n, r)
    moved_uid = int(mm.group(3)) if mm else 0
    seq = uid_map(c)
    check("MOVE: gone from INBOX", seq == uids, (seq, uids))

    # --- EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT -------------------------------------------------
    new = []
    for k in range(3):
        r = append(c, "INBOX", scratch(10 + k), flags="\\Deleted" if k != 1 else "")
        m = re.search(r"\[APPENDUID \d+ (\d+)\]", r.line)
        new.append(int(m.group(1)) if m else 0)
    c.cmd("NOOP")
    seq = uid_map(c)
    check("three scratch messages appended", seq == uids + new, (seq, new))
    r = c.cmd("UID EXPUNGE %d" % new[0])
    after = apply_expunges(seq, r.untagged)
    check("UID EXPUNGE: only that UID is expunged, with its sequence number",
          r.status == "OK" and after == uids + new[1:], (r, after))
    r = c.cmd("STORE %d +FLAGS.SILENT (\\Deleted)" % (len(uids) + 1))
    seq = uid_map(c)
    r = c.cmd("EXPUNGE")
    after = apply_expunges(seq, r.untagged)
    check("EXPUNGE: the \\Deleted messages, each EXPUNGE's sequence number right",
          r.status == "OK" and after == uids, (r, after, seq))
    r = append(c, "INBOX", scratch(20), flags="\\Deleted")
    c.cmd("NOOP")
    r = c.cmd("UNSELECT")
    check("UNSELECT: OK", r.status == "OK" and not any(b"EXPUNGE" in u for u in r.untagged), r)
    r = c.cmd("FETCH 1 FLAGS")
    check("after UNSELECT no mailbox is selected", r.status == "BAD", r)
    r = c.cmd("SELECT INBOX")
    check("UNSELECT expunged nothing", untagged_num(r.untagged, "EXISTS") == len(uids) + 1, r)
    r = c.cmd("CHECK")
    check("CHECK: OK", r.status == "OK", r)
    r = c.cmd("CLOSE")
    check("CLOSE: OK, without EXPUNGE responses", r.status == "OK" and not any(b"EXPUNGE" in u for u in r.untagged), r)
    r = c.cmd("STATUS INBOX (MESSAGES)")
    check("CLOSE expunged the \\Deleted message", re.search(rb"MESSAGES %d\b" % len(uids), b"".join(r.untagged)), r)

    # --- the Archive holds the copies, byte for byte ------------------------------------------
    r = c.cmd("SELECT Archive")
    r = c.cmd("UID FETCH 1:* (UID BODY.PEEK[])")
    got = {int(v["UID"]): v.get("BODY[]") for v in fetches(r.untagged).values()}
    check("COPYUID's UIDs hold the copied messages", all(got.get(copied.get(u)) == files[i] for i, u in enumerate(uids[:2])) and copied,
          (copied, list(got)))
    check("MOVE's COPYUID UID holds the moved message", got.get(moved_uid) == APPENDED, (moved_uid, list(got)))
    check("the LITERAL+ APPENDUID holds that message", got.get(arch_first[1]) == scratch(1), (arch_first, list(got)))
    r = c.cmd("IDLE")
    check("IDLE: continuation", r.status == "+", r)
    r = c.cont(b"DONE\r\n")
    check("IDLE ... DONE: OK", r.status == "OK", r)
    r = c.cmd("LOGOUT")
    c.close()

    # --- the next session: the same UIDs, UIDVALIDITY and flags --------------------------------
    c = login(a)
    r = c.cmd("SELECT INBOX")
    check("UIDVALIDITY stable across sessions", code_num(r.untagged, r, "UIDVALIDITY") == uidvalidity, r)
    r = c.cmd("FETCH 1:* (UID FLAGS BODY.PEEK[])")
    f = fetches(r.untagged)
    check("UIDs stable across sessions", [int(f[k]["UID"]) for k in sorted(f)] == uids, (f.keys(), uids))
    check("each UID still holds its message", all(f[k].get("BODY[]") == files[k - 1] for k in f) and len(f) == nf, len(f))
    check("flags kept across sessions", {"\\FLAGGED", "$BOUNCE"} <= flags_of(f.get(1, {})) and "\\ANSWERED" in flags_of(f.get(2, {})), f)
    c.cmd("LOGOUT")
    c.close()

    # --- user A never sees user B's mail --------------------------------------------------------
    if a.other_user:
        o = login_as(a, a.other_user, a.other_password)
        r = o.cmd('LIST "" "*"')
        check("user B lists only their own INBOX", set(lists(r.untagged)) == {"INBOX"}, r)
        r = o.cmd("SELECT INBOX")
        n_b = untagged_num(r.untagged, "EXISTS")
        r = o.cmd("FETCH 1:* (BODY.PEEK[])")
        mails = [v.get("BODY[]", b"") for v in fetches(r.untagged).values()]
        check("user B's INBOX holds only user B's message",
              n_b == 1 and mails and all(x not in files and x != APPENDED for x in mails), (n_b, [x[:80] for x in mails]))
        for name in ("Archive", "../%s/INBOX" % a.user, "~%s/INBOX" % a.user, "/%s/INBOX" % a.user):
            r = o.cmd("SELECT " + quote(name))
            check("user B cannot SELECT %s" % name, r.status in ("NO", "BAD"), r)
        r = o.cmd("STATUS Archive (MESSAGES)")
        check("user B cannot STATUS user A's Archive", r.status == "NO", r)
        r = o.cmd("CREATE BlogOnly")
        o.cmd("LOGOUT")
        o.close()
        c = login(a)
        r = c.cmd('LIST "" "*"')
        check("user A does not see user B's mailboxes", set(lists(r.untagged)) == {"INBOX", "Archive"}, r)
        c.cmd("LOGOUT")
        c.close()


def phase_seed(a):
    """APPEND --files to INBOX (for a server without mbox_append)."""
    c = login_as(a, a.user, a.password)
    for f in a.files:
        r = append(c, "INBOX", crlf(open(f, "rb").read()))
        check("seed: APPEND " + f.rsplit("/", 1)[-1], r.status == "OK", r)
    c.cmd("LOGOUT")
    c.close()
    if a.other_user:
        c = login_as(a, a.other_user, a.other_password)
        r = append(c, "INBOX", b"From: a@blog.example\r\nSubject: for blog only\r\n\r\nonly blog reads this\r\n")
        check("seed: APPEND for the other user", r.status == "OK", r)
        c.cmd("LOGOUT")
        c.close()


def phase_hostile(a):
    # Every command of the authenticated and selected states, before
    # login, each on a connection of its own ([policy] max_errors).
    prof = PROFILES[a.profile]
    before = ["SELECT INBOX", "EXAMINE INBOX", "CREATE x", "DELETE x", "RENAME x y", "SUBSCRIBE x",
              "UNSUBSCRIBE x", 'LIST "" "*"', 'LSUB "" "*"', "STATUS INBOX (MESSAGES)", "CHECK", "CLOSE",
              "EXPUNGE", "SEARCH ALL", "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "COPY 1 x", "MOVE 1 x",
              "UID FETCH 1 FLAGS", "UID EXPUNGE 1", "IDLE", "NAMESPACE", "UNSELECT", "ENABLE CONDSTORE"]
    for text in before:
        c = Imap(a.imap, host=a.host)
        r = c.cmd(text)
        name = "%s before login: BAD or NO" % text.split()[0] + (" " + text.split()[1] if text.startswith("UID") else "")
        if text.startswith("ENABLE") and prof["lenient_prelogin"] and r.status == "OK":
            # Dovecot answers OK and enables nothing.
            check(name + " (or OK enabling nothing)", all(u.strip().upper() == b"* ENABLED" for u in r.untagged
                                                         if u.upper().startswith(b"* ENABLED")), r)
        else:
            check(name, r.status in ("BAD", "NO"), r)
        r = c.cmd("NOOP")
        check("%s: the session goes on" % text.split()[0], r.status == "OK", r)
        c.close()
    c = Imap(a.imap, host=a.host)
    r = c.cmd("APPEND INBOX {5}")
    if r.status == "+":
        # A small literal may be read before the refusal.
        r = c.cont(b"hello\r\n")
    check("APPEND before login: BAD or NO", r.status in ("BAD", "NO"), r)
    c.close()
    c = Imap(a.imap, host=a.host)
    r = c.cmd("XYZZY")
    check("an unknown command: BAD", r.status == "BAD", r)
    r = c.cmd("NOOP")
    check("the session goes on after it", r.status == "OK", r)
    c.close()
    server_up(a, "every command before login")

    # Literal bombs: the announced size is refused before anything is read.
    for lit in ("{4294967295}", "{18446744073709551616}"):
        c = Imap(a.imap, host=a.host)
        r = c.cmd("LOGIN " + lit)
        check("LOGIN %s before login: BAD or NO, or * BYE with a reason and closed; no continuation" % lit,
              r.status in ("BAD", "NO") or bye_closed(r), r)
        c.close()
    c = Imap(a.imap, host=a.host)
    t = c.tag()
    c.send(("%s LOGIN {1000000000+}\r\n" % t).encode() + b"x" * 1000)
    c.s.settimeout(LITERAL_WAIT)
    try:
        r = c.wait(t)
        ok = r.status in ("BAD", "NO")
    except (EOFError, OSError) as e:
        r = e
        ok = "closed" in str(e) or isinstance(e, ConnectionResetError)
    check("LITERAL+ {1000000000+} before login: BAD/NO, or closed, at once", ok, r)
    c.close()
    server_up(a, "literal bombs before login")

    c = login(a)
    r = c.cmd("APPEND INBOX {4294967296}")
    if r.status == "+" and not prof["append_limit"]:
        diag("APPEND {4294967296}: the server would read a 4 GB literal (%s); not sending it" % r.line)
        c.close()
        c = login(a)
    else:
        check("APPEND of an announced 4 GB literal: NO or BAD, or * BYE with a reason; no continuation",
              r.status in ("NO", "BAD") or bye_closed(r), r)
        if r.status == "EOF":
            c.close()
            c = login(a)
        r = c.cmd("APPEND INBOX (\\Seen) {18446744073709551616}")
        check("APPEND {18446744073709551616}: BAD or NO, or * BYE with a reason",
              r.status in ("NO", "BAD") or bye_closed(r), r)
        if r.status == "EOF":
            c.close()
            c = login(a)
        r = c.cmd("APPEND INBOX {4294967295}")
        check("APPEND {4294967295}: BAD or NO, no continuation", r.status in ("NO", "BAD"), r)
        c.close()
        c = login(a)
    t = c.tag()
    c.send(("%s APPEND INBOX {4294967296+}\r\n" % t).encode() + b"x" * 1000 + b"\r\n")
    c.s.settimeout(LITERAL_WAIT)
    try:
        r = c.wait(t)
        ok = r.status in ("BAD", "NO")
    except (EOFError, OSError) as e:
        r = e
        ok = "closed" in str(e) or isinstance(e, ConnectionResetError)
    if not ok and not prof["append_limit"]:
        diag("APPEND {4294967296+}: the server reads the literal (%s)" % r)
    else:
        check("APPEND with a 4 GB LITERAL+ literal: NO/BAD, or closed", ok, r)
    c.close()
    # Below the 4 GB cap but above any message size limit.
    c = login(a)
    t = c.tag()
    c.send(("%s APPEND INBOX {4294967295+}\r\n" % t).encode() + b"x" * 1000 + b"\r\n")
    c.s.settimeout(LITERAL_WAIT)
    try:
        r = c.wait(t)
        ok = r.status in ("BAD", "NO")
    except (EOFError, OSError) as e:
        r = e
        ok = "closed" in str(e) or isinstance(e, ConnectionResetError)
    if not ok and not prof["append_limit"]:
        diag("APPEND {4294967295+}: the server reads the literal (%s)" % r)
    else:
        check("APPEND with a {4294967295+} literal: NO/BAD, or closed, at once", ok, r)
    c.close()
    server_up(a, "4 GB APPENDs")

    # Deep nesting, bad sequence sets, unterminated strings, long lines,
    # NUL; a new session every few errors ([policy] max_errors).
    def fresh():
        c = login(a)
        r = c.cmd("SELECT INBOX")
        return c, untagged_num(r.untagged, "EXISTS") or 0
    c, exists = fresh()
    r = c.cmd("FETCH 1 " + "(" * 100000 + "FLAGS" + ")" * 100000)
    check("FETCH with 100,000 nested parentheses: BAD", r.status == "BAD", r)
    c.close()
    c, exists = fresh()
    r = c.cmd("SEARCH " + "(" * 100000 + "ALL" + ")" * 100000)
    check("SEARCH with 100,000 nested parentheses: BAD", r.status == "BAD", r)
    c.close()
    server_up(a, "100,000 nested parentheses")
    for k, bad in enumerate(("FETCH 0 FLAGS", "FETCH 4294967296 FLAGS", "UID FETCH 0 FLAGS", "UID FETCH 4294967296 FLAGS",
                "SEARCH 0", "STORE 0 +FLAGS (\\Seen)", "FETCH 1:0 FLAGS", "FETCH -1 FLAGS", "FETCH 1,,2 FLAGS",
                "UID SEARCH UID 4294967296")):
        if k % 5 == 0:
            c.close()
            c, exists = fresh()
        r = c.cmd(bad)
        check("%s: BAD" % bad, r.status == "BAD", r)
    c.close()
    c, exists = fresh()
    r = c.cmd("FETCH *:* (UID)")
    f = fetches(r.untagged)
    check("FETCH *:*: OK, the last message only", r.status == "OK" and sorted(f) == ([exists] if exists else []), r)
    r = c.cmd("UID FETCH *:* (UID)")
    check("UID FETCH *:*: OK, the last message only", r.status == "OK" and len(fetches(r.untagged)) == (1 if exists else 0), r)
    r = c.cmd('SELECT "INBOX')
    check("an unterminated quoted string: BAD", r.status == "BAD", r)
    r = c.cmd('SEARCH SUBJECT "abc')
    check("an unterminated quoted string in SEARCH: BAD", r.status == "BAD", r)
    names = ["../bob/INBOX", "/etc", "~bob", "~bob/INBOX", "INBOX/../../etc", "/", ".."]
    if prof["wildcards_refused"]:
        names += ["*", "%"]
    for name in names:
        c.close()
        c, exists = fresh()
        for verb in ("SELECT", "CREATE", "STATUS", "DELETE"):
            r = c.cmd("%s %s" % (verb, quote(name)) + (" (MESSAGES)" if verb == "STATUS" else ""))
            check("%s %s: NO or BAD" % (verb, name), r.status in ("NO", "BAD"), r)
        if r.status == "EOF":
            break
    c.close()
    c, exists = fresh()
    c.send(b"a1 NOOP " + b"x" * (1024 * 1024) + b"\r\n")
    try:
        r = c.wait("a1")
        ok = r.status == "BAD"
    except (EOFError, OSError) as e:
        r = e
        ok = False
    if not ok and not isinstance(r, Resp):
        ok = any(u.startswith(b"* BYE") for u in [c.buf])
    if prof["lenient_prelogin"] and not ok:
        diag("a 1 MB NOOP line: %s" % r)
    else:
        check("a 1 MB command line: BAD (or BYE)", ok, r)
    r = c.cmd("NOOP") if ok and isinstance(r, Resp) else Resp("EOF", "closed", [])
    diag("after the 1 MB line the session %s" % ("goes on" if r.status == "OK" else "was closed"))
    c.close()
    server_up(a, "a 1 MB command line")
    c = Imap(a.imap, host=a.host)
    r = c.cmd(b"NO\0OP")
    check("a NUL byte in a command: BAD", r.status == "BAD", r)
    r = c.cmd(b"")
    c.close()
    c = Imap(a.imap, host=a.host)
    c.send(b"\r\n")
    r = c.cmd("NOOP")
    check("an empty line: BAD, and the session goes on", r.status == "OK" and any(u.startswith(b"* BAD") for u in r.untagged), r)
    c.close()
    c = login(a)
    r = c.cmd("LIST " + "x" * 70000 + ' "*"')
    check("a 70,000-character mailbox reference: BAD or NO, or nothing listed",
          r.status in ("BAD", "NO") or (r.status == "OK" and not lists(r.untagged)), r)
    r = c.cmd('CREATE "' + "y" * 70000 + '"')
    check("CREATE of a 70,000-character name: NO or BAD", r.status in ("NO", "BAD"), r)
    c.close()
    if a.max_errors:
        # [policy] max_errors bad commands end the session.
        c, exists = fresh()
        got = []
        for _ in range(a.max_errors + 2):
            r = c.cmd("BOGUS")
            got += r.untagged
            if r.status == "EOF" or any(u.startswith(b"* BYE") for u in r.untagged):
                break
        check("[policy] max_errors bad commands: * BYE and closed",
              any(u.startswith(b"* BYE") for u in got) and c.closed(), (r, got[-3:]))
        c.close()
    server_up(a, "hostile input")


def inject(a):
    """Store one new message in the user's INBOX by other means than this session."""
    if a.inject:
        subprocess.run(a.inject, shell=True, check=True, timeout=TIMEOUT)
        return
    o = Imap(a.append_port or a.imaps, tls=True, host=a.host)
    o.cmd("AUTHENTICATE PLAIN " + plain(a.user, a.password))
    r = append(o, "INBOX", scratch(int(time.time())))
    o.cmd("LOGOUT")
    o.close()
    if r.status != "OK":
        raise RuntimeError("APPEND through another session: %r" % r)


def idle_wait(c, pattern, wait=IDLE_WAIT):
    """Read untagged responses until one matches PATTERN (bytes regex) or WAIT seconds pass."""
    end = time.monotonic() + wait
    seen = []
    while time.monotonic() < end:
        c.s.settimeout(max(0.1, end - time.monotonic()))
        try:
            u = c.read()
        except socket.timeout:
            break
        except (EOFError, OSError) as e:
            seen.append(str(e).encode())
            break
        seen.append(u)
        if re.match(pattern, u, re.I):
            c.s.settimeout(TIMEOUT)
            return True, seen
    c.s.settimeout(TIMEOUT)
    return False, seen


def phase_idle(a):
    c = login(a)
    r = c.cmd("SELECT INBOX")
    n = untagged_num(r.untagged, "EXISTS") or 0
    r = c.cmd("IDLE")
    check("IDLE: continuation", r.status == "+", r)
    t0 = time.monotonic()
    inject(a)
    t1 = time.monotonic()
    ok, seen = idle_wait(c, rb"^\* %d EXISTS$" % (n + 1))
    what = a.label or "an append"
    check("IDLE is told of %s: * %d EXISTS within %d s" % (what, n + 1, IDLE_WAIT), ok, seen)
    if ok:
        diag("IDLE: EXISTS %.3f s after the append was stored (%.3f s after it began)" %
             (time.monotonic() - t1, time.monotonic() - t0))
    if not a.inject and not a.append_port:
        # Another session changes flags and expunges: both told while idling.
        o = login(a, tls="starttls")
        o.cmd("SELECT INBOX")
        o.cmd("STORE %d +FLAGS (\\Flagged)" % (n + 1))
        ok, seen = idle_wait(c, rb"^\* %d FETCH \(.*\\Flagged" % (n + 1))
        check("IDLE is told of another session's flag change: * %d FETCH (FLAGS ...)" % (n + 1), ok, seen)
        o.cmd("STORE %d +FLAGS (\\Deleted)" % (n + 1))
        o.cmd("EXPUNGE")
        o.cmd("LOGOUT")
        o.close()
        ok, seen = idle_wait(c, rb"^\* %d EXPUNGE$" % (n + 1))
        check("IDLE is told of another session's expunge: * %d EXPUNGE" % (n + 1), ok, seen)
    r = c.cont(b"DONE\r\n")
    check("DONE ends IDLE: OK", r.status == "OK", r)
    c.cmd("LOGOUT")
    c.close()


def phase_pop3(a):
    import poplib
    c = login(a)
    r = c.cmd("SELECT INBOX")
    seq = uid_map(c)
    uidvalidity = code_num(r.untagged, r, "UIDVALIDITY")
    check("pop3: the INBOX has at least three messages", len(seq) >= 3, seq)
    if len(seq) < 3:
        return

    def pop():
        p = poplib.POP3_SSL(a.host, a.pop3s, context=tls_ctx(), timeout=TIMEOUT)
        p.user(a.user)
        p.pass_(a.password)
        return p
    p = pop()
    _, lines, _ = p.uidl()
    pu = [x.split()[1].decode() for x in lines]
    check("POP3 UIDL and IMAP agree on the messages", len(pu) == len(seq), (pu, seq))
    # [IN-USE]: a second POP3 session is refused while IMAP goes on.
    try:
        pop().quit()
        check("a second POP3 session: -ERR [IN-USE]", False, "it logged in")
    except poplib.error_proto as e:
        check("a second POP3 session: -ERR [IN-USE]", b"[IN-USE]" in e.args[0], e)
    r = c.cmd("FETCH 1 (FLAGS)")
    check("IMAP goes on while POP3 holds the maildrop", r.status == "OK" and fetches(r.untagged), r)
    p.dele(1)
    p.quit()
    ok, seen = False, []
    end = time.monotonic() + IDLE_WAIT
    while time.monotonic() < end and not ok:
        r = c.cmd("NOOP")
        seen += r.untagged
        ok = untagged_num(r.untagged, "EXPUNGE") == 1
        if not ok:
            time.sleep(0.2)
    check("POP3 DELE+QUIT is seen in IMAP: * 1 EXPUNGE", ok, seen)
    now = uid_map(c)
    check("the UID POP3 deleted is gone from IMAP", now == seq[1:], (now, seq))
    r = c.cmd("UID STORE %d +FLAGS (\\Deleted)" % now[0])
    r = c.cmd("UID EXPUNGE %d" % now[0])
    check("IMAP UID EXPUNGE: * 1 EXPUNGE", r.status == "OK" and untagged_num(r.untagged, "EXPUNGE") == 1, r)
    p = pop()
    count, _ = p.stat()
    _, lines, _ = p.uidl()
    pu2 = [x.split()[1].decode() for x in lines]
    p.quit()
    check("IMAP EXPUNGE is seen in POP3's next session: STAT", count == len(seq) - 2, (count, len(seq)))
    if a.profile == "kurier":
        want = ["%d.%d" % (uidvalidity, u) for u in seq[2:]]
        check("POP3's UIDL names the UIDs IMAP still has (UIDVALIDITY.UID)", pu2 == want, (pu2, want))
    c.cmd("LOGOUT")
    c.close()


def phase_lockout(a):
    src = "127.0.0.3"
    for i in range(a.fail_limit):
        c = Imap(a.imaps, tls=True, src=src, host=a.host)
        r = c.cmd("LOGIN %s %s" % (quote(a.user), quote("wrong-%d" % i)))
        c.close()
        if r.status != "NO":
            check("wrong password %d: NO" % (i + 1), False, r)
    c = Imap(a.imaps, tls=True, src=src, host=a.host)
    r = c.cmd("LOGIN %s %s" % (quote(a.user), quote(a.password)))
    check("after auth_fail_limit failures the address is locked out, right password or not", r.status == "NO", r)
    r = c.cmd("AUTHENTICATE PLAIN " + plain(a.user, a.password))
    check("AUTHENTICATE too", r.status == "NO", r)
    c.close()
    try:
        c = login(a)
        check("another address still logs in", True)
        c.close()
    except RuntimeError as e:
        check("another address still logs in", False, e)


def phase_timeout(a):
    c = login(a, src="127.0.0.7")
    c.cmd("SELECT INBOX")
    c.s.settimeout(a.idle_wait)
    try:
        got = c.read()
    except (socket.timeout, EOFError) as e:
        got = str(e).encode()
    check("an idle session is logged out ([mailbox] imap_timeout): * BYE", got.startswith(b"* BYE"), got)
    check("and closed", c.closed())
    # IDLE is not exempt: an IDLE session is timed out too.
    c = login(a, src="127.0.0.7")
    c.cmd("SELECT INBOX")
    r = c.cmd("IDLE")
    ok, seen = idle_wait(c, rb"^\* BYE", wait=a.idle_wait)
    check("an IDLE session is logged out at imap_timeout too", ok, seen)
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["seed", "main", "hostile", "idle", "pop3", "lockout", "timeout"])
    ap.add_argument("--host", default=HOST)
    ap.add_argument("--imap", type=int, required=True)
    ap.add_argument("--imaps", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--other-user")
    ap.add_argument("--other-password")
    ap.add_argument("--files", nargs="*", default=[])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="kurier")
    ap.add_argument("--inject", help="shell command storing one message in the user's INBOX")
    ap.add_argument("--append-port", type=int, help="implicit-TLS IMAP port to APPEND through (another node)")
    ap.add_argument("--label", help="what --inject or --append-port is, for the check's name")
    ap.add_argument("--pop3s", type=int)
    ap.add_argument("--fail-limit", type=int, default=5)
    ap.add_argument("--idle-wait", type=float, default=30)
    ap.add_argument("--max-errors", type=int, default=0, help="[policy] max_errors, to check (0: skip)")
    a = ap.parse_args()
    phases = {"seed": phase_seed, "main": phase_main, "hostile": phase_hostile, "idle": phase_idle,
              "pop3": phase_pop3, "lockout": phase_lockout, "timeout": phase_timeout}
    try:
        phases[a.phase](a)
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, IndexError, TypeError, subprocess.SubprocessError) as e:
        check("%s phase ran to its end" % a.phase, False, "%s: %s" % (type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
