"""Shared helpers of the speed benchmarks: machine facts, load average, timing, results file.

Timings are only comparable on a quiet machine. Every section written to
``bench/RESULTS.md`` says the 1-minute load average before and after its
measurements; ``wait_for_quiet`` holds a run back until the load has dropped.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "RESULTS.md"
RESULTS_TITLE = "# Benchmark results\n\nEach section says the command that produced it.\n"
QUIET_LOAD = 1.3


def load_average() -> float:
    """The 1-minute load average."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float(os.getloadavg()[0])


def wait_for_quiet(max_wait_s: float, threshold: float = QUIET_LOAD, poll_s: float = 30.0) -> float:
    """Wait until the 1-minute load average is below ``threshold`` or ``max_wait_s`` has passed.

    Returns the load average when the wait ended.
    """
    deadline = time.monotonic() + max_wait_s
    load = load_average()
    while load >= threshold and time.monotonic() < deadline:
        print(f"load average {load:.2f} >= {threshold}; waiting for a quiet machine", flush=True)
        time.sleep(min(poll_s, max(1.0, deadline - time.monotonic())))
        load = load_average()
    return load


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_line() -> str:
    flags = cpu_flags()
    extras = [f for f in ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile") if f in flags]
    return (
        f"Machine: {os.cpu_count()} CPU cores ({cpu_name()}; {', '.join(extras) or 'no AVX-512'}), no GPU, "
        f"Python {platform.python_version()}."
    )


def versions_line(*modules: str) -> str:
    parts = []
    from importlib import metadata

    for name in modules:
        try:
            module = __import__(name)
            version = getattr(module, "__version__", None)
            if version is None:
                version = metadata.version(name.replace("_", "-"))
            parts.append(f"{name} {version}")
        except Exception:
            parts.append(f"{name} (not installed)")
    return "Versions: " + ", ".join(parts) + "."


def command_line(script: str) -> str:
    return f"python bench/{script} " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def timed(fn, *args, repeats: int = 3, warmup: int = 1, **kwargs) -> tuple[float, object]:
    """Median seconds of ``fn(*args, **kwargs)`` over ``repeats`` calls after ``warmup`` calls; and the last result."""
    result = None
    for _ in range(warmup):
        result = fn(*args, **kwargs)
    times = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def fmt_s(seconds: float) -> str:
    """Seconds with 3 significant digits, switching to ms below 0.1 s."""
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds < 0.1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def section_header(title: str, script: str) -> list[str]:
    return [
        f"\n## {title} ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)\n",
        f"Command: `{command_line(script)}`\n",
        machine_line(),
    ]


def load_line(before: float, after: float | None = None) -> str:
    """The load averages of a section; quiet or not is judged before the run (afterwards it includes the run)."""
    after = load_average() if after is None else after
    quiet = (
        "quiet machine"
        if before < QUIET_LOAD
        else "NOT quiet: other jobs shared the 2 cores, times are pessimistic"
    )
    return (
        f"1-minute load average: {before:.2f} before the measurements ({quiet}), {after:.2f} after "
        "(that one includes this benchmark's own threads)."
    )


def append_results(lines: list[str], results: str | os.PathLike = RESULTS) -> None:
    """Append a section to the results file (created with a title when missing); never rewrites it."""
    results = Path(results)
    text = "\n".join(lines).rstrip("\n") + "\n"
    if not results.exists():
        results.write_text(RESULTS_TITLE)
    with results.open("a") as handle:
        handle.write(text)
    print(text)
