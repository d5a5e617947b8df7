// A connector session driven over stdin by TestNodeWSClient, with the
// Node `ws` client (the version the repository's package-lock pins).
// Commands, one JSON object a line:
//   {"send": id, "size": n, "fragments": k}  a send request of n bytes in k frames, a ping after the first
//   {"close": code}
// Events, one JSON object a line: open, frame, ping, pong, close, error.
'use strict';
const WebSocket = require('ws');
const readline = require('readline');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const ws = new WebSocket(process.env.URL, [process.env.PROTO], {
  headers: { Authorization: 'Bearer ' + process.env.TOKEN },
});
ws.on('open', () => out({ event: 'open', protocol: ws.protocol }));
ws.on('message', (data) => {
  const f = JSON.parse(data);
  out({ event: 'frame', type: f.type, id: f.id || '', code: f.error ? f.error.code : '' });
});
ws.on('ping', () => out({ event: 'ping' })); // ws answers it
ws.on('pong', (d) => out({ event: 'pong', data: d.toString() }));
ws.on('close', (code) => { out({ event: 'close', status: code }); process.exit(0); });
ws.on('error', (e) => out({ event: 'error', message: e.message }));

function request(id, size) {
  const b = Buffer.from(JSON.stringify({ type: 'send', id, message: { id: 'm-' + id } }));
  return Buffer.concat([b, Buffer.alloc(size - b.length, ' ')]);
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const c = JSON.parse(line);
  if (c.close) {
    ws.close(c.close, 'bye');
    return;
  }
  const b = request(c.send, c.size);
  const k = c.fragments || 1;
  const n = Math.ceil(b.length / k);
  for (let i = 0; i < k; i++) {
    ws.send(b.subarray(i * n, Math.min(b.length, (i + 1) * n)), { binary: false, fin: i === k - 1 });
    if (i === 0 && k > 1) ws.ping('mid');
  }
});
