"""Subject permissions as a nats.py user meets them (crates/agent/tests/security.rs).

Usage: python permissions.py URL. Signs in as the test's `pub` user, is refused a
denied subscription and a denied publish (both reported to the error callback,
connection kept), and then still publishes and receives on allowed subjects. A
wrong password is refused at connect. Prints "OK" on success; otherwise the error
on stderr and a non-zero exit.
"""

import asyncio
import sys

import nats
from nats.errors import NoServersError


async def run(url):
    errors = []

    async def on_error(e):
        errors.append(str(e))

    nc = await nats.connect(
        url, user="pub", password="pub-secret-1", error_cb=on_error,
        allow_reconnect=False, max_reconnect_attempts=0,
    )
    await nc.subscribe("foo.secret")
    await nc.publish("orders.secret", b"x")
    await nc.flush()
    for _ in range(50):
        if len(errors) >= 2:
            break
        await asyncio.sleep(0.05)
    # nats.py reports the server's -ERR text lower-cased.
    expected = [
        'nats: permissions violation for subscription to "foo.secret"',
        'nats: permissions violation for publish to "orders.secret"',
    ]
    if [e.lower() for e in errors] != expected:
        raise AssertionError(f"errors {errors!r}, expected {expected!r}")
    if not nc.is_connected:
        raise AssertionError("connection closed after a permissions violation")
    sub = await nc.subscribe("orders.new")
    await nc.publish("orders.new", b"hello")
    msg = await sub.next_msg(timeout=5)
    if msg.data != b"hello":
        raise AssertionError(f"got {msg.data!r}")
    await nc.close()

    try:
        bad = await nats.connect(url, user="pub", password="wrong",
                                 allow_reconnect=False, max_reconnect_attempts=0,
                                 connect_timeout=5)
        await bad.close()
        raise AssertionError("a wrong password was accepted")
    except (nats.errors.Error, NoServersError) as e:
        if "Authorization" not in repr(e) and "authorization" not in str(e).lower() \
                and not isinstance(e, NoServersError):
            raise
    print("OK")


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
