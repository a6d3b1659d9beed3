"""Benchmark of rtcbot's thread and process bridges against RTCBot 0.2.5 and minimal baselines.

Usage::

    python bench/bridges.py            # full run (about 75 s on 2 cores), JSON on stdout
    python bench/bridges.py --quick    # smoke run (about 15 s)
    python bench/bridges.py --out bench/results/bridges.json   # also write the JSON there

The orchestrator runs each implementation in its own child process, one after the other:

* ``--impl rtcbot``: this checkout's ``rtcbot`` (``src/`` first on the path), current interpreter;
* ``--impl minimal``: the hand-written baselines of ``bench/_minimal.py``, current interpreter;
* ``--impl rtcbot025``: the original RTCBot 0.2.5 from PyPI, in ``bench/.venv-rtcbot025``
  (created on first use by ``bench/_venv.py``).

Each child prints one JSON document; the orchestrator prints them combined, every figure next
to its same-run baselines, with ratios and the targets they are held to. The worker-side loops
are the same code for every implementation (``bench/_workloads.py``); only the bridge differs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
IMPLS = ("minimal", "rtcbot", "rtcbot025")
FRAME_SHAPE = (480, 640, 3)
DEFAULT_WINDOW = 5_000
"""Figure 1's flow-control window: half of rtcbot's default backlog bound (10,000), so rtcbot's
bounded bridge never has to drop; the same window is applied to every implementation."""
FRAME_WINDOW = 16
"""Frames in flight in figure 5 (a camera is paced; a producer far ahead only measures page
faults of hundreds of MB of queued frames)."""
STEP_TIMEOUT_S = 60.0
"""No single measurement waits longer than this."""

# Sizes of the runs. Slow implementations get smaller counts where a full count would take many
# seconds; every figure is a steady-state rate, and the JSON records each count.
FULL = {
    "t2l_n": 500_000,
    "t2l_repeats": 3,
    "lat_n": 5_000,
    "lat_warmup": 200,
    "l2t_n": 500_000,
    "l2t_n_rtcbot025": 30_000,
    "l2t_repeats": 3,
    "close_reps": 20,
    "close_reps_rtcbot025": 3,
    "proc_items_n": 100_000,
    "proc_frames_n": 300,
    "proc_repeats": 3,
}
QUICK = {
    "t2l_n": 100_000,
    "t2l_repeats": 3,
    "lat_n": 1_000,
    "lat_warmup": 100,
    "l2t_n": 100_000,
    "l2t_n_rtcbot025": 5_000,
    "l2t_repeats": 3,
    "close_reps": 3,
    "close_reps_rtcbot025": 1,
    "proc_items_n": 20_000,
    "proc_frames_n": 100,
    "proc_repeats": 1,
}


# --------------------------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------------------------


class Impl:
    """What one implementation offers to the measuring code (the same code for all three)."""

    name: str
    closed: tuple[type[BaseException], ...]
    classes: object
    process_start_methods: tuple[str, ...]
    notes: list[str]

    def process_producer(self, kind: str, n: int, start_method: str, flow):
        raise NotImplementedError


class RTCBotImpl(Impl):
    """rtcbot or RTCBot 0.2.5: the same public names, the same subclasses (``_bridge_impl``)."""

    def __init__(self, name: str) -> None:
        import _bridge_impl

        self.name = name
        self.mod = _bridge_impl
        self.closed = (_bridge_impl.SubscriptionClosed,)
        self.classes = _bridge_impl.CLASSES
        self.notes = []
        if name == "rtcbot025":
            # RTCBot 0.2.5 pickles nothing and relies on fork (its child runs a bound method of
            # an object holding the loop, threads and locks); it has no start_method parameter.
            self.process_start_methods = ("fork",)
            self.notes.append(
                "process bridge measured with fork only: RTCBot 0.2.5 has no start_method and "
                "relies on fork"
            )
        else:
            self.process_start_methods = ("spawn", "fork")

    def process_producer(self, kind: str, n: int, start_method: str, flow):
        cls = self.mod.ItemsProcessProducer
        if self.name == "rtcbot025":
            if multiprocessing.get_start_method() != start_method:
                raise RuntimeError("RTCBot 0.2.5 runs with the default start method only")
            return cls(kind, n, FRAME_SHAPE, flow)
        return cls(kind, n, FRAME_SHAPE, flow, start_method=start_method)


class MinimalImpl(Impl):
    name = "minimal"
    process_start_methods = ("spawn", "fork")

    def __init__(self) -> None:
        import _minimal
        from _workloads import thread_classes

        self.closed = (_minimal.MinimalClosed,)
        self.classes = thread_classes(
            _minimal.MinimalThreadProducer, _minimal.MinimalThreadConsumer, _minimal.MinimalClosed
        )
        self.notes = []


# --------------------------------------------------------------------------------------------
# Measurements (run inside one implementation's child process)
# --------------------------------------------------------------------------------------------


async def _ready(obj) -> None:
    await asyncio.wait_for(_as_coro(obj.onReady()), STEP_TIMEOUT_S)


async def _as_coro(awaitable):
    return await awaitable


async def _closed(obj, timeout: float = STEP_TIMEOUT_S) -> float:
    """``await obj`` with a timeout; returns the seconds it took."""
    t0 = time.perf_counter()
    await asyncio.wait_for(_as_coro(obj), timeout)
    return time.perf_counter() - t0


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


def _median(values: list[float]) -> float:
    values = sorted(values)
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    k = min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def _stats_of(obj) -> dict | None:
    """The drop/backlog statistics an object offers, if any (rtcbot has ``statistics()``)."""
    stats = getattr(obj, "statistics", None)
    if not callable(stats):
        return None
    try:
        value = stats()
    except Exception as exc:
        return {"error": repr(exc)}
    if isinstance(value, dict):
        return dict(value)
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    return {"repr": repr(value)}


async def thread_to_loop_throughput(impl: Impl, n: int, repeats: int, window: int | None):
    """Figure 1: a threaded producer puts ``n`` ints as fast as it can; the loop awaits get()."""
    from _workloads import END, Flow

    runs = []
    for _ in range(repeats):
        gc.collect()
        go = threading.Event()
        flow = Flow(window)
        producer = impl.classes.Burst(n, go, flow)
        await _ready(producer)
        loop = asyncio.get_running_loop()
        loop.call_soon(go.set)  # runs once the first get() below waits (and has subscribed)
        count = 0
        end = "END"
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(STEP_TIMEOUT_S):
                get = producer.get
                while True:
                    item = await get()
                    if item == END:
                        break
                    count += 1
                    flow.received = count  # Flow.on_received, inlined
                    if count >= flow.resume_at and not flow.credit.is_set():
                        flow.credit.set()
        except impl.closed as exc:
            end = type(exc).__name__
        except TimeoutError:
            end = "timeout"
        seconds = time.perf_counter() - t0
        stats = _stats_of(producer)
        producer.close()
        await _closed(producer)
        runs.append(
            {
                "items_per_s": _rate(count, seconds),
                "seconds": seconds,
                "delivered": count,
                "dropped": n - count,
                "end": end,
                "flow_waits": flow.waits,
                "worker_error": producer.bench_error,
                "producer_statistics": stats,
            }
        )
    best = max(runs, key=lambda r: r["items_per_s"])
    return {
        "n": n,
        "repeats": repeats,
        "flow_window": window,
        "items_per_s": _median([r["items_per_s"] for r in runs]),
        "items_per_s_best": best["items_per_s"],
        "delivered_min": min(r["delivered"] for r in runs),
        "dropped_max": max(r["dropped"] for r in runs),
        "flow_waits_max": max(r["flow_waits"] for r in runs),
        "runs": runs,
    }


async def thread_to_loop_latency(impl: Impl, n: int, warmup: int, period_ns: int = 1_000_000):
    """Figure 2: a worker sends perf_counter_ns() at 1 kHz; the loop takes arrival - send."""
    from _workloads import END

    gc.collect()
    go = threading.Event()
    producer = impl.classes.Paced(n, go, period_ns)
    await _ready(producer)
    asyncio.get_running_loop().call_soon(go.set)
    latencies: list[int] = []
    end = "END"
    clock = time.perf_counter_ns
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S + n * period_ns / 1e9):
            while True:
                item = await producer.get()
                if item == END:
                    break
                latencies.append(clock() - item)
    except impl.closed as exc:
        end = type(exc).__name__
    except TimeoutError:
        end = "timeout"
    producer.close()
    await _closed(producer)
    measured = sorted(latencies[warmup:])
    us = 1e-3
    return {
        "n": n,
        "warmup_discarded": warmup,
        "rate_hz": 1e9 / period_ns,
        "delivered": len(latencies),
        "end": end,
        "worker_error": producer.bench_error,
        "p50_us": _percentile(measured, 50) * us,
        "p90_us": _percentile(measured, 90) * us,
        "p99_us": _percentile(measured, 99) * us,
        "max_us": (measured[-1] * us) if measured else math.nan,
    }


async def loop_to_thread_throughput(impl: Impl, n: int, repeats: int):
    """Figure 3: the loop put_nowait()s ``n`` ints; a threaded consumer's blocking _get() counts."""
    runs = []
    for _ in range(repeats):
        gc.collect()
        done = threading.Event()
        consumer = impl.classes.Counting(n, done)
        await _ready(consumer)
        retries = 0
        first_full_at = None
        put = consumer.put_nowait
        t0 = time.perf_counter()
        for i in range(n):
            while True:
                try:
                    put(i)
                    break
                except asyncio.QueueFull:  # rtcbot's SubscriptionFull is a QueueFull
                    if first_full_at is None:
                        first_full_at = i
                    retries += 1
                    await asyncio.sleep(0.001)  # back off: let the consumer thread catch up
            if i % 1000 == 999:
                await asyncio.sleep(0)
        t_put = time.perf_counter()
        ok = await asyncio.to_thread(done.wait, STEP_TIMEOUT_S)
        t_done = consumer.bench_result.get("t_done", math.nan)
        consumer.close()
        close_wait = await _closed(consumer)
        runs.append(
            {
                "items_per_s": _rate(n, t_done - t0) if ok else math.nan,
                "seconds": t_done - t0,
                "put_seconds": t_put - t0,
                "received": consumer.bench_result.get("count"),
                "completed": ok,
                "full_retries": retries,
                "first_full_at_item": first_full_at,
                "end": consumer.bench_result.get("end"),
                "worker_error": consumer.bench_error,
                "close_then_await_s": close_wait,
            }
        )
    return {
        "n": n,
        "repeats": repeats,
        "items_per_s": _median([r["items_per_s"] for r in runs]),
        "items_per_s_best": max(r["items_per_s"] for r in runs),
        "full_retries_max": max(r["full_retries"] for r in runs),
        "runs": runs,
    }


def _join_all(threads: list[threading.Thread], timeout: float) -> float:
    """Join ``threads``; the perf_counter() at which the last one had ended (nan: timed out)."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            return math.nan
    return time.perf_counter()


async def idle_close(impl: Impl, which: str, reps: int, idle_s: float = 0.05):
    """Figure 4: close() of an idle threaded producer / consumer, and ``await obj`` after it."""
    close_ms, await_ms, gone_ms = [], [], []
    for _ in range(reps):
        gc.collect()
        before = set(threading.enumerate())
        obj = impl.classes.Idle() if which == "producer" else impl.classes.Counting(0, None)
        await _ready(obj)
        await asyncio.sleep(idle_s)  # let it be idle (not synchronisation: the state is idle)
        workers = [t for t in set(threading.enumerate()) - before if t.is_alive()]
        t0 = time.perf_counter()
        obj.close()
        t1 = time.perf_counter()
        await _closed(obj)
        t2 = time.perf_counter()
        # When did the worker thread end (joined off the loop)? A thread that has run its last
        # line is still is_alive() for a few microseconds, so this is a join, not a snapshot.
        gone = await asyncio.to_thread(_join_all, workers, STEP_TIMEOUT_S)
        close_ms.append((t1 - t0) * 1e3)
        await_ms.append((t2 - t1) * 1e3)
        gone_ms.append((gone - t1) * 1e3)
    return {
        "reps": reps,
        "idle_before_close_ms": idle_s * 1e3,
        "close_ms_median": _median(close_ms),
        "close_ms_max": max(close_ms),
        "await_after_close_ms_median": _median(await_ms),
        "await_after_close_ms_max": max(await_ms),
        "thread_ended_after_close_ms_max": max(gone_ms),
        "close_ms": close_ms,
        "await_after_close_ms": await_ms,
    }


class _ArrivalCounter:
    """Reader side of figure 5, the same for the bridges and the raw baseline: counts items up
    to END, checks frames, publishes the count to the child's flow window."""

    def __init__(self, kind: str, flow) -> None:
        self.kind = kind
        self.flow = flow
        self.count = 0
        self.bad = 0
        self.t_first = self.t_last = math.nan

    def take(self, item) -> bool:
        """Account for one item; False at END."""
        from _workloads import END

        if type(item) is int and item == END:
            return False
        self.t_last = time.perf_counter()
        if self.count == 0:
            self.t_first = self.t_last
        if self.kind == "frames" and getattr(item, "shape", None) != FRAME_SHAPE:
            self.bad += 1
        self.count += 1
        if self.count % self.flow.every == 0:
            flow = self.flow
            flow.received = self.count
            if self.count >= flow.resume_at and not flow.credit.is_set():
                flow.credit.set()
        return True

    def result(self, n: int, t_create: float) -> dict:
        return {
            "per_s": _rate(self.count - 1, self.t_last - self.t_first),
            "startup_s": self.t_first - t_create,
            "received": self.count,
            "dropped": n - self.count,
            "bad_items": self.bad,
            "flow_waits_in_child": self.flow.waits,
        }


async def process_producer_rate(
    impl: Impl, kind: str, n: int, start_method: str, repeats: int, window: tuple
):
    """Figure 5: a process producer's child puts ``n`` ints or frames; rate first->last item."""
    from _workloads import ProcessFlow

    runs = []
    for _ in range(repeats):
        gc.collect()
        flow = ProcessFlow(multiprocessing.get_context(start_method), *window)
        counter = _ArrivalCounter(kind, flow)
        t_create = time.perf_counter()
        producer = impl.process_producer(kind, n, start_method, flow)
        end = "END"
        try:
            async with asyncio.timeout(STEP_TIMEOUT_S):
                get = producer.get
                while counter.take(await get()):
                    pass
        except impl.closed as exc:
            end = type(exc).__name__
        except TimeoutError:
            end = "timeout"
        stats = _stats_of(producer)
        t0 = time.perf_counter()
        producer.close()
        close_ms = (time.perf_counter() - t0) * 1e3
        await_ms = await _closed(producer) * 1e3
        run = counter.result(n, t_create)
        run.update(
            end=end, close_ms=close_ms, await_after_close_ms=await_ms, producer_statistics=stats
        )
        runs.append(run)
    return _process_summary(kind, n, start_method, window, runs)


def _process_summary(kind, n, start_method, window, runs):
    return {
        "kind": kind,
        "n": n,
        "start_method": start_method,
        "flow_window": {"items_in_flight": window[0], "reader_publishes_every": window[1]},
        "per_s": _median([r["per_s"] for r in runs]),
        "per_s_min": min(r["per_s"] for r in runs),
        "per_s_max": max(r["per_s"] for r in runs),
        "dropped_max": max(r["dropped"] for r in runs),
        "runs": runs,
    }


def _raw_reader(q, counter: _ArrivalCounter) -> None:
    """Parent side of the raw baseline: blocking ``q.get()`` in a thread, like a bridge's reader."""
    while counter.take(q.get(timeout=STEP_TIMEOUT_S)):
        pass


async def raw_queue_rate(kind: str, n: int, start_method: str, repeats: int, window: tuple):
    """Figure 5 baseline: raw multiprocessing.Queue, the same child loop, the same start method."""
    from _minimal import raw_process_child
    from _workloads import ProcessFlow

    ctx = multiprocessing.get_context(start_method)
    runs = []
    for _ in range(repeats):
        gc.collect()
        flow = ProcessFlow(ctx, *window)
        counter = _ArrivalCounter(kind, flow)
        t_create = time.perf_counter()
        q = ctx.Queue()
        child = ctx.Process(
            target=raw_process_child, args=(q, kind, n, FRAME_SHAPE, flow), daemon=True
        )
        child.start()
        await asyncio.to_thread(_raw_reader, q, counter)
        await asyncio.to_thread(child.join, STEP_TIMEOUT_S)
        q.close()
        run = counter.result(n, t_create)
        run.update(exitcode=child.exitcode)
        runs.append(run)
    return _process_summary(kind, n, start_method, window, runs)


async def _guard(results: dict, key: str, coro) -> None:
    """Run one measurement; a failure is recorded in the JSON and the others still run."""
    t0 = time.perf_counter()
    try:
        results[key] = await coro
    except Exception as exc:
        import traceback

        results[key] = {"error": repr(exc), "traceback": traceback.format_exc(limit=6)}
    print(f"[{key}] {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


async def run_impl(name: str, sizes: dict, window: int | None, only: set[str] | None) -> dict:
    impl = MinimalImpl() if name == "minimal" else RTCBotImpl(name)

    def want(key: str) -> bool:
        return only is None or key in only

    res: dict = {}
    if want("thread_to_loop_throughput"):
        await _guard(
            res,
            "thread_to_loop_throughput",
            thread_to_loop_throughput(impl, sizes["t2l_n"], sizes["t2l_repeats"], window),
        )
    if want("thread_to_loop_unthrottled"):
        await _guard(
            res,
            "thread_to_loop_unthrottled",
            thread_to_loop_throughput(impl, sizes["t2l_n"], 1, None),
        )
    if want("thread_to_loop_latency"):
        await _guard(
            res,
            "thread_to_loop_latency",
            thread_to_loop_latency(impl, sizes["lat_n"], sizes["lat_warmup"]),
        )
    if want("loop_to_thread_throughput"):
        n = sizes.get(f"l2t_n_{name}", sizes["l2t_n"])
        await _guard(
            res,
            "loop_to_thread_throughput",
            loop_to_thread_throughput(impl, n, sizes["l2t_repeats"]),
        )
    reps = sizes.get(f"close_reps_{name}", sizes["close_reps"])
    for which in ("producer", "consumer"):
        if want(f"close_idle_{which}"):
            await _guard(res, f"close_idle_{which}", idle_close(impl, which, reps))
    for kind, n, pwindow in (
        ("items", sizes["proc_items_n"], (window, 64)),
        ("frames", sizes["proc_frames_n"], (FRAME_WINDOW, 1)),
    ):
        key = f"process_{kind}"
        if not want(key):
            continue
        res[key] = {}
        for method in impl.process_start_methods:
            if name == "minimal":
                coro = raw_queue_rate(kind, n, method, sizes["proc_repeats"], pwindow)
            else:
                coro = process_producer_rate(impl, kind, n, method, sizes["proc_repeats"], pwindow)
            await _guard(res[key], method, coro)
    return {"impl": name, "environment": _environment(name), "notes": impl.notes, "results": res}


def _environment(name: str) -> dict:
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    env = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "numpy": version("numpy"),
        "aiortc": version("aiortc"),
        "default_start_method": multiprocessing.get_start_method(),
    }
    if name != "minimal":
        import rtcbot.base

        env["rtcbot_version"] = version("rtcbot")
        env["rtcbot_base_file"] = rtcbot.base.__file__
    return env


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------


def _git_commit() -> dict:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(REPO_DIR), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def _run_child(name: str, python: str, args: argparse.Namespace) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--impl", name]
    if args.quick:
        cmd.append("--quick")
    if args.only:
        cmd += ["--only", args.only]
    cmd += ["--window", str(args.window)]
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    if name == "rtcbot":
        # Measure this checkout whether or not `pip install -e` was run; spawned children inherit
        # the variable.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_DIR / "src"), env.get("PYTHONPATH")) if p
        )
    else:
        env.pop("PYTHONPATH", None)
    print(f"== {name}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            text=True,
            timeout=args.child_timeout,
            env=env,
            cwd=BENCH_DIR,  # no checkout's src/ on the path of RTCBot 0.2.5's run
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"impl": name, "error": f"timed out after {args.child_timeout} s"}
    try:
        return json.loads(proc.stdout)
    except ValueError:
        return {
            "impl": name,
            "error": f"exit code {proc.returncode}, no JSON",
            "stdout_tail": proc.stdout[-2000:],
        }


def _ratio(a, b) -> float | None:
    try:
        r = a / b
    except (TypeError, ZeroDivisionError):
        return None
    return None if not math.isfinite(r) else float(f"{r:.4g}")


def _get(doc: dict, *path):
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def combine(children: dict[str, dict], sizes: dict, quick: bool, window) -> dict:
    """One JSON: each figure with its same-run baselines side by side, ratios and targets."""
    res = {name: doc.get("results", {}) for name, doc in children.items()}

    def side_by_side(key: str, field: str, sub: tuple = ()) -> dict:
        return {name: _get(res[name], key, *sub, field) for name in IMPLS if name in res}

    figures: dict = {}

    # 1. thread -> loop throughput
    v = side_by_side("thread_to_loop_throughput", "items_per_s")
    figures["thread_to_loop_throughput"] = {
        "unit": "items/s (median of repeats)",
        "items_per_s": v,
        "delivered_min": side_by_side("thread_to_loop_throughput", "delivered_min"),
        "dropped_max": side_by_side("thread_to_loop_throughput", "dropped_max"),
        "flow_waits_max": side_by_side("thread_to_loop_throughput", "flow_waits_max"),
        "ratio": {
            "rtcbot/rtcbot025": _ratio(v.get("rtcbot"), v.get("rtcbot025")),
            "rtcbot/minimal": _ratio(v.get("rtcbot"), v.get("minimal")),
        },
        "targets": {
            "rtcbot/rtcbot025 >= 5": _check(v.get("rtcbot"), v.get("rtcbot025"), 5),
            "rtcbot/minimal >= 0.8": _check(v.get("rtcbot"), v.get("minimal"), 0.8),
        },
        "flow_control": (
            f"window of {window} items in flight, the same for every implementation: the worker "
            "waits when the reader is that far behind and resumes at half. Needed because "
            "rtcbot's bridge is bounded (10,000 waiting items, then it drops the oldest and "
            "counts it): without it rtcbot drops, see thread_to_loop_unthrottled"
            if window
            else "none: the worker puts as fast as it can"
        ),
    }
    v = side_by_side("thread_to_loop_unthrottled", "items_per_s")
    figures["thread_to_loop_unthrottled"] = {
        "unit": "items delivered/s, one run, no flow control",
        "what": "the worker puts as fast as it can; a bounded bridge drops (rtcbot: oldest "
        "first, counted in statistics()), an unbounded one grows its queue",
        "items_per_s": v,
        "delivered": side_by_side("thread_to_loop_unthrottled", "delivered_min"),
        "dropped": side_by_side("thread_to_loop_unthrottled", "dropped_max"),
        "ratio": {
            "rtcbot/rtcbot025": _ratio(v.get("rtcbot"), v.get("rtcbot025")),
            "rtcbot/minimal": _ratio(v.get("rtcbot"), v.get("minimal")),
        },
    }

    # 2. latency
    lat = {
        name: {
            q: _get(res[name], "thread_to_loop_latency", q)
            for q in ("p50_us", "p90_us", "p99_us", "max_us")
        }
        for name in IMPLS
        if name in res
    }
    p99 = {name: lat[name]["p99_us"] for name in lat}
    p50 = {name: lat[name]["p50_us"] for name in lat}
    figures["thread_to_loop_latency_1khz"] = {
        "unit": "microseconds, arrival on the loop minus perf_counter_ns() at send",
        "latency_us": lat,
        "ratio_p50": {
            "rtcbot/rtcbot025": _ratio(p50.get("rtcbot"), p50.get("rtcbot025")),
            "rtcbot/minimal": _ratio(p50.get("rtcbot"), p50.get("minimal")),
        },
        "ratio_p99": {
            "rtcbot/rtcbot025": _ratio(p99.get("rtcbot"), p99.get("rtcbot025")),
            "rtcbot/minimal": _ratio(p99.get("rtcbot"), p99.get("minimal")),
        },
        "targets": {
            "rtcbot p99 < 500 us": None if p99.get("rtcbot") is None else p99["rtcbot"] < 500
        },
    }

    # 3. loop -> thread throughput
    v = side_by_side("loop_to_thread_throughput", "items_per_s")
    figures["loop_to_thread_throughput"] = {
        "unit": "items/s (median of repeats)",
        "items_per_s": v,
        "n": side_by_side("loop_to_thread_throughput", "n"),
        "full_retries_max": side_by_side("loop_to_thread_throughput", "full_retries_max"),
        "ratio": {
            "rtcbot/rtcbot025": _ratio(v.get("rtcbot"), v.get("rtcbot025")),
            "rtcbot/minimal": _ratio(v.get("rtcbot"), v.get("minimal")),
        },
        "targets": {"rtcbot/rtcbot025 >= 20": _check(v.get("rtcbot"), v.get("rtcbot025"), 20)},
    }

    # 4. close of idle threaded objects
    for which in ("producer", "consumer"):
        key = f"close_idle_{which}"
        c = side_by_side(key, "close_ms_median")
        a = side_by_side(key, "await_after_close_ms_median")
        figures[key] = {
            "unit": "milliseconds",
            "close_ms_median": c,
            "close_ms_max": side_by_side(key, "close_ms_max"),
            "await_after_close_ms_median": a,
            "await_after_close_ms_max": side_by_side(key, "await_after_close_ms_max"),
            "thread_ended_after_close_ms_max": side_by_side(key, "thread_ended_after_close_ms_max"),
            "ratio_close": {
                "rtcbot/rtcbot025": _ratio(c.get("rtcbot"), c.get("rtcbot025")),
                "rtcbot/minimal": _ratio(c.get("rtcbot"), c.get("minimal")),
            },
            "ratio_await_after_close": {
                "rtcbot/rtcbot025": _ratio(a.get("rtcbot"), a.get("rtcbot025")),
                "rtcbot/minimal": _ratio(a.get("rtcbot"), a.get("minimal")),
            },
            "targets": {
                "rtcbot close() < 10 ms": None if c.get("rtcbot") is None else c["rtcbot"] < 10
            },
            "what_await_means": {
                "rtcbot": "await obj: waits until the object has closed",
                "rtcbot025": (
                    "await obj == await obj.onClose(): waits for the close event, which close() "
                    "sets synchronously (after close() has already joined the thread); so it "
                    "returns at once"
                ),
                "minimal": "await obj: waits until the worker thread has ended",
            },
            "idle_object": (
                "producer: the base class's own _producer (RTCBot 0.2.5's waits on a "
                "queue.Queue with a 3 s timeout); consumer: seed-style _consumer blocked in "
                "self._get()"
                if which == "producer"
                else "seed-style _consumer loop blocked in self._get() with nothing to get"
            ),
        }

    # 5. process bridges
    for kind in ("items", "frames"):
        key = f"process_{kind}"
        per = {
            f"{name}/{method}": _get(res[name], key, method, "per_s")
            for name in IMPLS
            if name in res
            for method in ("spawn", "fork")
            if _get(res[name], key, method) is not None
        }
        figures[key] = {
            "unit": ("items/s" if kind == "items" else "640x480x3 uint8 frames/s")
            + ", first to last item on the loop",
            "per_s": per,
            "baseline": "minimal = raw multiprocessing.Queue, same child loop, same start method, "
            "parent reads with blocking get() in a thread",
            "ratio": {
                "rtcbot/raw (spawn)": _ratio(per.get("rtcbot/spawn"), per.get("minimal/spawn")),
                "rtcbot/raw (fork)": _ratio(per.get("rtcbot/fork"), per.get("minimal/fork")),
                "rtcbot025/raw (fork)": _ratio(per.get("rtcbot025/fork"), per.get("minimal/fork")),
                "rtcbot(spawn)/rtcbot025(fork)": _ratio(
                    per.get("rtcbot/spawn"), per.get("rtcbot025/fork")
                ),
                "rtcbot(fork)/rtcbot025(fork)": _ratio(
                    per.get("rtcbot/fork"), per.get("rtcbot025/fork")
                ),
            },
        }

    errors = {
        name: doc["error"] for name, doc in children.items() if isinstance(doc.get("error"), str)
    }
    targets = {
        f"{key}: {target}": ok
        for key, fig in figures.items()
        for target, ok in fig.get("targets", {}).items()
    }
    return {
        "benchmark": "bridges",
        "mode": "quick" if quick else "full",
        "targets": targets,
        "all_targets_met": all(ok is True for ok in targets.values()),
        "meta": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "git": _git_commit(),
            "sizes": sizes,
            "flow_window": window,
            "impls": {
                name: {"environment": doc.get("environment"), "notes": doc.get("notes")}
                for name, doc in children.items()
            },
        },
        "figures": figures,
        "errors": errors,
        "raw": children,
    }


def _finite(value):
    """The document with NaN/inf turned into null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _check(a, b, at_least: float) -> bool | None:
    r = _ratio(a, b)
    return None if r is None else r >= at_least


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=IMPLS, help="run one implementation (child mode)")
    parser.add_argument("--quick", action="store_true", help="about 20 s smoke run")
    parser.add_argument("--only", help="comma-separated figure keys to run (default: all)")
    parser.add_argument(
        "--impls", default=",".join(IMPLS), help="implementations to run (default: all three)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help="flow-control window of figure 1, items in flight (default: %(default)s; "
        "0: none, the worker puts as fast as it can)",
    )
    parser.add_argument("--child-timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    window = args.window or None
    only = set(args.only.split(",")) if args.only else None

    if args.impl:
        doc = asyncio.run(run_impl(args.impl, sizes, window, only))
        json.dump(_finite(doc), sys.stdout)
        sys.stdout.write("\n")
        return 0

    from _venv import ensure_rtcbot025

    children = {}
    for name in args.impls.split(","):
        if name == "rtcbot025":
            try:
                python = str(ensure_rtcbot025())
            except Exception as exc:
                children[name] = {"impl": name, "error": f"venv: {exc!r}"}
                continue
        else:
            python = sys.executable
        children[name] = _run_child(name, python, args)
    doc = combine(children, sizes, args.quick, window)
    text = json.dumps(_finite(doc), indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
