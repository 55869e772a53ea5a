"""A JetStream application as a nats.py user writes it, for InfiniStream's client
matrix (crates/agent/tests/cluster_clients.rs). Over ONE connection it creates a
stream, publishes with PubAck, fetches from a pull consumer with acks, uses a KV
bucket (put/get/update with revision/watch) and an object store (put/get).

Usage: python client.py URL NAME TAG (the tools venv has nats-py). NAME is the
connection name (routing suffix included), TAG makes the stream and bucket names
unique. On success it prints "OK hops=<connections made> servers=<distinct server
ids>"; otherwise the error on stderr and a non-zero exit.
"""

import asyncio
import sys

import nats
from nats.js.errors import KeyWrongLastSequenceError

connections = 0
servers = set()


def report():
    return f"hops={connections} servers={len(servers)}"


def connected(nc):
    global connections
    connections += 1
    server_id = (nc._server_info or {}).get("server_id")
    if server_id:
        servers.add(server_id)


def check(ok, message):
    if not ok:
        raise AssertionError(message)


async def run(url, name, tag):
    nc = None

    async def reconnected():
        connected(nc)

    async def disconnected():
        print("disconnected", file=sys.stderr)

    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=10,
        reconnected_cb=reconnected,
        disconnected_cb=disconnected,
    )
    connected(nc)
    try:
        await flow(nc, tag)
    finally:
        await nc.close()


async def flow(nc, tag):
    js = nc.jetstream(timeout=20)

    # A stream, and publishes acked in order.
    stream = f"S_{tag}"
    subject = f"s.{tag}"
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    count = 5
    for i in range(1, count + 1):
        ack = await js.publish(f"{subject}.{i}", f"m{i}".encode())
        check(ack.stream == stream and ack.seq == i, f"publish {i}: PubAck {ack}")

    # A pull consumer: fetch everything in order, ack each message.
    sub = await js.pull_subscribe(f"{subject}.>", durable="worker", stream=stream)
    expected = 1
    while expected <= count:
        for msg in await sub.fetch(count, timeout=10):
            seq = msg.metadata.sequence.stream
            check(seq == expected, f"fetched stream sequence {seq}, want {expected}")
            await msg.ack_sync(timeout=20)
            expected += 1
    info = await sub.consumer_info()
    check(
        info.ack_floor.stream_seq == count and info.num_ack_pending == 0,
        f"consumer after acks: ack floor {info.ack_floor.stream_seq}, pending {info.num_ack_pending}",
    )

    # KV: put, get, update with the right and a stale revision, watch an update arrive.
    kv = await js.create_key_value(bucket=f"kv_{tag}", history=3)
    rev1 = await kv.put("k", b"v1")
    entry = await kv.get("k")
    check(entry.value == b"v1" and entry.revision == rev1, f"kv get: {entry}")
    rev2 = await kv.update("k", b"v2", last=rev1)
    check(rev2 > rev1, f"kv update: revision {rev2} after {rev1}")
    try:
        await kv.update("k", b"stale", last=rev1)
        raise AssertionError(f"kv update with stale revision {rev1} succeeded")
    except KeyWrongLastSequenceError:
        pass
    watcher = await kv.watch("k")
    entry = await watcher.updates(timeout=20)
    check(entry is not None and entry.value == b"v2", f"kv watch: {entry}, want v2")
    # The end of the initial values.
    entry = await watcher.updates(timeout=20)
    check(entry is None, f"kv watch: {entry}, want the end of initial values")
    await kv.put("k", b"v3")
    entry = await watcher.updates(timeout=20)
    check(entry is not None and entry.value == b"v3", f"kv watch: {entry}, want v3")
    await watcher.stop()

    # Object store: a multi-chunk object round-trips.
    objects = await js.create_object_store(bucket=f"obj_{tag}")
    data = bytes(i % 251 for i in range(300_000))
    await objects.put("blob", data)
    back = await objects.get("blob")
    check(back.data == data, f"object get: {len(back.data or b'')} bytes differ")


def main():
    if len(sys.argv) != 4:
        print("usage: python client.py URL NAME TAG", file=sys.stderr)
        sys.exit(2)
    try:
        asyncio.run(run(*sys.argv[1:]))
    except Exception as e:  # noqa: BLE001 - any failure is the test's failure
        print(f"FAIL ({report()}): {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"OK {report()}")


if __name__ == "__main__":
    main()
