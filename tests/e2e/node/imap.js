// imap.js - read the first report of a user's INBOX with imapflow, over
// implicit TLS or STARTTLS (for tests/e2e/imap.sh): prints one JSON
// object with the mailbox's EXISTS and UIDVALIDITY, whether the
// connection is TLS, and the first message's UID, flags, envelope
// subject and whether its source equals the file given (the stored
// report, CRLF line ends).
//
// usage: node imap.js tls|starttls PORT USER PASSWORD [FILE]
'use strict';
const fs = require('fs');
const { ImapFlow } = require('imapflow');

function crlf(buf) {
	let s = buf.toString('latin1').replace(/\r\n/g, '\n').replace(/\n/g, '\r\n');
	if (!s.endsWith('\r\n'))
		s += '\r\n';
	return Buffer.from(s, 'latin1');
}

async function main() {
	const [mode, port, user, password, file] = process.argv.slice(2);
	const client = new ImapFlow({
		host: '127.0.0.1',
		port: Number(port),
		secure: mode === 'tls',
		doSTARTTLS: mode === 'starttls' ? true : undefined,
		auth: { user, pass: password },
		tls: { rejectUnauthorized: false },
		logger: false,
		connectionTimeout: 20000,
		greetingTimeout: 20000,
		socketTimeout: 20000,
	});
	await client.connect();
	const lock = await client.getMailboxLock('INBOX');
	const out = {};
	try {
		out.exists = client.mailbox.exists;
		out.uidValidity = String(client.mailbox.uidValidity);
		out.secure = client.secureConnection;
		const msg = await client.fetchOne('1', { uid: true, flags: true, envelope: true, source: true });
		out.uid = msg.uid;
		out.flags = [...msg.flags];
		out.subject = msg.envelope.subject;
		if (file)
			out.sourceEqual = Buffer.compare(msg.source, crlf(fs.readFileSync(file))) === 0;
	} finally {
		lock.release();
	}
	await client.logout();
	process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
	process.stderr.write(`imap.js: ${e.message}\n`);
	process.exit(1);
});
