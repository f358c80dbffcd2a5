#!/usr/bin/python3
"""dkim_verify.py - verify every DKIM-Signature of a message, independently
of libopendkim, with dkimpy (Debian python3-dkim; python3-nacl for
ed25519-sha256).

    dkim_verify.py [--expect N] RECORDS MESSAGE

RECORDS holds the zone-file lines kurier printed for its keys
("s1._domainkey.example.com. IN TXT ( "v=DKIM1; ..." "..." )"), one per
line; the DNS lookups of the verifier are answered from them only (a
name not there is NXDOMAIN), so no network is used.  MESSAGE is the
signed message, read as bytes.

Prints one line per signature, top first:
    pass d=example.com s=s1 a=rsa-sha256
    fail d=example.com s=e1 a=ed25519-sha256 (reason)
Exit status: 0 when every signature passes and there is at least one
(exactly N with --expect), 1 otherwise, 2 on usage errors.
"""

import logging
import re
import sys

import dkim

RECORD_RE = re.compile(r'^\s*(\S+)\s+(?:\d+\s+)?(?:IN\s+)?TXT\s+\(?(.*?)\)?\s*$')
STRING_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')


def load_records(path):
    """name (lower-case, no trailing dot) -> TXT text (strings joined)."""
    records = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            m = RECORD_RE.match(line)
            if not m:
                raise SystemExit("dkim_verify: not a TXT record line: %r" % line)
            name = m.group(1).rstrip(".").lower()
            text = "".join(s.replace('\\"', '"').replace("\\\\", "\\")
                           for s in STRING_RE.findall(m.group(2)))
            records[name] = text.encode("ascii")
    return records


class Collect(logging.Handler):
    """Keeps dkimpy's log messages: they say why a signature failed."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        if record.levelno >= logging.INFO:
            self.lines.append(record.getMessage())


def main(argv):
    expect = None
    args = argv[1:]
    if len(args) >= 2 and args[0] == "--expect":
        expect = int(args[1])
        args = args[2:]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    records = load_records(args[0])
    with open(args[1], "rb") as f:
        message = f.read()

    def dnsfunc(name, timeout=5):
        key = name.decode("ascii", "replace").rstrip(".").lower()
        return records.get(key)

    try:
        headers, _ = dkim.rfc822_parse(message)
    except dkim.DKIMException as e:
        print("fail: cannot parse the message (%s)" % e)
        return 1
    sigs = [v for k, v in headers if k.lower() == b"dkim-signature"]
    if not sigs:
        print("fail: no DKIM-Signature")
        return 1
    ok = expect is None or len(sigs) == expect
    if not ok:
        print("fail: %d signatures, want %d" % (len(sigs), expect))
    for idx, value in enumerate(sigs):
        try:
            tags = dkim.parse_tag_value(value)
            label = "d=%s s=%s a=%s" % (tags[b"d"].decode(), tags[b"s"].decode(),
                                        tags[b"a"].decode())
        except Exception as e:  # a signature we cannot even read fails
            print("fail signature %d: unreadable (%s)" % (idx, e))
            ok = False
            continue
        log = Collect()
        logger = logging.getLogger("dkim_verify.%d" % idx)
        logger.addHandler(log)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        try:
            d = dkim.DKIM(message, logger=logger)
            good = d.verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            good = False
            log.lines.append(str(e))
        if good:
            print("pass %s" % label)
        else:
            reason = log.lines[-1] if log.lines else "signature mismatch"
            print("fail %s (%s)" % (label, reason))
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
