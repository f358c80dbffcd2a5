#!/usr/bin/python3
"""sink.py - a sink MX for kurier's delivery tests, and the tool that reads
what it received.

    sink.py serve --spool DIR [--ready FILE] [--log FILE]
                  --listen IP:PORT [BEHAVIOUR...] [--listen IP:PORT [BEHAVIOUR...]]...
    sink.py query DIR [FILTER...] [--count | --field NAME | --data |
                  --rcpt-counts | --header NAME | --summary]

serve: one process listens on every --listen address (kurier uses one
mx_port for all MX hosts, so tests bind 127.0.0.2, 127.0.0.3, ... on the
same port).  The options after a --listen apply to that address only:

    --tempfail-first N    451 to the first N transactions, then accept
    --tempfail-at data|rcpt   where the 451 comes: after the data (default)
                          or to every RCPT of those transactions
    --reject-rcpt ADDR    550 5.1.1 to RCPT TO:<ADDR> (repeatable)
    --drop-after-data     the first time only: receive the data, then close
                          the connection without a reply
    --delay-data SECS     answer the data only after SECS seconds
    --greet CODE          refuse every session with CODE in the greeting
    --starttls CERT KEY   offer STARTTLS with this certificate
    --auth USER:PASS      require AUTH PLAIN or LOGIN, offered over TLS only
                          (needs --starttls): a smarthost
    --no-8bitmime         do not offer 8BITMIME; MAIL with BODY=8BITMIME
                          gets 555 5.5.4
    --throttle-first N REPLY
                          the first N transactions get REPLY (e.g. "421
                          4.7.28 ...") to MAIL; a 421 then closes the
                          connection.  Recorded with status "throttled"
    --reply-rcpt ADDR REPLY   REPLY (e.g. "450 4.2.1 ...") to RCPT TO:<ADDR>
                          (repeatable)
    --stats FILE          (global) JSON counters, rewritten at every
                          connection change: per listener and in all,
                          connections accepted, open now and the most
                          open at once

Every transaction is written to the spool as one JSON file (NNNNNNN.json,
written to a temp name and renamed, so a reader never sees half a record)
before the reply to the data is sent; so when kurier records a delivery,
the sink's record of it is already there.  A record has: seq, time,
listen, peer, conn (connection number on that listener), ehlo, tls,
tls_version, auth_user, mail_from, mail_options, rcpt (the accepted
recipients), rcpt_refused ([{addr, reply}]), status, reply, size, sha256
and data_b64 (the exact bytes after dot-unstuffing, without the final
".").  status is one of:

    accepted    the data got 250
    tempfailed  451 to the data, or to the RCPTs (--tempfail-at rcpt)
    dropped     the data arrived and the connection was closed unanswered
    aborted     MAIL without data (all RCPTs refused, RSET, QUIT, EOF)
    refused     a session refused in the greeting (--greet); no envelope

When every address is bound, the PID is written to --ready.  SIGTERM
and SIGINT stop the sink.

query: reads a spool.  Filters (all must hold): --listen IP[:PORT],
--status S[,S...], --rcpt ADDR (an accepted recipient, case-insensitive),
--rcpt-domain D, --contains TEXT (in the data), --mail-from ADDR.  Output:
--count (the default) prints the number of matching records; --field NAME
one line per record (lists comma-separated); --data the data of the one
matching record (exit 1 unless exactly one matches); --rcpt-counts
"COUNT ADDR" per accepted recipient over the matching records; --header
NAME the unfolded value of every NAME header field in each record's data,
one per line; --summary one readable line per record, for diagnostics.
"""

import asyncio
import base64
import hashlib
import json
import logging
import os
import signal
import ssl
import sys
import time

TIMEOUT = 120  # seconds of client silence before the sink hangs up


def die(msg):
    print("sink.py: %s" % msg, file=sys.stderr)
    sys.exit(2)


# --- serve ------------------------------------------------------------------------


class Listener:
    """One listen address, its behaviour, and its counters."""

    def __init__(self, addr):
        host, sep, port = addr.rpartition(":")
        if not sep or not port.isdigit():
            die("--listen wants IP:PORT, not %r" % addr)
        self.host = host.strip("[]")
        self.port = int(port)
        self.addr = "%s:%d" % (self.host, self.port)
        self.tempfail_first = 0
        self.tempfail_at = "data"
        self.reject = set()
        self.drop_after_data = False
        self.delay_data = 0.0
        self.greet = None
        self.cert = None
        self.key = None
        self.auth = None
        self.no_8bitmime = False
        self.throttle_first = 0
        self.throttle_reply = None
        self.throttled = 0
        self.replies = {}
        self.open = 0
        self.max_open = 0
        self.conns = 0
        self.mails = 0   # transactions started (MAIL accepted)
        self.datas = 0   # data phases completed
        self.dropped = False


class Spool:
    """Numbered, atomically written transaction records."""

    def __init__(self, path):
        self.path = path
        self.seq = 0
        os.makedirs(path, exist_ok=True)

    def write(self, rec, data=None):
        self.seq += 1
        rec["seq"] = self.seq
        rec["time"] = time.time()
        if data is not None:
            rec["size"] = len(data)
            rec["sha256"] = hashlib.sha256(data).hexdigest()
            rec["data_b64"] = base64.b64encode(data).decode("ascii")
        name = "%07d.json" % self.seq
        tmp = os.path.join(self.path, ".tmp-" + name)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(rec, f, ensure_ascii=True)
        os.replace(tmp, os.path.join(self.path, name))
        log("%s %s %s from=<%s> rcpt=%d refused=%d tls=%s auth=%s %s" % (
            name, rec.get("listen"), rec.get("status"), rec.get("mail_from") or "",
            len(rec.get("rcpt") or []), len(rec.get("rcpt_refused") or []),
            rec.get("tls"), rec.get("auth_user"), rec.get("reply") or ""))


LOGF = sys.stderr


def log(msg):
    print("%.3f %s" % (time.time(), msg), file=LOGF, flush=True)


def peer_str(peer):
    if isinstance(peer, tuple) and len(peer) >= 2:
        return "%s:%s" % (peer[0], peer[1])
    return str(peer)


def serve(argv):
    global LOGF
    spool_dir = None
    ready = None
    stats_file = None
    listeners = []
    i = 0

    def arg(n=1):
        nonlocal i
        if i + n >= len(argv):
            die("%s needs %d value(s)" % (argv[i], n))
        vals = argv[i + 1:i + 1 + n]
        i += n
        return vals if n > 1 else vals[0]

    def cur():
        if not listeners:
            die("%s must follow a --listen" % argv[i])
        return listeners[-1]

    while i < len(argv):
        a = argv[i]
        if a == "--spool":
            spool_dir = arg()
        elif a == "--ready":
            ready = arg()
        elif a == "--log":
            LOGF = open(arg(), "a", encoding="utf-8")
        elif a == "--listen":
            listeners.append(Listener(arg()))
        elif a == "--tempfail-first":
            v = arg()
            if not v.isdigit():
                die("--tempfail-first wants a count")
            cur().tempfail_first = int(v)
        elif a == "--tempfail-at":
            v = arg()
            if v not in ("data", "rcpt"):
                die("--tempfail-at wants data or rcpt")
            cur().tempfail_at = v
        elif a == "--reject-rcpt":
            cur().reject.add(arg().lower())
        elif a == "--drop-after-data":
            cur().drop_after_data = True
        elif a == "--delay-data":
            v = arg()
            try:
                cur().delay_data = float(v)
            except ValueError:
                die("--delay-data wants seconds")
        elif a == "--greet":
            v = arg()
            if not (len(v) == 3 and v.isdigit()):
                die("--greet wants a reply code such as 421")
            cur().greet = v
        elif a == "--starttls":
            cur().cert, cur().key = arg(2)
        elif a == "--auth":
            v = arg()
            if ":" not in v:
                die("--auth wants USER:PASS")
            cur().auth = tuple(v.split(":", 1))
        elif a == "--no-8bitmime":
            cur().no_8bitmime = True
        elif a == "--throttle-first":
            n, reply = arg(2)
            if not n.isdigit() or not (len(reply) > 4 and reply[:3].isdigit()):
                die("--throttle-first wants a count and a reply such as \"421 4.7.28 slow down\"")
            cur().throttle_first = int(n)
            cur().throttle_reply = reply
        elif a == "--reply-rcpt":
            addr, reply = arg(2)
            if not (len(reply) > 4 and reply[:3].isdigit()):
                die("--reply-rcpt wants an address and a reply such as \"450 4.2.1 busy\"")
            cur().replies[addr.lower()] = reply
        elif a == "--stats":
            stats_file = arg()
        else:
            die("unknown option %r (see the top of sink.py)" % a)
        i += 1
    if spool_dir is None or not listeners:
        die("serve needs --spool DIR and at least one --listen IP:PORT")
    for lst in listeners:
        if lst.auth and not lst.cert:
            die("--auth on %s needs --starttls (AUTH is offered over TLS only)" % lst.addr)

    # Imported here so that "query" works with any python3.
    from aiosmtpd.smtp import SMTP, AuthResult

    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    spool = Spool(spool_dir)
    totals = {"open": 0, "max_open": 0, "conns": 0}

    def write_stats():
        if stats_file is None:
            return
        out = {"all": dict(totals)}
        for lst in listeners:
            out[lst.addr] = {"conns": lst.conns, "open": lst.open, "max_open": lst.max_open}
        tmp = stats_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.replace(tmp, stats_file)

    def conn_change(lst, delta):
        lst.open += delta
        totals["open"] += delta
        if delta > 0:
            totals["conns"] += 1
        lst.max_open = max(lst.max_open, lst.open)
        totals["max_open"] = max(totals["max_open"], totals["open"])
        write_stats()

    class SinkSMTP(SMTP):
        """aiosmtpd's SMTP with one open transaction tracked per connection."""

        def __init__(self, lst, **kw):
            self.lst = lst
            lst.conns += 1
            self.conn_no = lst.conns
            self.txn = None
            self.ehlo_name = None
            self.counted = False
            super().__init__(Handler(), **kw)

        def connection_made(self, transport):
            if not self.counted:
                self.counted = True
                conn_change(self.lst, 1)
            super().connection_made(transport)

        def _getparams(self, params):
            # MAIL FROM:<a> AUTH=<b> (RFC 4954 5) is allowed where AUTH is offered.
            res = super()._getparams(params)
            if res is not None and self.lst.auth:
                res.pop("AUTH", None)
            return res

        def connection_lost(self, error):
            finish_open(self, "connection closed")
            if self.counted:
                self.counted = False
                conn_change(self.lst, -1)
            super().connection_lost(error)

    def tls_info(server):
        if server._tls_protocol is None:
            return False, None
        obj = server.transport.get_extra_info("ssl_object") if server.transport else None
        return True, (obj.version() if obj is not None else None)

    def auth_user(server):
        s = server.session
        if s is None or not s.authenticated:
            return None
        return s.auth_data if isinstance(s.auth_data, str) else str(s.auth_data)

    def new_txn(server, address, options):
        tls, ver = tls_info(server)
        return {
            "listen": server.lst.addr,
            "peer": peer_str(server.session.peer),
            "conn": server.conn_no,
            "ehlo": server.ehlo_name,
            "tls": tls,
            "tls_version": ver,
            "auth_user": auth_user(server),
            "mail_from": address,
            "mail_options": list(options),
            "rcpt": [],
            "rcpt_refused": [],
            "status": None,
            "reply": None,
            "_tempfail": False,
        }

    def finish(server, status, reply, data=None):
        txn = server.txn
        server.txn = None
        if txn is None:
            return
        txn.pop("_tempfail", None)
        txn["status"] = status
        txn["reply"] = reply
        spool.write(txn, data)

    def finish_open(server, why):
        """A transaction that ends without data: aborted (or tempfailed at RCPT)."""
        if server.txn is not None:
            status = "tempfailed" if server.txn["_tempfail"] else "aborted"
            finish(server, status, "(no data: %s)" % why)

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            finish_open(server, "EHLO")
            session.host_name = hostname
            server.ehlo_name = hostname
            if server.lst.no_8bitmime:
                responses = [r for r in responses if r[4:].upper() != "8BITMIME"]
            return responses

        async def handle_HELO(self, server, session, envelope, hostname):
            finish_open(server, "HELO")
            session.host_name = hostname
            server.ehlo_name = hostname
            return "250 %s" % server.hostname

        async def handle_MAIL(self, server, session, envelope, address, options):
            lst = server.lst
            if lst.no_8bitmime and "BODY=8BITMIME" in [o.upper() for o in options]:
                return "555 5.5.4 BODY=8BITMIME was not offered"
            finish_open(server, "MAIL")
            if lst.throttled < lst.throttle_first:
                lst.throttled += 1
                reply = lst.throttle_reply
                txn = new_txn(server, address, options)
                txn["status"] = "throttled"
                txn["reply"] = reply
                txn.pop("_tempfail", None)
                spool.write(txn)
                if reply.startswith("421"):
                    # The reply, then the connection closes (RFC 5321 3.8).
                    loop.call_later(0.05, server.transport.close)
                return reply
            lst.mails += 1
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            server.txn = new_txn(server, address, options)
            server.txn["_mail_no"] = lst.mails
            return "250 2.1.0 Ok"

        async def handle_RCPT(self, server, session, envelope, address, options):
            lst = server.lst
            txn = server.txn
            if address.lower() in lst.reject:
                reply = "550 5.1.1 <%s>: recipient unknown (sink)" % address
                txn["rcpt_refused"].append({"addr": address, "reply": reply})
                return reply
            if address.lower() in lst.replies:
                reply = lst.replies[address.lower()]
                txn["rcpt_refused"].append({"addr": address, "reply": reply})
                return reply
            if lst.tempfail_at == "rcpt" and txn["_mail_no"] <= lst.tempfail_first:
                reply = "451 4.3.0 <%s>: try again later (sink, transaction %d)" % (
                    address, txn["_mail_no"])
                txn["rcpt_refused"].append({"addr": address, "reply": reply})
                txn["_tempfail"] = True
                return reply
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            txn["rcpt"].append(address)
            return "250 2.1.5 Ok"

        async def handle_RSET(self, server, session, envelope):
            finish_open(server, "RSET")
            return "250 2.0.0 Ok"

        async def handle_QUIT(self, server, session, envelope):
            finish_open(server, "QUIT")
            return "221 2.0.0 Bye"

        async def handle_DATA(self, server, session, envelope):
            lst = server.lst
            data = envelope.original_content
            lst.datas += 1
            if server.txn is not None:
                server.txn.pop("_mail_no", None)
            if lst.drop_after_data and not lst.dropped:
                lst.dropped = True
                finish(server, "dropped", "(connection closed after the data, no reply)", data)
                # The original TCP transport, under TLS if there is one.
                tr = server._original_transport or server.transport
                tr.abort()
                # connection_lost() cancels this task: no reply is sent.
                await asyncio.sleep(3600)
            if lst.delay_data > 0:
                # A slow server: the reply to the data comes late.  A client
                # that gives up meanwhile cancels this task (status aborted).
                log("%s delaying the data reply %.1fs" % (lst.addr, lst.delay_data))
                await asyncio.sleep(lst.delay_data)
            if lst.tempfail_at == "data" and lst.datas <= lst.tempfail_first:
                reply = "451 4.3.0 Try again later (sink, data %d of %d refused)" % (
                    lst.datas, lst.tempfail_first)
                finish(server, "tempfailed", reply, data)
                return reply
            reply = "250 2.0.0 Ok: sink seq %d" % (spool.seq + 1)
            finish(server, "accepted", reply, data)
            return reply

    class Refuser(asyncio.Protocol):
        """A listener that refuses every session in its greeting."""

        def __init__(self, lst):
            self.lst = lst

        def connection_made(self, transport):
            lst = self.lst
            lst.conns += 1
            reply = "%s 4.3.2 sink-%s.test refuses service (test)" % (lst.greet, lst.host)
            if lst.greet.startswith("5"):
                reply = "%s 5.3.2 sink-%s.test refuses service (test)" % (lst.greet, lst.host)
            spool.write({
                "listen": lst.addr,
                "peer": peer_str(transport.get_extra_info("peername")),
                "conn": lst.conns, "ehlo": None, "tls": False, "tls_version": None,
                "auth_user": None, "mail_from": None, "mail_options": [],
                "rcpt": [], "rcpt_refused": [], "status": "refused", "reply": reply,
            })
            transport.write(reply.encode() + b"\r\n")
            transport.close()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def factory(lst):
        ctx = None
        if lst.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(lst.cert, lst.key)
        authenticator = None
        if lst.auth:
            want_user, want_pass = lst.auth

            def authenticator(server, session, envelope, mechanism, data):
                user = data.login.decode("utf-8", "replace")
                ok = user == want_user and data.password.decode("utf-8", "replace") == want_pass
                if not ok:
                    return AuthResult(success=False, handled=False,
                                      message="535 5.7.8 Authentication credentials invalid (sink)")
                return AuthResult(success=True, auth_data=user)

        def make():
            if lst.greet:
                return Refuser(lst)
            return SinkSMTP(
                lst,
                hostname="sink-%s.test" % lst.host,
                ident="kurier test sink",
                decode_data=False,
                enable_SMTPUTF8=True,
                data_size_limit=64 * 1024 * 1024,
                tls_context=ctx,
                require_starttls=False,
                auth_required=bool(lst.auth),
                auth_require_tls=True,
                authenticator=authenticator,
                timeout=TIMEOUT,
                loop=loop,
            )
        return make

    servers = []
    for lst in listeners:
        try:
            srv = loop.run_until_complete(loop.create_server(
                factory(lst), host=lst.host, port=lst.port, reuse_address=True,
                backlog=512))
        except OSError as e:
            die("cannot listen on %s: %s" % (lst.addr, e))
        servers.append(srv)
        log("listening on %s%s" % (lst.addr, describe(lst)))

    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    if ready:
        tmp = ready + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(tmp, ready)
    loop.run_until_complete(stop)
    for srv in servers:
        srv.close()
    log("stopped")
    return 0


def describe(lst):
    parts = []
    if lst.greet:
        parts.append("greet %s" % lst.greet)
    if lst.tempfail_first:
        parts.append("tempfail first %d at %s" % (lst.tempfail_first, lst.tempfail_at))
    for r in sorted(lst.reject):
        parts.append("reject %s" % r)
    if lst.drop_after_data:
        parts.append("drop after data once")
    if lst.cert:
        parts.append("starttls")
    if lst.auth:
        parts.append("auth %s" % lst.auth[0])
    if lst.no_8bitmime:
        parts.append("no 8bitmime")
    if lst.throttle_first:
        parts.append("throttle first %d: %s" % (lst.throttle_first, lst.throttle_reply))
    for a, r in sorted(lst.replies.items()):
        parts.append("%s -> %s" % (a, r))
    return (": " + ", ".join(parts)) if parts else ": accept"


# --- query ------------------------------------------------------------------------


def load(spool_dir):
    recs = []
    try:
        names = sorted(n for n in os.listdir(spool_dir)
                       if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return recs
    for n in names:
        with open(os.path.join(spool_dir, n), encoding="utf-8") as f:
            recs.append(json.load(f))
    return recs


def data_of(rec):
    return base64.b64decode(rec["data_b64"]) if rec.get("data_b64") is not None else None


def header_values(data, name):
    """Unfolded values of every header field NAME in the message's header."""
    head = data.split(b"\r\n\r\n", 1)[0]
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    out = []
    want = name.lower().encode()
    for f in fields:
        k, sep, v = f.partition(b":")
        if sep and k.strip().lower() == want:
            out.append(v.strip().decode("utf-8", "replace"))
    return out


def query(argv):
    if not argv:
        die("query needs a spool directory")
    spool_dir = argv[0]
    flt = {}
    out = "count"
    out_arg = None
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("--listen", "--status", "--rcpt", "--rcpt-domain", "--contains", "--mail-from"):
            if i + 1 >= len(argv):
                die("%s needs a value" % a)
            flt[a] = argv[i + 1]
            i += 2
        elif a in ("--count", "--data", "--rcpt-counts", "--summary"):
            out = a[2:]
            i += 1
        elif a in ("--field", "--header"):
            if i + 1 >= len(argv):
                die("%s needs a value" % a)
            out, out_arg = a[2:], argv[i + 1]
            i += 2
        else:
            die("unknown query option %r" % a)

    def match(r):
        if "--listen" in flt:
            want = flt["--listen"]
            if r.get("listen") != want and not (r.get("listen") or "").startswith(want + ":"):
                return False
        if "--status" in flt and r.get("status") not in flt["--status"].split(","):
            return False
        rcpts = [x.lower() for x in r.get("rcpt") or []]
        if "--rcpt" in flt and flt["--rcpt"].lower() not in rcpts:
            return False
        if "--rcpt-domain" in flt:
            d = "@" + flt["--rcpt-domain"].lower()
            if not any(x.endswith(d) for x in rcpts):
                return False
        if "--mail-from" in flt and (r.get("mail_from") or "").lower() != flt["--mail-from"].lower():
            return False
        if "--contains" in flt:
            d = data_of(r)
            if d is None or flt["--contains"].encode() not in d:
                return False
        return True

    recs = [r for r in load(spool_dir) if match(r)]
    w = sys.stdout.write
    if out == "count":
        w("%d\n" % len(recs))
    elif out == "field":
        for r in recs:
            v = r.get(out_arg)
            if isinstance(v, list):
                v = ",".join(x["addr"] if isinstance(x, dict) else str(x) for x in v)
            elif isinstance(v, bool):
                v = "true" if v else "false"
            elif v is None:
                v = "-"
            w("%s\n" % v)
    elif out == "data":
        if len(recs) != 1:
            print("sink.py: --data wants exactly one matching record, %d match" % len(recs),
                  file=sys.stderr)
            return 1
        d = data_of(recs[0])
        if d is None:
            print("sink.py: record %d has no data" % recs[0]["seq"], file=sys.stderr)
            return 1
        sys.stdout.flush()
        sys.stdout.buffer.write(d)
    elif out == "rcpt-counts":
        counts = {}
        for r in recs:
            for x in r.get("rcpt") or []:
                counts[x.lower()] = counts.get(x.lower(), 0) + 1
        for x in sorted(counts):
            w("%d %s\n" % (counts[x], x))
    elif out == "header":
        for r in recs:
            d = data_of(r)
            for v in header_values(d, out_arg) if d is not None else []:
                w("%s\n" % v)
    elif out == "summary":
        for r in recs:
            rc = r.get("rcpt") or []
            w("#%s %s %s conn=%s from=<%s> rcpt=%d%s refused=%s tls=%s auth=%s ehlo=%s size=%s reply=%s\n" % (
                r.get("seq"), r.get("listen"), r.get("status"), r.get("conn"),
                r.get("mail_from") or "", len(rc), (" [%s]" % ",".join(rc[:3]) +
                                                   ("..." if len(rc) > 3 else "")) if rc else "",
                ",".join(x["addr"] for x in r.get("rcpt_refused") or []) or "-",
                r.get("tls"), r.get("auth_user"), r.get("ehlo"), r.get("size"), r.get("reply")))
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "query"):
        die("usage: sink.py serve ... | sink.py query DIR ... (see the top of sink.py)")
    if sys.argv[1] == "serve":
        return serve(sys.argv[2:])
    return query(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
