// A JetStream application as a nats.js user writes it, for InfiniStream's client
// matrix (crates/agent/tests/cluster_clients.rs). Over ONE connection it creates a
// stream, publishes with PubAck, fetches from a pull consumer with acks, uses a KV
// bucket (put/get/update with revision/watch) and an object store (put/get).
//
// Usage: node client.js URL NAME TAG, with NODE_PATH pointing at the node_modules that
// `cargo xtask install-tools` installs from package.json/package-lock.json into
// .tools/node. NAME is the connection name (routing suffix included), TAG makes the
// stream and bucket names unique. On success it prints
// "OK hops=<connections made> servers=<distinct server ids>"; otherwise the error on
// stderr and a non-zero exit.
"use strict";

const { connect } = require("@nats-io/transport-node");
const { AckPolicy, jetstream, jetstreamManager } = require("@nats-io/jetstream");
const { Kvm } = require("@nats-io/kv");
const { Objm } = require("@nats-io/obj");

const [url, name, tag] = process.argv.slice(2);
const enc = new TextEncoder();
const dec = new TextDecoder();

let connections = 0;
const servers = new Set();
const report = () => `hops=${connections} servers=${servers.size}`;

function connected(nc) {
  connections += 1;
  if (nc.info && nc.info.server_id) {
    servers.add(nc.info.server_id);
  }
}

function check(ok, message) {
  if (!ok) {
    throw new Error(message);
  }
}

async function nextEntry(iter, want) {
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`kv watch: nothing within 20s, want ${want}`)), 20000).unref(),
  );
  const next = await Promise.race([iter.next(), timeout]);
  check(!next.done, `kv watch ended, want ${want}`);
  const got = dec.decode(next.value.value);
  check(got === want, `kv watch: ${got}, want ${want}`);
}

async function run() {
  const nc = await connect({ servers: url, name, maxReconnectAttempts: 10 });
  connected(nc);
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "reconnect") {
        connected(nc);
      } else if (s.type === "disconnect") {
        process.stderr.write(`disconnected from ${s.server}\n`);
      }
    }
  })();
  try {
    await flow(nc);
  } finally {
    await nc.close();
  }
}

async function flow(nc) {
  const jsm = await jetstreamManager(nc, { timeout: 20000 });
  const js = jetstream(nc, { timeout: 20000 });

  // A stream, and publishes acked in order.
  const stream = `S_${tag}`;
  const subject = `s.${tag}`;
  await jsm.streams.add({ name: stream, subjects: [`${subject}.>`] });
  const count = 5;
  for (let i = 1; i <= count; i++) {
    const ack = await js.publish(`${subject}.${i}`, enc.encode(`m${i}`));
    check(ack.stream === stream && ack.seq === i, `publish ${i}: PubAck ${JSON.stringify(ack)}`);
  }

  // A pull consumer: fetch everything in order, ack each message.
  await jsm.consumers.add(stream, { durable_name: "worker", ack_policy: AckPolicy.Explicit });
  const consumer = await js.consumers.get(stream, "worker");
  let next = 1;
  while (next <= count) {
    const messages = await consumer.fetch({ max_messages: count, expires: 10000 });
    for await (const m of messages) {
      check(m.info.streamSequence === next, `fetched stream sequence ${m.info.streamSequence}, want ${next}`);
      check(await m.ackAck(), `ack ${next} not confirmed`);
      next += 1;
    }
  }
  const info = await consumer.info();
  check(
    info.ack_floor.stream_seq === count && info.num_ack_pending === 0,
    `consumer after acks: ack floor ${info.ack_floor.stream_seq}, pending ${info.num_ack_pending}`,
  );

  // KV: put, get, update with the right and a stale revision, watch an update arrive.
  const kv = await new Kvm(js).create(`kv_${tag}`, { history: 3 });
  const rev1 = await kv.put("k", enc.encode("v1"));
  const entry = await kv.get("k");
  check(entry && entry.string() === "v1" && entry.revision === rev1, `kv get: ${entry && entry.string()}`);
  const rev2 = await kv.update("k", enc.encode("v2"), rev1);
  check(rev2 > rev1, `kv update: revision ${rev2} after ${rev1}`);
  let stale = false;
  try {
    await kv.update("k", enc.encode("stale"), rev1);
  } catch {
    stale = true;
  }
  check(stale, `kv update with stale revision ${rev1} succeeded`);
  const watch = await kv.watch({ key: "k" });
  const iter = watch[Symbol.asyncIterator]();
  await nextEntry(iter, "v2");
  await kv.put("k", enc.encode("v3"));
  await nextEntry(iter, "v3");
  watch.stop();

  // Object store: a multi-chunk object round-trips.
  const objects = await new Objm(js).create(`obj_${tag}`);
  const data = new Uint8Array(300000);
  for (let i = 0; i < data.length; i++) {
    data[i] = i % 251;
  }
  await objects.putBlob({ name: "blob" }, data);
  const back = await objects.getBlob("blob");
  check(back && Buffer.from(back).equals(Buffer.from(data)), `object get: ${back && back.length} bytes differ`);
}

if (process.argv.length !== 5) {
  process.stderr.write("usage: node client.js URL NAME TAG\n");
  process.exit(2);
}
run().then(
  () => {
    process.stdout.write(`OK ${report()}\n`);
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`FAIL (${report()}): ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
