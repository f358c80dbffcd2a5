// pop3.js - read a maildrop with node-pop3 over implicit TLS (for
// tests/e2e/pop3.sh): prints one JSON object with STAT, UIDL and the
// first message as RETR returned it.
//
// usage: node pop3.js PORT USER PASSWORD
'use strict';
const Pop3Command = require('node-pop3');

async function main() {
	const [port, user, password] = process.argv.slice(2);
	const pop3 = new Pop3Command({
		host: '127.0.0.1',
		port: Number(port),
		user,
		password,
		tls: true,
		timeout: 20000,
		tlsOptions: { rejectUnauthorized: false },
	});
	const stat = await pop3.STAT();
	const uidl = await pop3.UIDL();
	const first = await pop3.RETR(1);
	await pop3.QUIT();
	process.stdout.write(JSON.stringify({ stat, uidl, first }) + '\n');
}

main().catch((e) => {
	process.stderr.write(`pop3.js: ${e.message}\n`);
	process.exit(1);
});
