// Preloaded into Azurite (node --require) by azurite.Options.FastQueues;
// see there for why.
//
// Azurite's queue service keeps the messages of the whole account in one
// LokiJS collection with four binary indices. LokiJS rebuilds every index
// (a full sort) when it removes or updates an array of documents, and
// Azurite does both on every dequeue, delete and update of a message:
// clearExpiredMessages removes the array of expired messages (almost
// always empty), getMessages updates the array it dequeued. Here an array
// of up to `short` documents is handled one document at a time, which
// LokiJS does with its adaptive indices (a splice, no sort); longer arrays
// take the original way.
"use strict";
const loki = require("lokijs");

const short = 16;
const proto = loki.Collection.prototype;
const removeBatch = proto.removeBatch;
const update = proto.update;
if (typeof removeBatch !== "function" || typeof update !== "function" || typeof proto.remove !== "function") {
  throw new Error("bote lokipatch: this LokiJS has no Collection removeBatch, update or remove");
}

proto.removeBatch = function (batch) {
  if (batch.length > short || !this.adaptiveBinaryIndices) {
    return removeBatch.call(this, batch);
  }
  for (const doc of batch) {
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

console.log("bote lokipatch: in place");
