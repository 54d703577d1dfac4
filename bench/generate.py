"""Generation client benchmark: `ChatClient` at concurrency 1 vs many, and its cost per request beside bare loops.

    python bench/generate.py [--requests 64] [--repeats 5] [--delay-ms 100] [--skip-mlx]
                             [--mlx-concurrency 1,8,64] [--concurrency 1,64,256] [--overhead-requests 1000]

Three parts, each measured side by side in one run, medians of --repeats (the order alternates per repeat):
1. mlx_lm server: `python -m mlx_lm server` on 127.0.0.1 with a tiny random-weight Llama built here
   (`tests/models/test_ifd_tiny.py::build_tiny_llama`, cached in bench/_work/tiny-llama), --requests
   distinct prompts, `max_tokens` 8, through `ChatClient.map` at each --mlx-concurrency level, beside a bare
   `httpx.Client` thread pool at the same concurrency (the peer). The server is the real OpenAI-compatible
   one (it batches up to 32 decodes), so on 2 cores the model, not the client, sets the pace. It runs twice:
   stock, and with its listen backlog raised from 5 (ThreadingHTTPServer's default) to 1024, because at high
   concurrency a client that connects per request overflows a backlog of 5 (dropped SYNs, resets).
2. Latency stub: a threaded HTTP server in a child process (this file with --stub-serve) that answers a
   valid chat.completion after --delay-ms, like a remote API. Concurrency c sends max(32, 4c) requests,
   so every worker makes at least 4 round trips; the ideal is c / delay. Peer: a bare `httpx.Client`
   thread pool (`max_connections` = c, keep-alive) at the same c.
3. Client cost per request: the same stub with no delay, one request at a time. `ChatClient.complete`
   (fresh SQLite cache per run: key hash, cache miss, budget reserve/settle, urllib POST with a new
   connection each time, JSON parse, cache put) beside a bare `urllib.request` loop (the same transport:
   new connection per request, json.dumps + json.loads) and a bare `httpx.Client` loop (keep-alive).
   ours - urllib = what our client adds. A what-if row runs ours with the cache at `synchronous=full` (an fsync per answer, the setting before the
   cache moved to `normal` on this bench's finding).
   The pieces are then timed without HTTP: `complete` with the POST replaced by a canned reply, the key
   hash, a cache miss, a cache put, a cache hit.
Every measured run uses a fresh cache and prompts tagged with the run, so no answer comes from a cache except
in the cache-hit line. CPU us/req counts the client process (all threads; os.times, 10 ms ticks) and, apart,
the server process (/proc). Timings are not asserted; the load average is printed first: other work on the
machine skews them, and min-max shows the spread of the repeats.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from engine.generate.budget import Budget  # noqa: E402
from engine.generate.cache import ResponseCache, request_key  # noqa: E402
from engine.generate.client import ChatClient, Endpoint, Reply  # noqa: E402

WORK = ROOT / "bench" / "_work"
PARAMS = {"max_tokens": 8, "temperature": 0.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the stub server (a child process)


def serve_stub(delay_ms: float) -> None:
    """A chat.completions stub on 127.0.0.1:<free port>; prints the port, answers after `delay_ms`, forever."""
    answer = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "stub",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "A short answer."}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24},
        }
    ).encode()
    delay = delay_ms / 1000

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive for clients that ask (httpx); urllib sends Connection: close
        disable_nagle_algorithm = True  # else headers and body in two writes wait out delayed ACKs (40 ms)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if delay:
                time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 1024  # the listen backlog: 256 clients connect at once
        daemon_threads = True

    with Server(("127.0.0.1", 0), Handler) as srv:
        print(srv.server_address[1], flush=True)
        srv.serve_forever()


class Child:
    """A server process: its base URL and its CPU seconds so far."""

    def __init__(self, proc: subprocess.Popen[Any], base_url: str) -> None:
        self.proc, self.base_url = proc, base_url

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_stub(delay_ms: float) -> Child:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--stub-serve", str(delay_ms)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return Child(proc, f"http://127.0.0.1:{port}/v1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mlx_server(model_dir: Path, log: Path, backlog: int | None = None) -> Child:
    """`python -m mlx_lm server`; with `backlog`, the same server with its listen backlog raised from 5."""
    port = free_port()
    if backlog is None:
        cmd = [sys.executable, "-m", "mlx_lm", "server"]
    else:
        patch = (
            f"import sys, http.server; http.server.ThreadingHTTPServer.request_queue_size = {backlog}; "
            "from mlx_lm.server import main; sys.argv[0] = 'mlx_lm.server'; main()"
        )
        cmd = [sys.executable, "-c", patch]
    cmd += ["--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    child = Child(proc, f"http://127.0.0.1:{port}/v1")
    ep = Endpoint("mlx", "default_model", child.base_url)
    body = json.dumps({"model": ep.model, "messages": [{"role": "user", "content": "hi"}], **PARAMS}).encode()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"mlx_lm server exited with {proc.returncode}:\n{log.read_text()[-2000:]}"
            raise RuntimeError(msg)
        try:  # a real completion, so the model is loaded before anything is timed
            req = urllib.request.Request(ep.base_url + "/chat/completions", data=body, method="POST")
            req.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(req, timeout=30) as resp:
                json.loads(resp.read())["choices"][0]["message"]["content"]
            return child
        except OSError:
            time.sleep(0.5)
    child.stop()
    msg = f"mlx_lm server did not answer within 180 s:\n{log.read_text()[-2000:]}"
    raise RuntimeError(msg)


def tiny_model() -> Path:
    out = WORK / "tiny-llama"
    if not (out / "model.safetensors").exists():
        from tests.models.test_ifd_tiny import build_tiny_llama

        build_tiny_llama(out)
    return out


# ---------------------------------------------------------------- the clients under test


def messages(tag: str, i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": f"[{tag} {i}] Give three tips for staying healthy."},
    ]


_run = 0


def next_tag() -> str:
    """A tag no earlier run used, so no prompt repeats (no cache hit, here or in the server's prompt cache)."""
    global _run
    _run += 1
    return f"run{_run}"


class FreshCache:
    """A ResponseCache in a new temp dir under bench/_work, removed on exit."""

    def __enter__(self) -> ResponseCache:
        WORK.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="gen-cache-", dir=WORK))
        self.cache = ResponseCache(self.dir / "cache.sqlite")
        return self.cache

    def __exit__(self, *exc: object) -> None:
        self.cache.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def ours_map(ep: Endpoint, n: int, concurrency: int) -> Callable[[], Counter[str]]:
    """ChatClient.map over n distinct prompts; returns its failures by reason and its retries."""

    def run() -> Counter[str]:
        tag = next_tag()
        with FreshCache() as cache:
            client = ChatClient(cache, Budget(), concurrency=concurrency)
            replies = client.map([(ep, messages(tag, i), PARAMS) for i in range(n)])
        return Counter(r.error for r in replies if r.error) + Counter(retries=client.stats.retries)

    return run


def _httpx_post(http: httpx.Client, url: str, body: bytes) -> str | None:
    """One POST; None on success, else the reason (a bare loop has no retries: a failure is final)."""
    try:
        r = http.post(url, content=body, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if r.status_code != 200:
        return f"http_{r.status_code}"
    return None if isinstance(r.json()["choices"][0]["message"]["content"], str) else "bad_response"


def httpx_pool(ep: Endpoint, n: int, concurrency: int) -> Callable[[], Counter[str]]:
    """The peer: one shared httpx.Client (keep-alive, c connections) driven by a c-thread pool."""
    url = ep.base_url + "/chat/completions"

    def run() -> Counter[str]:
        tag = next_tag()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        with httpx.Client(limits=limits, timeout=120) as http:

            def one(i: int) -> str | None:
                body = json.dumps({"model": ep.model, "messages": messages(tag, i), **PARAMS}).encode()
                return _httpx_post(http, url, body)

            with ThreadPoolExecutor(max_workers=min(concurrency, n)) as pool:
                return Counter(e for e in pool.map(one, range(n)) if e)

    return run


def ours_loop(ep: Endpoint, n: int, synchronous: str | None = None) -> Callable[[], Counter[str]]:
    """ChatClient.complete one request at a time; `synchronous` sets the cache's SQLite pragma (a what-if)."""

    def run() -> Counter[str]:
        tag = next_tag()
        with FreshCache() as cache:
            if synchronous is not None:
                cache._con.execute(f"pragma synchronous={synchronous}")
            client = ChatClient(cache, Budget(), concurrency=1)
            return Counter(e for i in range(n) if (e := client.complete(ep, messages(tag, i), PARAMS).error))

    return run


def urllib_loop(ep: Endpoint, n: int) -> Callable[[], Counter[str]]:
    url = ep.base_url + "/chat/completions"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def run() -> Counter[str]:
        tag, bad = next_tag(), Counter[str]()
        for i in range(n):
            body = json.dumps({"model": ep.model, "messages": messages(tag, i), **PARAMS}).encode()
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=120) as resp:
                if not isinstance(json.loads(resp.read())["choices"][0]["message"]["content"], str):
                    bad["bad_response"] += 1
        return bad

    return run


def httpx_loop(ep: Endpoint, n: int) -> Callable[[], Counter[str]]:
    url = ep.base_url + "/chat/completions"

    def run() -> Counter[str]:
        tag = next_tag()
        with httpx.Client(timeout=120) as http:
            return Counter(
                e
                for i in range(n)
                if (
                    e := _httpx_post(
                        http, url, json.dumps({"model": ep.model, "messages": messages(tag, i), **PARAMS}).encode()
                    )
                )
            )

    return run


# ---------------------------------------------------------------- timing


def cpu_self() -> float:
    t = os.times()
    return t.user + t.system


class Timed:
    """Medians of wall s, client CPU s and server CPU s over the repeats of one method."""

    def __init__(self, name: str, n: int, fn: Callable[[], Counter[str] | None], server: Child | None) -> None:
        self.name, self.n, self.fn, self.server = name, n, fn, server
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.server_cpus: list[float] = []
        self.notes: Counter[str] = Counter()  # failures by reason, and "retries", summed over the repeats

    def once(self) -> None:
        s0 = self.server.cpu() if self.server else 0.0
        c0, t0 = cpu_self(), time.perf_counter()
        self.notes += self.fn() or Counter()
        self.walls.append(time.perf_counter() - t0)
        self.cpus.append(cpu_self() - c0)
        if self.server:
            self.server_cpus.append(self.server.cpu() - s0)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def rps(self) -> float:
        return self.n / self.wall

    @property
    def us(self) -> float:
        return self.wall / self.n * 1e6

    def cpu_us(self) -> str:
        return f"{statistics.median(self.cpus) / self.n * 1e6:,.0f}"

    def server_cpu_us(self) -> str:
        return f"{statistics.median(self.server_cpus) / self.n * 1e6:,.0f}" if self.server_cpus else ""


def measure(methods: list[Timed], repeats: int) -> None:
    for r in range(repeats):
        for m in methods if r % 2 == 0 else methods[::-1]:
            m.once()


def notes(methods: list[Timed], repeats: int) -> None:
    for m in methods:
        if m.notes:
            text = ", ".join(f"{k} {v}" for k, v in sorted(m.notes.items()))
            print(f"  {m.name}, summed over the {repeats} repeats: {text}")


ROW = "{:<34} {:>6} {:>8} {:>13} {:>9} {:>10} {:>10} {:>10}"


def header(rate: str, last: str) -> None:
    print(ROW.format("method", "n", "wall s", "min-max", rate, "client cpu", "server cpu", last))
    print(ROW.format("", "", "", "", "", "us/req", "us/req", ""))
    print("-" * 108)


def row(m: Timed, rate: str, last: str) -> None:
    spread = f"{min(m.walls):.2f}-{max(m.walls):.2f}"
    print(ROW.format(m.name, m.n, f"{m.wall:.3f}", spread, rate, m.cpu_us(), m.server_cpu_us(), last))


def concurrency_table(
    levels: list[int], ours: list[Timed], peers: list[Timed], ideal: Callable[[int], float] | None
) -> None:
    """Ours and the httpx pool at each level; the speed-up of each level over the first."""
    header("req/s", "of ideal" if ideal else "vs ours c1")
    for c, o, p in zip(levels, ours, peers, strict=True):
        for m in (o, p):
            row(m, f"{m.rps:,.1f}", f"{m.rps / ideal(c):.0%}" if ideal else f"{m.rps / ours[0].rps:.2f}x")
    for c, o, p in zip(levels[1:], ours[1:], peers[1:], strict=True):
        ideal_x = f"ideal {c / levels[0]:g}x; " if ideal else ""
        print(
            f"concurrency {c} vs {levels[0]}: {o.rps / ours[0].rps:.2f}x ({ideal_x}httpx pool "
            f"{p.rps / peers[0].rps:.2f}x; ours / httpx pool at c={c}: {o.rps / p.rps:.2f}x)"
        )


def pool_pair(ep: Endpoint, levels: list[int], ns: list[int], server: Child) -> tuple[list[Timed], list[Timed]]:
    ours = [Timed(f"ours ChatClient.map c={c}", n, ours_map(ep, n, c), server) for c, n in zip(levels, ns, strict=True)]
    peers = [Timed(f"httpx pool c={c}", n, httpx_pool(ep, n, c), server) for c, n in zip(levels, ns, strict=True)]
    return ours, peers


# ---------------------------------------------------------------- the three parts


def part_mlx(n: int, repeats: int, levels: list[int]) -> None:
    print(f"\n== 1. mlx_lm server, tiny random Llama, {n} requests per run, max_tokens 8, medians of {repeats}")
    model = tiny_model()
    for title, backlog in (("stock (listen backlog 5)", None), ("listen backlog raised to 1024", 1024)):
        log = WORK / "generate-mlx-server.log"
        started = time.perf_counter()
        server = start_mlx_server(model, log, backlog)
        print(f"\n-- mlx_lm server, {title}: up and answering in {time.perf_counter() - started:.1f} s")
        try:
            ep = Endpoint("mlx", "default_model", server.base_url)
            ours_map(ep, 16, 16)()  # warm-up: the batched decode path
            ours, peers = pool_pair(ep, levels, [n] * len(levels), server)
            methods = [m for pair in zip(ours, peers, strict=True) for m in pair]
            measure(methods, repeats)
        finally:
            server.stop()
        concurrency_table(levels, ours, peers, None)
        notes(methods, repeats)


def part_latency(delay_ms: float, repeats: int, levels: list[int]) -> None:
    print(f"\n== 2. latency stub, {delay_ms:g} ms per answer, n = max(32, 4c) requests, medians of {repeats}")
    server = start_stub(delay_ms)
    try:
        ep = Endpoint("stub", "stub", server.base_url)
        ours_map(ep, 64, 64)()  # warm-up
        ours, peers = pool_pair(ep, levels, [max(32, 4 * c) for c in levels], server)
        methods = [m for pair in zip(ours, peers, strict=True) for m in pair]
        measure(methods, repeats)
    finally:
        server.stop()
    concurrency_table(levels, ours, peers, lambda c: c / (delay_ms / 1000))
    notes(methods, repeats)


def part_overhead(n: int, repeats: int) -> None:
    print(f"\n== 3. cost per request, zero-delay stub, {n} sequential requests, medians of {repeats}")
    server = start_stub(0)
    try:
        ep = Endpoint("stub", "stub", server.base_url)
        for warm in (ours_loop(ep, 50), urllib_loop(ep, 50), httpx_loop(ep, 50)):
            warm()
        ours, bare_urllib, bare_httpx, ours_full = methods = [
            Timed("ours ChatClient.complete", n, ours_loop(ep, n), server),
            Timed("bare urllib.request (new conn)", n, urllib_loop(ep, n), server),
            Timed("bare httpx.Client (keep-alive)", n, httpx_loop(ep, n), server),
            Timed("what-if: ours, synchronous=full", n, ours_loop(ep, n, "full"), server),
        ]
        measure(methods, repeats)
    finally:
        server.stop()
    header("us/req", "ours/this")
    for m in methods:
        row(m, f"{m.us:,.0f}", f"{ours.us / m.us:.2f}x")
    notes(methods, repeats)
    print(
        f"our overhead over bare urllib (same transport): {ours.us - bare_urllib.us:+,.0f} us/req "
        f"({ours.us / bare_urllib.us:.2f}x); over bare httpx keep-alive: {ours.us - bare_httpx.us:+,.0f} us/req "
        f"({ours.us / bare_httpx.us:.2f}x)"
    )
    print(
        f"with the cache at synchronous=full (an fsync per put) it would add {ours_full.us - bare_urllib.us:+,.0f} "
        f"us/req over bare urllib ({ours_full.us / bare_urllib.us:.2f}x)"
    )
    pieces(ep, n, repeats)


def pieces(ep: Endpoint, n: int, repeats: int) -> None:
    """Where our overhead goes, without HTTP: complete() with a canned reply, and the cache alone."""
    canned = Reply("A short answer.", usage={"prompt_tokens": 20, "completion_tokens": 4})
    doc = {"content": "A short answer.", "usage": {"prompt_tokens": 20, "completion_tokens": 4}, "model": ep.model}

    def no_http() -> None:
        tag = next_tag()
        with FreshCache() as cache:
            client = ChatClient(cache, Budget(), concurrency=1)
            client._post = lambda _ep, _body: canned  # type: ignore[method-assign]
            for i in range(n):
                client.complete(ep, messages(tag, i), PARAMS)

    def keys() -> None:
        tag = next_tag()
        for i in range(n):
            request_key(ep.model, ep.base_url, messages(tag, i), PARAMS)

    def puts() -> None:
        tag = next_tag()
        with FreshCache() as cache:
            for i in range(n):
                cache.put(f"{tag}-{i}", doc)

    def puts_full() -> None:
        tag = next_tag()
        with FreshCache() as cache:
            cache._con.execute("pragma synchronous=full")  # what-if: an fsync per commit in WAL mode
            for i in range(n):
                cache.put(f"{tag}-{i}", doc)

    hits_cache = FreshCache()
    cache = hits_cache.__enter__()
    warm_client = ChatClient(cache, Budget(), concurrency=1)
    warm_client._post = lambda _ep, _body: canned  # type: ignore[method-assign]
    for i in range(n):
        warm_client.complete(ep, messages("hit", i), PARAMS)

    def misses() -> None:
        tag = next_tag()
        for i in range(n):
            cache.get(f"{tag}-{i}")

    def hits() -> None:
        client = ChatClient(cache, Budget(), concurrency=1)
        for i in range(n):
            client.complete(ep, messages("hit", i), PARAMS)

    rows: list[tuple[str, Callable[[], None]]] = [
        ("complete(), POST replaced by a canned reply", no_http),
        ("  request_key (sha256 of sorted JSON)", keys),
        ("  cache.get, a miss", misses),
        ("  cache.put (autocommit, WAL, synchronous=normal)", puts),
        ("  (what-if: cache.put with synchronous=full)", puts_full),
        ("complete(), a cache hit", hits),
    ]
    try:
        timed = [Timed(name, n, f, None) for name, f in rows]
        measure(timed, repeats)
    finally:
        hits_cache.__exit__()
    print(f"\nwhere it goes, no HTTP ({n} calls, fresh cache per run, medians of {repeats}):")
    for m in timed:
        print(f"  {m.name:<50} {m.us:>8,.1f} us/call   (cpu {m.cpu_us()} us)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64, help="requests per run against mlx_lm server (default 64)")
    ap.add_argument("--overhead-requests", type=int, default=1000, help="sequential requests in part 3 (default 1000)")
    ap.add_argument("--repeats", type=int, default=5, help="runs per method; medians are printed (default 5)")
    ap.add_argument("--delay-ms", type=float, default=100.0, help="the latency stub's answer delay (default 100)")
    ap.add_argument("--concurrency", default="1,64,256", help="levels for the latency stub (default 1,64,256)")
    ap.add_argument("--mlx-concurrency", default="1,8,64", help="levels for mlx_lm server (default 1,8,64)")
    ap.add_argument("--skip-mlx", action="store_true", help="leave out part 1 (mlx_lm server)")
    ap.add_argument("--parts", default="1,2,3", help="which parts to run (default 1,2,3)")
    ap.add_argument("--stub-serve", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stub_serve is not None:
        serve_stub(args.stub_serve)
        return
    levels = [int(c) for c in args.concurrency.split(",")]
    parts = {int(p) for p in args.parts.split(",")} - ({1} if args.skip_mlx else set())
    print(f"load average before the runs: {os.getloadavg()[0]:.2f} (other work on the machine skews timings)")
    print(f"{os.cpu_count()} cores; python {sys.version.split()[0]}, httpx {httpx.__version__}", end="")
    if 1 in parts:
        import importlib.metadata

        print(f", mlx-lm {importlib.metadata.version('mlx-lm')}", end="")
    print()
    runs: dict[int, Callable[[], None]] = {
        1: lambda: part_mlx(args.requests, args.repeats, [int(c) for c in args.mlx_concurrency.split(",")]),
        2: lambda: part_latency(args.delay_ms, args.repeats, levels),
        3: lambda: part_overhead(args.overhead_requests, args.repeats),
    }
    for part, run in runs.items():
        if part in parts:
            run()
            print(f"(load average after part {part}: {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
