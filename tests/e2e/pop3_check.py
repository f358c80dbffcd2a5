#!/usr/bin/env python3
"""pop3_check - the POP3 scenarios of tests/e2e/pop3.sh, with Python's
poplib (STLS and implicit TLS) and raw sockets for what poplib will not
send.  Prints one line per check, "ok NAME" or "not ok NAME: DETAIL";
exits 0 when it could run them all (failures are in the lines).

usage: pop3_check.py PHASE --pop3 PORT --pop3s PORT --user U --password P
       [--other-user U --other-password P] [--files F...] [--ctl CMD]

PHASE: main (everything but the lock-out and the limits), lockout,
limits, idle.
"""
import argparse
import base64
import os
import poplib
import re
import socket
import ssl
import subprocess
import sys
import time

HOST = "127.0.0.1"
TIMEOUT = 20

results = []


def check(name, cond, detail=""):
    line = ("ok " if cond else "not ok ") + name
    if not cond and detail:
        line += ": " + str(detail)[:600].replace("\n", "\\n")
    print(line, flush=True)
    results.append(cond)
    return cond


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


class Raw:
    """A line-level POP3 connection, plaintext or TLS, with its own source address."""

    def __init__(self, port, tls=False, src="127.0.0.1"):
        s = socket.create_connection((HOST, port), timeout=TIMEOUT, source_address=(src, 0))
        if tls:
            s = tls_ctx().wrap_socket(s)
        self.s = s
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed; buffered %r" % self.buf[:200])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.line()

    def multi(self):
        lines = []
        while True:
            ln = self.line()
            if ln == ".":
                return lines
            lines.append(ln)

    def starttls(self):
        self.s = tls_ctx().wrap_socket(self.s)

    def closed(self):
        """True when the server closed the connection (EOF)."""
        try:
            self.s.settimeout(TIMEOUT)
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def login(port, user, password, tls="stls"):
    if tls == "ssl":
        p = poplib.POP3_SSL(HOST, port, context=tls_ctx(), timeout=TIMEOUT)
    else:
        p = poplib.POP3(HOST, port, timeout=TIMEOUT)
        p.stls(tls_ctx())
    p.user(user)
    p.pass_(password)
    return p


def err_text(e):
    return e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)


def phase_main(a):
    files = [crlf(open(f, "rb").read()) for f in a.files]

    # --- before login ------------------------------------------------------------
    r = Raw(a.pop3)
    greet = r.line()
    check("greeting is +OK", greet.startswith("+OK "), greet)
    r.send(b"CAPA\r\n")
    first = r.line()
    capa = r.multi()
    check("CAPA before TLS offers STLS", first.startswith("+OK") and "STLS" in capa, capa)
    check("CAPA before TLS offers no USER and no SASL", "USER" not in capa and
          not any(c.startswith("SASL") for c in capa), capa)
    for c in ("TOP", "UIDL", "RESP-CODES", "PIPELINING"):
        check("CAPA lists " + c, c in capa, capa)
    got = r.cmd("USER %s" % a.user)
    check("USER before STLS: -ERR [AUTH]", got.startswith("-ERR [AUTH]"), got)
    got = r.cmd("PASS %s" % a.password)
    check("PASS before STLS: -ERR [AUTH]", got.startswith("-ERR [AUTH]"), got)
    got = r.cmd("AUTH PLAIN " + base64.b64encode(b"\0%s\0%s" % (a.user.encode(), a.password.encode())).decode())
    check("AUTH PLAIN before STLS: -ERR [AUTH]", got.startswith("-ERR [AUTH]"), got)
    for c in ("STAT", "LIST", "UIDL", "RETR 1", "DELE 1", "TOP 1 0", "RSET", "NOOP", "LIST 1"):
        got = r.cmd(c)
        check("%s before login: -ERR" % c.split()[0], got.startswith("-ERR Log in first"), got)
    # Each of those counted as an error ([policy] max_errors): go on in a new session.
    r.close()
    r = Raw(a.pop3)
    r.line()
    got = r.cmd("APOP %s 0123456789abcdef0123456789abcdef" % a.user)
    check("APOP: -ERR not offered", got.startswith("-ERR APOP is not offered"), got)
    got = r.cmd("XYZZY")
    check("unknown command: -ERR", got == "-ERR unknown command", got)
    # STLS command injection: what was pipelined after STLS in plaintext is dropped.
    r.send(b"STLS\r\nCAPA\r\n")
    got = r.line()
    check("STLS: +OK", got.startswith("+OK"), got)
    r.buf = b""
    r.starttls()
    got = r.cmd("QUIT")
    check("STLS injection: the CAPA sent in plaintext after STLS is not answered", got == "+OK Bye", got)
    r.close()

    # --- hostile input -----------------------------------------------------------
    r = Raw(a.pop3)
    r.line()
    r.send(b"A" * (1024 * 1024) + b"\r\n")
    got = r.line()
    check("1 MB command line: -ERR Line too long", got == "-ERR Line too long", got)
    got = r.cmd("NOOP")
    check("after the long line the session goes on", got.startswith("-ERR Log in first"), got)
    r.send(b"NO\0OP\r\n")
    got = r.line()
    check("NUL byte: -ERR", got == "-ERR NUL byte in command", got)
    r.close()

    # --- a session over STLS -------------------------------------------------------
    try:
        p = login(a.pop3, a.user, a.password)
    except poplib.error_proto as e:
        check("login over STLS", False, err_text(e))
        return
    check("login over STLS", True)
    count, size = p.stat()
    check("STAT counts the stored messages", count == len(files), (count, len(files)))
    check("STAT adds their sizes", size == sum(len(f) for f in files), (size, sum(len(f) for f in files)))
    resp, lines, _ = p.list()
    sizes = [int(x.split()[1]) for x in lines]
    check("LIST gives each message's size in octets", sizes == [len(f) for f in files], (sizes, [len(f) for f in files]))
    resp, uidl1, _ = p.uidl()
    uids = [x.split()[1].decode() for x in uidl1]
    check("UIDL: one unique id per message", len(set(uids)) == len(files), uids)
    for i, f in enumerate(files, 1):
        resp, lines, octets = p.retr(i)
        body = b"\r\n".join(lines) + b"\r\n"
        check("RETR %d returns the stored message byte for byte" % i, body == f,
              "got %d bytes, want %d" % (len(body), len(f)))
    resp, lines, _ = p.top(1, 0)
    head = files[0].split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    check("TOP 1 0: the header and the blank line", lines == head + [b""], (lines[:3], len(lines), len(head)))
    resp, lines, _ = p.top(1, 2)
    body = files[0].split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    check("TOP 1 2: and two body lines", lines == head + [b""] + body[:2], len(lines))
    for bad, want in (("RETR 0", "-ERR invalid message number"), ("RETR 4294967296", "-ERR invalid message number"),
                      ("RETR -1", "-ERR invalid message number"), ("RETR 99", "-ERR No such message"),
                      ("TOP 1", "-ERR syntax: TOP msg n"), ("LIST 1 2", "-ERR syntax: LIST [msg]"),
                      ("USER x", "-ERR Already logged in"), ("STLS", "-ERR Already logged in")):
        try:
            got = p._shortcmd(bad).decode()
        except poplib.error_proto as e:
            got = err_text(e)
        check("%s in TRANSACTION: %s" % (bad, want), got == want, got)
    p.dele(1)
    try:
        p.retr(1)
        check("RETR of a message marked deleted: -ERR", False)
    except poplib.error_proto as e:
        check("RETR of a message marked deleted: -ERR", "deleted" in err_text(e), err_text(e))
    count, _ = p.stat()
    check("STAT leaves out the message marked deleted", count == len(files) - 1, count)
    p.rset()
    count, _ = p.stat()
    check("RSET unmarks it", count == len(files), count)

    # One session per maildrop: a second is refused while the first holds it.
    try:
        login(a.pop3s, a.user, a.password, tls="ssl")
        check("a second session of the user: -ERR [IN-USE]", False, "it logged in")
    except poplib.error_proto as e:
        check("a second session of the user: -ERR [IN-USE]", err_text(e).startswith("-ERR [IN-USE]"), err_text(e))
    # Another user is not held back, and sees only their own mail.
    if a.other_user:
        o = login(a.pop3s, a.other_user, a.other_password, tls="ssl")
        ocount, _ = o.stat()
        check("another user logs in meanwhile and sees only their one message", ocount == 1, ocount)
        _, lines, _ = o.retr(1)
        other_mail = b"\r\n".join(lines)
        check("user B gets their own message, not one of user A's",
              b"Subject: for blog only" in other_mail and all(b"for blog only" not in f for f in files),
              other_mail[:200])
        o.quit()
    p.dele(1)
    p.quit()
    check("DELE + QUIT: +OK", True)

    # --- the next session: what QUIT did ---------------------------------------------
    p = login(a.pop3s, a.user, a.password, tls="ssl")
    count, _ = p.stat()
    check("DELE + QUIT expunged the message", count == len(files) - 1, count)
    _, uidl2, _ = p.uidl()
    uids2 = [x.split()[1].decode() for x in uidl2]
    check("UIDL is stable across sessions", uids2 == uids[1:], (uids2, uids[1:]))
    # A client that vanishes without QUIT: nothing deleted, the lock freed.
    p.dele(1)
    p.sock.close()
    ok = False
    for _ in range(100):
        try:
            p = login(a.pop3s, a.user, a.password, tls="ssl")
            ok = True
            break
        except poplib.error_proto as e:
            if "[IN-USE]" not in err_text(e):
                break
            time.sleep(0.1)
    check("a dropped session releases the maildrop lock", ok)
    if ok:
        count, _ = p.stat()
        check("a dropped session deletes nothing (no UPDATE without QUIT)", count == len(files) - 1, count)
        p.quit()

    # The store saw the expunge and the \Seen of what was retrieved.
    if a.ctl:
        out = subprocess.run(a.ctl.split() + ["mailbox", "list", a.user], capture_output=True, text=True)
        rows = [ln for ln in out.stdout.splitlines() if re.match(r"^[0-9]+ +[0-9]{4}-", ln)]
        check("the store lists one message less (what IMAP will see)", len(rows) == len(files) - 1, out.stdout)
        check("retrieved messages are \\Seen in the store", all("\\Seen" in ln for ln in rows), out.stdout)

    # --- SASL PLAIN -----------------------------------------------------------------
    r = Raw(a.pop3s, tls=True)
    r.line()
    r.send(b"CAPA\r\n")
    r.line()
    capa = r.multi()
    check("CAPA over TLS offers USER and SASL PLAIN", "USER" in capa and "SASL PLAIN" in capa, capa)
    got = r.cmd("AUTH PLAIN !!!")
    check("AUTH PLAIN with bad base64: -ERR", got == "-ERR Invalid base64 data", got)
    got = r.cmd("AUTH PLAIN " + base64.b64encode(b"nonul").decode())
    check("AUTH PLAIN malformed: -ERR", got == "-ERR Malformed PLAIN response", got)
    got = r.cmd("AUTH CRAM-MD5")
    check("AUTH with another mechanism: -ERR", got.startswith("-ERR Unrecognized authentication mechanism"), got)
    got = r.cmd("AUTH PLAIN")
    check("AUTH PLAIN without initial response: continuation", got == "+ ", got)
    got = r.cmd("*")
    check("AUTH cancelled with *", got == "-ERR Authentication cancelled", got)
    got = r.cmd("AUTH PLAIN")
    got = r.cmd(base64.b64encode(b"\0%s\0%s" % (a.user.encode(), a.password.encode())).decode())
    check("AUTH PLAIN with a continuation logs in", got.startswith("+OK Logged in"), got)
    got = r.cmd("QUIT")
    check("QUIT after AUTH: signing off", got.startswith("+OK Signing off"), got)
    r.close()
    r = Raw(a.pop3s, tls=True)
    r.line()
    got = r.cmd("AUTH PLAIN " + base64.b64encode(b"\0%s\0%s" % (a.user.encode(), a.password.encode())).decode())
    check("AUTH PLAIN with an initial response (SASL-IR) logs in", got.startswith("+OK Logged in"), got)
    r.cmd("QUIT")
    r.close()
    if a.other_user:
        r = Raw(a.pop3s, tls=True)
        r.line()
        got = r.cmd("AUTH PLAIN " + base64.b64encode(b"%s\0%s\0%s" % (a.user.encode(), a.other_user.encode(), a.other_password.encode())).decode())
        check("AUTH PLAIN acting for another user (authzid): -ERR [AUTH]", got.startswith("-ERR [AUTH]"), got)
        r.close()
    r = Raw(a.pop3s, tls=True)
    r.line()
    r.cmd("USER %s" % a.user)
    got = r.cmd("PASS wrong-password")
    check("a wrong password: -ERR [AUTH]", got == "-ERR [AUTH] Authentication failed", got)
    got = r.cmd("PASS %s" % a.password)
    check("PASS again without USER: -ERR", got == "-ERR Send USER first", got)
    r.close()

    # --- dot-stuffing ------------------------------------------------------------------
    if a.dot_user:
        p = login(a.pop3s, a.dot_user, a.dot_password, tls="ssl")
        _, lines, _ = p.retr(1)
        want = crlf(open(a.dot_file, "rb").read())
        got = b"\r\n".join(lines) + b"\r\n"
        check("RETR of lines starting with '.' is dot-stuffed and unstuffed by the client", got == want, got[:300])
        p.quit()


def phase_pipeline(a):
    """RETR and TOP pipelined (RFC 2449 PIPELINING): answers in order, each byte for byte."""
    files = [crlf(open(f, "rb").read()) for f in a.files]
    r = Raw(a.pop3s, tls=True)
    r.line()
    r.cmd("USER %s" % a.user)
    got = r.cmd("PASS %s" % a.password)
    if not check("pipeline: login", got.startswith("+OK"), got):
        return
    n = len(files)
    cmds = ["RETR %d" % i for i in range(n, 0, -1)] + ["TOP 1 0", "RETR 1", "NOOP", "RETR %d" % (n + 1)]
    r.send("".join(c + "\r\n" for c in cmds).encode())
    for i in range(n, 0, -1):
        first = r.line()
        body = "\r\n".join(r.multi()).encode() + b"\r\n"
        body = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in body.split(b"\r\n"))
        check("pipelined RETR %d: +OK and the message byte for byte" % i,
              first.startswith("+OK") and body == files[i - 1], (first, len(body), len(files[i - 1])))
    first = r.line()
    top = r.multi()
    check("pipelined TOP 1 0 after them: the header", first.startswith("+OK") and top[-1] == "", first)
    first = r.line()
    r.multi()
    check("pipelined RETR 1 again", first.startswith("+OK"), first)
    check("pipelined NOOP answered in order", r.line() == "+OK")
    got = r.line()
    check("pipelined RETR of a message that does not exist: -ERR", got == "-ERR No such message", got)
    r.cmd("RSET")
    r.cmd("QUIT")
    r.close()


def phase_lockout(a):
    """[policy] auth_fail_limit failures lock the address for POP3, also for the right password."""
    src = "127.0.0.3"
    for i in range(a.fail_limit):
        r = Raw(a.pop3s, tls=True, src=src)
        r.line()
        r.cmd("USER %s" % a.user)
        got = r.cmd("PASS wrong-%d" % i)
        r.close()
        if not got.startswith("-ERR [AUTH]"):
            check("wrong password %d: -ERR [AUTH]" % (i + 1), False, got)
    r = Raw(a.pop3s, tls=True, src=src)
    r.line()
    r.cmd("USER %s" % a.user)
    got = r.cmd("PASS %s" % a.password)
    check("after auth_fail_limit failures the address is locked out, right password or not",
          got.startswith("-ERR [SYS/TEMP] Too many failed logins"), got)
    r.close()
    try:
        p = login(a.pop3s, a.user, a.password, tls="ssl")
        p.quit()
        check("another address still logs in", True)
    except poplib.error_proto as e:
        check("another address still logs in", False, err_text(e))


def phase_limits(a):
    conns = []
    got = ""
    try:
        for _ in range(a.per_ip):
            r = Raw(a.pop3, src="127.0.0.4")
            r.line()
            conns.append(r)
        r = Raw(a.pop3, src="127.0.0.4")
        got = r.line()
        r.close()
    except (EOFError, OSError) as e:
        got = str(e)
    check("max_connections_per_ip: the next connection gets -ERR [SYS/TEMP]",
          got.startswith("-ERR [SYS/TEMP] Too many connections from your address"), got)
    r = Raw(a.pop3, src="127.0.0.5")
    got = r.line()
    check("another address is not held back by it", got.startswith("+OK"), got)
    r.close()
    for r in conns:
        r.close()
    # max_errors bad commands end the session.
    r = Raw(a.pop3, src="127.0.0.6")
    r.line()
    got = ""
    try:
        for _ in range(a.max_errors + 2):
            got = r.cmd("BOGUS")
            if got.startswith("-ERR Too many errors"):
                break
    except EOFError as e:
        got = str(e)
    check("[policy] max_errors bad commands: -ERR Too many errors and closed",
          got.startswith("-ERR Too many errors") and r.closed(), got)


def phase_idle(a):
    r = Raw(a.pop3, src="127.0.0.7")
    r.line()
    r.s.settimeout(a.idle_wait)
    try:
        got = r.line()
    except (socket.timeout, EOFError) as e:
        got = str(e)
    check("an idle session is logged out ([mailbox] pop3_timeout)", got.startswith("-ERR Autologout"), got)
    check("and closed", r.closed())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase")
    ap.add_argument("--pop3", type=int, required=True)
    ap.add_argument("--pop3s", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--other-user")
    ap.add_argument("--other-password")
    ap.add_argument("--dot-user")
    ap.add_argument("--dot-password")
    ap.add_argument("--dot-file")
    ap.add_argument("--files", nargs="*", default=[])
    ap.add_argument("--ctl")
    ap.add_argument("--fail-limit", type=int, default=3)
    ap.add_argument("--per-ip", type=int, default=5)
    ap.add_argument("--max-errors", type=int, default=20)
    ap.add_argument("--idle-wait", type=float, default=30)
    a = ap.parse_args()
    {"main": phase_main, "pipeline": phase_pipeline, "lockout": phase_lockout, "limits": phase_limits, "idle": phase_idle}[a.phase](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
