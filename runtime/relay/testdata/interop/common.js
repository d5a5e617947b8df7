// Shared set-up of the interoperability scripts that TestInteropWithMicrosoftNodeSDK
// runs. Microsoft's clients are used as their users use them, with the
// namespace form of every URL (wss://NS:443/$hc/..., https://NS/...) that
// their own helpers build; only the network is redirected: TLS connections
// to NS:443 go to the test relay on loopback, whose certificate (issued for
// NS by a test CA) Node trusts through NODE_EXTRA_CA_CERTS, so the
// certificate and host name checks stay on.
//
// Environment: RELAY_NS (namespace host), RELAY_PORT (the test relay's
// loopback port; without it the scripts talk to the real namespace),
// RELAY_HC (hybrid connection), RELAY_KEY_NAME, RELAY_KEY.
'use strict';
const tls = require('tls');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(name + ' is not set');
  return v;
};
const ns = env('RELAY_NS');
const port = Number(process.env.RELAY_PORT || 0);

const connect = tls.connect;
tls.connect = function (options, ...rest) {
  if (port && options && typeof options === 'object' && options.host === ns && Number(options.port || 443) === 443) {
    // Same options (so servername and the identity check name NS); only
    // the socket goes to the test relay.
    options = Object.assign({}, options, { host: '127.0.0.1', port, servername: options.servername || ns });
  }
  return connect.call(this, options, ...rest);
};

module.exports = {
  ns,
  hc: env('RELAY_HC'),
  keyName: env('RELAY_KEY_NAME'),
  key: env('RELAY_KEY'),
  // One line of JSON per result, for the Go test to read.
  report: (o) => process.stdout.write(JSON.stringify(o) + '\n'),
};
