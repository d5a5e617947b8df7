// A connector in Node, behind the sidecar (`connector run`): the sidecar
// POSTs every message from the cloud to this program, and a call's HTTP
// response is its reply; the program calls the cloud service "simple"
// through the sidecar's local API. Node's standard library only.
//
//   PORT=9000 SIDECAR=http://127.0.0.1:9001 node examples/sidecar/app.js
"use strict";
const http = require("node:http");

const port = Number(process.env.PORT || 9000);
const sidecar = process.env.SIDECAR || "http://127.0.0.1:9001";

// Deliveries from the sidecar.
const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const from = req.headers["bote-from"];
    console.log(`${from} says: ${body}`);
    if (req.headers["bote-deadline"]) {
      // A call: this response goes back to the caller as the reply.
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end(`node answers: ${body.toUpperCase()}`);
      return;
    }
    res.writeHead(204); // handled; the message is deleted
    res.end();
  });
});

// Ask the cloud once the sidecar is connected.
async function callCloud() {
  for (;;) {
    try {
      const health = await fetch(`${sidecar}/healthz`);
      if (health.ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 500));
  }
  const res = await fetch(`${sidecar}/v1/call/simple`, {
    method: "POST",
    headers: { "Content-Type": "text/plain", "Bote-Timeout": "10s" },
    body: "hello from node",
  });
  console.log(`cloud answered (${res.status}): ${await res.text()}`);
}

server.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${port}`);
  callCloud().catch((err) => console.error("call failed:", err));
});
