'use strict';
// Nodemailer load client for the smtpkit benchmarks.
//
// Usage: node send.js '<json options>' < message.eml
// Options: host, port, count, recipients (array), durationCap (s), connections, and
// optionally structured ({from, to, subject, text}: Nodemailer builds the MIME message for
// every send, its equivalent of passing an EmailMessage) instead of the raw message.
// Sends the raw message from stdin (or the structured one) up to `count` times through a
// pooled transport (pool: true, maxConnections, maxMessages: Infinity), stops submitting after
// `durationCap` seconds, and prints {"messages", "seconds", "cpu_seconds"} as JSON.
// Timing runs from the first sendMail to the last final reply (QUIT is not timed).

const nodemailer = require('nodemailer');

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (chunk) => chunks.push(chunk));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks)));
    process.stdin.on('error', reject);
  });
}

async function main() {
  const options = JSON.parse(process.argv[2]);
  const raw = await readStdin();
  const connections = options.connections || 1;
  const transporter = nodemailer.createTransport({
    host: options.host,
    port: options.port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: connections,
    maxMessages: Infinity,
    logger: false,
  });
  // A hard stop in case the server never answers: the harness must always finish.
  const guard = setTimeout(() => {
    console.error('send.js: gave up waiting for replies');
    process.exit(2);
  }, (options.durationCap + 30) * 1000);

  const envelope = { from: options.sender, to: options.recipients };
  const started = process.hrtime.bigint();
  const cpuStarted = process.cpuUsage();
  const deadline = started + BigInt(Math.round(options.durationCap * 1e9));
  let submitted = 0;
  let sent = 0;
  let inFlight = 0;
  let finished = started;
  let cpuFinished = cpuStarted;

  await new Promise((resolve, reject) => {
    const next = () => {
      if (submitted < options.count && process.hrtime.bigint() < deadline) {
        submitted += 1;
        inFlight += 1;
        const mail = options.structured ? { ...options.structured } : { envelope, raw };
        transporter.sendMail(mail).then(() => {
          sent += 1;
          inFlight -= 1;
          finished = process.hrtime.bigint();
          cpuFinished = process.cpuUsage();
          next();
        }, reject);
      } else if (inFlight === 0) {
        resolve();
      }
    };
    // Two messages queued per connection keep every connection busy.
    for (let i = 0; i < connections * 2; i += 1) next();
  });

  clearTimeout(guard);
  transporter.close();
  const cpuUsed = (cpuFinished.user - cpuStarted.user + cpuFinished.system - cpuStarted.system) / 1e6;
  process.stdout.write(
    JSON.stringify({
      messages: sent,
      seconds: Number(finished - started) / 1e9,
      cpu_seconds: cpuUsed,
    }) + '\n',
  );
}

main().catch((error) => {
  console.error(`send.js: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
});
