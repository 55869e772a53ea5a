"""Accounts as nats.py users meet them (crates/agent/tests/accounts.rs).

Usage: python accounts.py URL. `a` (account A, JetStream's) and `b` (account B)
subscribe to the same subjects: each sees only its own account's publishes. B's
JetStream calls fail with err_code 10039, A's succeed. Prints "OK" on success;
otherwise the error on stderr and a non-zero exit.
"""

import asyncio
import sys

import nats
from nats.js.errors import APIError


async def run(url):
    a = await nats.connect(url, user="a", password="pa", allow_reconnect=False)
    b = await nats.connect(url, user="b", password="pb", allow_reconnect=False)
    sub_a = await a.subscribe("orders.>")
    sub_b = await b.subscribe("orders.>")
    await a.flush()
    await b.flush()
    await a.publish("orders.from_a", b"a")
    await a.flush()
    await b.publish("orders.from_b", b"b")
    await b.flush()
    got_b = await sub_b.next_msg(timeout=5)
    if got_b.subject != "orders.from_b":
        raise AssertionError(f"B saw {got_b.subject!r} first")
    got_a = await sub_a.next_msg(timeout=5)
    if got_a.subject != "orders.from_a":
        raise AssertionError(f"A saw {got_a.subject!r} first")
    try:
        await b.jetstream().account_info()
        raise AssertionError("JetStream answered account B")
    except APIError as e:
        if e.err_code != 10039:
            raise AssertionError(f"B got {e!r}, expected err_code 10039")
    await a.jetstream().account_info()
    await a.close()
    await b.close()
    print("OK")


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
