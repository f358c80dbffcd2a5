#!/usr/bin/env node
// submit.js - submit one message to kurier with nodemailer, for
// tests/e2e/submission.sh.
//
//   node submit.js PORT starttls|implicit USER PASSWORD FROM TO SUBJECT
//
// Prints the server's final reply ("250 2.0.0 Ok: queued as ID") and the
// TLS protocol in use; exits 1 on any error.  The server's certificate is
// self-signed, so it is not verified; TLS itself is required.
'use strict';

const nodemailer = require('nodemailer');

const [port, mode, user, pass, from, to, subject] = process.argv.slice(2);
if (!subject || (mode !== 'starttls' && mode !== 'implicit')) {
	console.error('usage: submit.js PORT starttls|implicit USER PASSWORD FROM TO SUBJECT');
	process.exit(2);
}

const transport = nodemailer.createTransport({
	host: '127.0.0.1',
	port: Number(port),
	secure: mode === 'implicit',
	requireTLS: mode === 'starttls',
	auth: { user, pass },
	tls: { rejectUnauthorized: false },
	connectionTimeout: 5000,
	greetingTimeout: 5000,
	socketTimeout: 10000,
	name: 'node.client.test',
});

transport.sendMail({
	from,
	to,
	subject,
	text: `sent by nodemailer ${mode}\nmarker ${subject}\n`,
}).then((info) => {
	console.log(`response ${info.response}`);
	console.log(`accepted ${info.accepted.join(',')}`);
	process.exit(0);
}, (err) => {
	console.error(`error ${err.code || ''} ${err.response || err.message}`);
	process.exit(1);
});
