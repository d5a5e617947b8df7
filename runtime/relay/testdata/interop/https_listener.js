// A listener built with Microsoft's hyco-https, serving the Go sender:
//   /HC/echo          200, the request body back, with what the app saw
//   /HC/big?n=N       200, N bytes
//   /HC/status/CODE   CODE (204 has no body; hyco-https then sends an
//                     empty binary frame after the response)
'use strict';
const { ns, hc, keyName, key, report } = require('./common');
const https = require('hyco-https');

const server = https.createRelayedServer({
  server: https.createRelayListenUri(ns, hc),
  token: () => https.createRelayToken('http://' + ns + '/' + hc, keyName, key),
}, (req, res) => {
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, 'http://app');
    const parts = url.pathname.split('/');
    if (parts[2] === 'status') {
      const code = Number(parts[3]);
      res.statusCode = code;
      res.setHeader('X-App', 'hyco-https');
      if (code === 204) {
        res.end();
      } else {
        res.setHeader('Content-Type', 'text/plain');
        res.end('app says ' + code);
      }
      return;
    }
    if (parts[2] === 'big') {
      res.setHeader('Content-Type', 'application/octet-stream');
      res.end(Buffer.alloc(Number(url.searchParams.get('n')), 'y'));
      return;
    }
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('X-Seen', JSON.stringify({ method: req.method, url: req.url, len: body.length, host: req.headers['host'] || '',
      authorization: req.headers['authorization'] || '', contentLength: req.headers['content-length'] || '' }));
    // hyco-https never answers end() with an empty Buffer (its write_
    // waits for more input), so an empty body ends with end().
    res.end(body.length ? body : undefined);
  });
});
server.on('listening', () => report({ event: 'listening' }));
server.on('error', (e) => report({ event: 'error', error: String(e && e.message || e) }));
server.listen();
