"""The example programs of librill-streams (examples/*.c, built into
$RILL_BUILD/example_NAME) as processes of the streams tests
(tests/integration/test_streams.py, tests/fault/test_streams_eos.py)."""
import os
import signal
import subprocess
import threading

from rilltest import BUILD

PROG = os.path.join(BUILD, "example_wordcount")


class StreamsApp:
    """One example_wordcount process; its "tasks:" lines are collected."""

    def __init__(self, broker, state_dir, log_path, prog=PROG, app_id="wc-test", extra=()):
        assert os.access(prog, os.X_OK), "%s not built" % prog
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [prog, "--bootstrap", broker.bootstrap, "--app-id", app_id, "--state-dir", state_dir,
             "--commit-ms", "200", "--set", "consumer.session.timeout.ms=2000",
             "--set", "consumer.heartbeat.interval.ms=200"] + list(extra),
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        self.tasks = None
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if line.startswith("tasks:"):
                self.tasks = line[len("tasks:"):].split()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        self.log.close()
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        self.log.close()
