// A listener built with Microsoft's hyco-ws that echoes every message and
// reports the subprotocol it accepted.
'use strict';
const { ns, hc, keyName, key, report } = require('./common');
const WebSocket = require('hyco-ws');

const server = WebSocket.createRelayedServer({
  server: WebSocket.createRelayListenUri(ns, hc),
  token: () => WebSocket.createRelayToken('http://' + ns + '/' + hc, keyName, key),
}, (ws) => {
  ws.on('open', () => report({ event: 'accepted', protocol: ws.protocol || '' }));
  ws.on('message', (data) => ws.send(data, { binary: typeof data !== 'string' }));
  ws.on('error', (e) => report({ event: 'error', error: String(e && e.message || e) }));
});
server.on('listening', () => report({ event: 'listening' }));
server.on('error', (e) => report({ event: 'error', error: String(e && e.message || e) }));
