// A listener built with Microsoft's hyco-https SDK, pointed at a test relay.
// usage: node listener.js HOST HC KEYNAME KEY
const https = require('hyco-https');
const [host, hc, keyName, key] = process.argv.slice(2);
const server = https.createRelayedServer({
  server: 'ws://' + host + '/$hc/' + hc + '?sb-hc-action=listen',
  token: () => https.createRelayToken('http://' + host + '/' + hc, keyName, key),
}, (req, res) => {
  let n = 0;
  req.on('data', (d) => { n += d.length; });
  req.on('end', () => {
    res.setHeader('Content-Type', 'text/plain');
    if (req.url.endsWith('/big')) {
      res.end('y'.repeat(200000));
    } else {
      res.end('node got ' + req.method + ' ' + req.url + ' body=' + n + ' auth=' + req.headers['authorization']);
    }
  });
});
server.listen((err) => console.log('node listener up', err || ''));
server.on('error', (e) => console.log('node listener error', e));
