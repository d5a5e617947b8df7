// Senders as Microsoft's Node clients make them, reaching a Go listener:
// HTTP-mode requests through hyco-https's URL and token helpers (token in
// the sb-hc-token query parameter, and in the ServiceBusAuthorization
// header), and WebSockets through hyco-ws (relayedConnect, and a client
// asking for a subprotocol as a browser does). RELAY_WS_HC names the
// hybrid connection of the Go WebSocket echo listener.
'use strict';
const { ns, hc, keyName, key, report } = require('./common');
const https = require('hyco-https');
const WebSocket = require('hyco-ws');
const crypto = require('crypto');

const wsHC = process.env.RELAY_WS_HC;
const token = (entity) => https.createRelayToken('http://' + ns + '/' + entity, keyName, key);
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

function request(name, method, path, tokenIn, body) {
  return new Promise((resolve) => {
    const uri = https.createRelayHttpsUri(ns, hc + path, tokenIn === 'query' ? token(hc) : null);
    const headers = { Authorization: 'Bearer app' };
    if (tokenIn === 'header') headers.ServiceBusAuthorization = token(hc);
    const req = https.request(uri, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        report({ name, status: res.statusCode, len: b.length, sum: sha(b), seen: res.headers['x-seen'] || '', via: res.headers['via'] || '' });
        resolve();
      });
    });
    req.on('error', (e) => { report({ name, error: e.message }); resolve(); });
    req.end(body);
  });
}

function echo(name, socket, size) {
  return new Promise((resolve) => {
    const payload = crypto.randomBytes(size);
    const got = [];
    let n = 0;
    socket.on('open', () => socket.send(payload, { binary: true }));
    socket.on('message', (m) => {
      got.push(Buffer.from(m));
      n += m.length;
      if (n >= size) {
        report({ name, len: n, same: sha(Buffer.concat(got)) === sha(payload), protocol: socket.protocol || '' });
        socket.close();
        resolve();
      }
    });
    socket.on('error', (e) => { report({ name, error: e.message }); resolve(); });
  });
}

(async () => {
  for (const size of [0, 65535, 65536, 65537, 300000]) {
    await request('query ' + size, 'POST', '/v1/echo?size=' + size, 'query', Buffer.alloc(size, 'x'));
  }
  await request('header 100000', 'PUT', '/v1/echo', 'header', Buffer.alloc(100000, 'z'));
  await request('app 401', 'GET', '/v1/status/401', 'header');
  await request('app 404', 'GET', '/v1/status/404', 'query');
  await echo('relayedConnect 10MB', WebSocket.relayedConnect(WebSocket.createRelaySendUri(ns, wsHC + '/echo'), token(wsHC)), 10 << 20);
  await echo('subprotocol', new WebSocket(WebSocket.createRelaySendUri(ns, wsHC + '/chat'), 'opsbot.v1',
    { headers: { ServiceBusAuthorization: token(wsHC) } }), 1000);
  report({ name: 'done' });
})();
