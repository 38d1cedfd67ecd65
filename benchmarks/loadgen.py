"""A small, fast HTTP/1.1 load generator for the serving benchmark (standard library only).

Requests are pre-built byte strings sent over raw keep-alive sockets, and responses are parsed
just far enough to find the status and the body's end: a few tens of microseconds of client CPU
per request, against the hundreds a generic client (http.client, httpx) spends. That keeps the
client from being the bottleneck on a 2-core machine where the server holds the other core, and
each measurement reports the client's own CPU so a reader can check.

- `sequential`: one connection, one request at a time (latency percentiles).
- `concurrent`: N processes, one keep-alive connection each, closed loop (throughput).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_HEAD_END = b"\r\n\r\n"
_RECV = 65536


def build_request(
    path: str, body: bytes, port: int, headers: dict[str, str] | None = None
) -> bytes:
    """One complete POST request (head and JSON body), ready to send as is."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1 that sends pre-built requests."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def send(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and read its whole response; returns (status, body)."""
        self._sock.sendall(request)
        head, rest = self._read_head()
        status = int(head[9:12])
        length = _content_length(head)
        while len(rest) < length:
            chunk = self._sock.recv(_RECV)
            if not chunk:
                raise ConnectionError("server closed the connection mid-body")
            rest += chunk
        self._buffer = rest[length:]
        return status, rest[:length]

    def close(self) -> None:
        self._sock.close()

    def _read_head(self) -> tuple[bytes, bytes]:
        data = self._buffer
        while (end := data.find(_HEAD_END)) < 0:
            chunk = self._sock.recv(_RECV)
            if not chunk:
                raise ConnectionError("server closed the connection")
            data += chunk
        return data[:end], data[end + len(_HEAD_END) :]


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    # Both servers under test answer with a Content-Length; chunked bodies are not supported.
    raise ValueError(f"response without Content-Length: {head[:200]!r}")


# -- sequential: latency ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Sequential:
    """Per-request seconds of a sequential run, the errors, and the first error's response."""

    seconds: list[float]
    wall_seconds: float
    errors: int
    first_error: str | None
    client_cpu_seconds: float


def sequential(
    port: int,
    requests: Sequence[bytes],
    *,
    min_requests: int,
    min_seconds: float,
    max_requests: int,
    max_seconds: float,
    expect: int = 200,
) -> Sequential:
    """Send `requests` in a cycle over one connection until both minimums are met.

    Stops at whichever maximum comes first otherwise, so the loop is bounded in count and time.
    A response with another status than `expect` counts as an error.
    """
    connection = Connection(port)
    latencies: list[float] = []
    errors, first_error = 0, None
    cpu_started = time.process_time()
    started = time.perf_counter()
    try:
        while len(latencies) < max_requests:
            elapsed = time.perf_counter() - started
            if elapsed >= max_seconds or (
                len(latencies) >= min_requests and elapsed >= min_seconds
            ):
                break
            sent = time.perf_counter()
            status, body = connection.send(requests[len(latencies) % len(requests)])
            latencies.append(time.perf_counter() - sent)
            if status != expect:
                errors += 1
                first_error = first_error or f"HTTP {status}: {body[:300]!r}"
    finally:
        connection.close()
    return Sequential(
        seconds=latencies,
        wall_seconds=time.perf_counter() - started,
        errors=errors,
        first_error=first_error,
        client_cpu_seconds=time.process_time() - cpu_started,
    )


# -- concurrent: throughput ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    port: int
    requests: list[bytes]
    offset: int
    start_at: float  # time.monotonic() values: CLOCK_MONOTONIC is the same in every process
    stop_at: float
    max_requests: int


@dataclass(frozen=True)
class _Done:
    latencies: list[float]
    errors: int
    finished_at: float
    cpu_seconds: float


@dataclass(frozen=True)
class Concurrent:
    """A closed-loop run over several connections: counts, window, latencies and client CPU."""

    connections: int
    requests: int
    errors: int
    wall_seconds: float
    latencies: list[float]
    client_cpu_seconds: float
    probed: tuple[Any, Any] | None  # `probe()` at the window's start and at its end

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds > 0 else 0.0


def concurrent(
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    seconds: float,
    max_requests_each: int,
    probe: Callable[[], Any] | None = None,
) -> Concurrent:
    """`connections` processes each send requests back to back for `seconds` (closed loop).

    Every process connects first, then all start at the same instant, so connection set-up and
    process start-up stay outside the measured window. Each process starts at a different place
    in `requests`, so concurrent requests carry different leads. `probe` (e.g. reading CPU
    counters) is called in this process when the window opens and when it closes.
    """
    start_at = time.monotonic() + 1.0 + 0.05 * connections
    stop_at = start_at + seconds
    step = max(1, len(requests) // connections)
    jobs = [
        _Job(port, list(requests), i * step, start_at, stop_at, max_requests_each)
        for i in range(connections)
    ]
    context = multiprocessing.get_context("fork")
    with context.Pool(connections) as pool:
        pending = pool.map_async(_run_job, jobs)
        probed = _probe_window(probe, start_at, stop_at) if probe else None
        done = pending.get(timeout=seconds + 60)
    return Concurrent(
        connections=connections,
        requests=sum(len(d.latencies) for d in done),
        errors=sum(d.errors for d in done),
        wall_seconds=max(d.finished_at for d in done) - start_at,
        latencies=[s for d in done for s in d.latencies],
        client_cpu_seconds=sum(d.cpu_seconds for d in done),
        probed=probed,
    )


def _probe_window(probe: Callable[[], Any], start_at: float, stop_at: float) -> tuple[Any, Any]:
    time.sleep(max(0.0, start_at - time.monotonic()))
    first = probe()
    time.sleep(max(0.0, stop_at - time.monotonic()))
    return first, probe()


def _run_job(job: _Job) -> _Done:
    connection = Connection(job.port)
    try:
        time.sleep(max(0.0, job.start_at - time.monotonic()))
        cpu_started = time.process_time()
        latencies: list[float] = []
        errors = 0
        i = job.offset
        while len(latencies) < job.max_requests and time.monotonic() < job.stop_at:
            sent = time.monotonic()
            status, _ = connection.send(job.requests[i % len(job.requests)])
            latencies.append(time.monotonic() - sent)
            errors += status != 200
            i += 1
        return _Done(latencies, errors, time.monotonic(), time.process_time() - cpu_started)
    finally:
        connection.close()


# -- CPU accounting --------------------------------------------------------------------------------
def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and every live descendant (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = _all_stats()
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, _) in stats.items() if ppid == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(stats[p][1] for p in tree if p in stats) / ticks


def _all_stats() -> dict[int, tuple[int, int]]:
    """{pid: (parent pid, utime + stime in clock ticks)} for every process we can read."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                text = handle.read()
        except OSError:  # the process ended while we looked
            continue
        # The command name is in parentheses and may hold spaces; the fields follow the last ")".
        fields = text[text.rindex(b")") + 2 :].split()
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return stats


def machine_cpu_seconds() -> float:
    """CPU seconds spent by every process on the machine since boot (Linux /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
