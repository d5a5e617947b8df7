// Preloaded into Azurite (node --require) by azurite.Options.Fleet; see
// there for why.
"use strict";

// Azurite's queue service keeps the messages of the whole account in one
// LokiJS collection with four binary indices. LokiJS rebuilds every index
// (a full sort) when it removes or updates an array of documents, and
// Azurite does both on every dequeue, delete and update of a message:
// clearExpiredMessages removes the array of expired messages (almost
// always empty), getMessages updates the array it dequeued. Here an array
// of up to `short` documents is handled one document at a time, which
// LokiJS does with its adaptive indices (a splice, no sort); longer arrays
// take the original way.
const loki = require("lokijs");
const short = 16;
const proto = loki.Collection.prototype;
const removeBatch = proto.removeBatch;
const update = proto.update;
for (const f of ["removeBatch", "removeBatchByPositions", "update", "remove"]) {
  if (typeof proto[f] !== "function") {
    throw new Error(`bote fleet.js: this LokiJS has no Collection.${f}`);
  }
}
if (typeof loki.Resultset.prototype.find !== "function") {
  throw new Error("bote fleet.js: this LokiJS has no Resultset.find");
}
proto.removeBatch = function (batch) {
  if (batch.length > short || !this.adaptiveBinaryIndices) {
    return removeBatch.call(this, batch);
  }
  for (const doc of batch) {
    this.remove(doc);
  }
};
// Resultset.remove (findAndRemove, Azurite's extent clean-up: one extent
// at a time) goes straight to removeBatchByPositions.
const removeBatchByPositions = proto.removeBatchByPositions;
proto.removeBatchByPositions = function (positions) {
  if (positions.length > short || !this.adaptiveBinaryIndices) {
    return removeBatchByPositions.call(this, positions);
  }
  for (const doc of positions.map((p) => this.data[p])) {
    this.remove(doc);
  }
};
proto.update = function (doc) {
  if (!Array.isArray(doc) || doc.length > short || !this.adaptiveBinaryIndices) {
    return update.call(this, doc);
  }
  for (const d of doc) {
    update.call(this, d);
  }
};

// Azurite looks every queue and message up by {accountName, name} or
// {accountName, queueName, ...}; LokiJS filters in key order and uses an
// index for the first key only, and with one account the accountName index
// selects everything, so each lookup scanned every queue or message of the
// account. Asking for accountName last lets the name's index select.
const find = loki.Resultset.prototype.find;
loki.Resultset.prototype.find = function (query, firstOnly) {
  if (query && typeof query === "object" && !Array.isArray(query)) {
    const keys = Object.keys(query);
    if (keys.length > 1 && keys[0] === "accountName") {
      const q = {};
      for (const k of keys.slice(1)) {
        q[k] = query[k];
      }
      q.accountName = query.accountName;
      query = q;
    }
  }
  return find.call(this, query, firstOnly);
};

// Azurite listens with listen(port, host, callback), Node's backlog of
// 511 connections waiting to be accepted; beyond it the kernel drops new
// connections, which then retry after 1, 3, 7, 15 s. 4096 is the usual
// kernel ceiling (net.core.somaxconn).
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length === 3 && typeof args[1] === "string" && typeof args[2] === "function") {
    return listen.call(this, args[0], args[1], 4096, args[2]);
  }
  return listen.apply(this, args);
};

console.log("bote fleet.js: in place");
