// Senders as Microsoft's Node SDKs make them, pointed at a test relay:
// an HTTP-mode request with the token in ServiceBusAuthorization, and a
// WebSocket connect (what hyco-ws relayedConnect does) carrying a raw
// HTTP/1.1 request that the Go listener's http.Server answers.
// usage: node sender.js HOST HC KEYNAME KEY
const WebSocket = require('ws');
const http = require('http');
const hyco = require('hyco-https');
const [host, hc, keyName, key] = process.argv.slice(2);
const token = hyco.createRelayToken('http://' + host + '/' + hc, keyName, key);
const [hostname, port] = host.split(':');

const req = http.request({ host: hostname, port, path: '/' + hc + '/v1/echo?y=2', method: 'POST',
  headers: { ServiceBusAuthorization: token, Authorization: 'Bearer app' } }, (res) => {
  let b = '';
  res.on('data', (d) => { b += d; });
  res.on('end', () => console.log('http: ' + res.statusCode + ' ' + b));
});
req.end('x'.repeat(150000));

const ws = new WebSocket('ws://' + host + '/$hc/' + hc + '/stream?sb-hc-action=connect',
  { headers: { ServiceBusAuthorization: token } });
ws.on('open', () => ws.send(Buffer.from('GET /v1/echo?over=stream HTTP/1.1\r\nHost: ops\r\nConnection: close\r\n\r\n')));
let got = '';
ws.on('message', (m) => { got += m.toString(); });
ws.on('close', () => console.log('stream: ' + got.split('\r\n')[0] + ' | ' + got.split('\r\n\r\n')[1]));
ws.on('error', (e) => console.log('stream error ' + e.message));
