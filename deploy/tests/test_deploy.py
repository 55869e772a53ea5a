"""The deploy/ scripts: the image's HEALTHCHECK and deploy/local/down.sh.

Run by `crates/agent/tests/deploy.rs` (so by `cargo xtask test`):

    python3 deploy/tests/test_deploy.py -v

The HEALTHCHECK script runs against small HTTP servers on loopback (port 0), as bash in
the image runs it; down.sh against processes this test starts and a pid file like the one
deploy/local/up.sh writes.
"""

from __future__ import annotations

import http.server
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEALTHCHECK = ROOT / "deploy" / "healthcheck.sh"
DOWN = ROOT / "deploy" / "local" / "down.sh"


class Monitor(http.server.ThreadingHTTPServer):
    """A monitoring port that answers /healthz with `status`."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), MonitorHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class MonitorHandler(http.server.BaseHTTPRequestHandler):
    server: Monitor

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.paths.append(self.path)
        body = b'{"status":"ok"}' if self.server.status == 200 else b'{"status":"unavailable"}'
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def healthcheck(port: int, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("INFINISTREAM_")}
    full_env.update(INFINISTREAM_HTTP_PORT=str(port), **env)
    return subprocess.run(["bash", str(HEALTHCHECK)], env=full_env, capture_output=True, text=True, timeout=30)


class Healthcheck(unittest.TestCase):
    def test_healthy_on_200_from_healthz(self) -> None:
        with Monitor(200) as monitor:
            done = healthcheck(monitor.port)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertEqual(monitor.paths, ["/healthz"])
            # A bind-all host still probes loopback.
            self.assertEqual(healthcheck(monitor.port, INFINISTREAM_HOST="0.0.0.0").returncode, 0)

    def test_unhealthy_on_an_error_status(self) -> None:
        with Monitor(503) as monitor:
            done = healthcheck(monitor.port)
            self.assertEqual(done.returncode, 1)
            self.assertIn("503", done.stderr)

    def test_unhealthy_when_nothing_listens(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # Bound and released: nothing listens there now.
        done = healthcheck(port)
        self.assertEqual(done.returncode, 1)
        self.assertIn(f"nothing listens on 127.0.0.1:{port}", done.stderr)

    def test_the_dockerfile_uses_it(self) -> None:
        dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
        self.assertIn("COPY deploy/healthcheck.sh /usr/local/bin/infinistream-healthcheck", dockerfile)
        self.assertIn('CMD ["/usr/local/bin/infinistream-healthcheck"]', dockerfile)
        ignored = (ROOT / ".dockerignore").read_text().split()
        for path in ("target", ".tools", "data", ".git"):
            self.assertIn(path, ignored)


class Down(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.run_dir = pathlib.Path(self.dir.name)
        self.children: list[subprocess.Popen[str]] = []

    def tearDown(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        self.dir.cleanup()

    def spawn(self, *argv: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.children.append(child)
        return child

    def down(self, timeout: int = 10) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, INFINISTREAM_LOCAL_DIR=str(self.run_dir), INFINISTREAM_STOP_TIMEOUT=str(timeout))
        return subprocess.run(["bash", str(DOWN)], env=env, capture_output=True, text=True, timeout=60)

    def test_stops_what_up_recorded_in_reverse_order(self) -> None:
        etcd = self.spawn("sleep", "300")
        agent = self.spawn("sleep", "300")
        # A process that ignores SIGTERM: killed after the timeout.
        stubborn = self.spawn(
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(300)",
        )
        self.assertEqual(stubborn.stdout.readline().strip(), "ready")
        gone = self.spawn("true")
        gone.wait()
        # A pid now running another program than the one recorded (a reused pid).
        other = self.spawn("sleep", "300")
        python = pathlib.Path(sys.executable).name
        (self.run_dir / "pids").write_text(
            f"{etcd.pid} etcd sleep\n{gone.pid} s3 weed\n{other.pid} cp infinistream\n"
            f"{stubborn.pid} jobs {python}\n{agent.pid} produce sleep\n"
        )
        (self.run_dir / "state").write_text("/tmp/infinistream-local-test\n")

        done = self.down(timeout=1)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.splitlines()
        self.assertEqual(
            lines,
            [
                f"produce (pid {agent.pid}) stopped",
                f"jobs (pid {stubborn.pid}) did not stop within 1s; killed",
                f"cp: pid {other.pid} is now sleep, not infinistream; leaving it alone",
                f"s3 (pid {gone.pid}) had already exited",
                f"etcd (pid {etcd.pid}) stopped",
                "data and logs kept in /tmp/infinistream-local-test",
            ],
        )
        self.assertEqual(agent.wait(timeout=10), -signal.SIGTERM)
        self.assertEqual(etcd.wait(timeout=10), -signal.SIGTERM)
        self.assertEqual(stubborn.wait(timeout=10), -signal.SIGKILL)
        self.assertIsNone(other.poll(), "a process up.sh did not start is left alone")
        self.assertFalse((self.run_dir / "pids").exists())

        # Nothing recorded: nothing to do.
        again = self.down()
        self.assertEqual(again.returncode, 0)
        self.assertIn("nothing to stop", again.stdout)


if __name__ == "__main__":
    unittest.main()
