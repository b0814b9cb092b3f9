"""The fuzz harness: profiles, a per-call watchdog, the contract check and the case counts.

Every fuzz case goes through :func:`case`::

    with case("load_image/array", names=[shape_text]) as c:
        c.result = load_image(arr, max_pixels=64)

which (1) runs the body under a watchdog (``SIGALRM`` raises :class:`Hang` in the main
thread after ``seconds``; ``faulthandler`` kills the process with a traceback if even that
cannot interrupt a C call), (2) accepts a result or a :class:`~preproc.errors.PreprocError`
whose message names the input (one of ``names``), (3) turns anything else into a test
failure, and (4) counts the case under its kind (tried / result / typed error / broke the
contract). The counts are printed at the end of the session (tests/fuzz/conftest.py) and
written as JSON to ``$PREPROC_FUZZ_REPORT`` when that is set.

Profiles (``$PREPROC_FUZZ_PROFILE``): ``fast`` (default, part of ``make test``: few
examples, derandomized so a run is reproducible) and ``long`` (``make fuzz``:
:data:`LONG_FACTOR` times as many, random, every truncation offset).
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings

from preproc.errors import PreprocError

PROFILE = os.environ.get("PREPROC_FUZZ_PROFILE", "fast")
if PROFILE not in ("fast", "long"):
    raise ValueError(f"PREPROC_FUZZ_PROFILE has to be 'fast' or 'long' but is {PROFILE!r}")
LONG = PROFILE == "long"
#: How many times more examples the long profile runs (``$PREPROC_FUZZ_LONG_FACTOR`` overrides it;
#: the explicit ``long=`` counts of the slow tests scale with it).
DEFAULT_LONG_FACTOR = 8
LONG_FACTOR = int(os.environ.get("PREPROC_FUZZ_LONG_FACTOR", DEFAULT_LONG_FACTOR))
#: Default per-call bound in seconds (a loaded 2-core machine: generous, it catches hangs).
DEFAULT_SECONDS = 60.0

#: kind -> Counter(tried, result, error, broken)
TALLY: dict[str, Counter] = defaultdict(Counter)
#: kind -> first few contract breaks (for the report)
BROKEN: dict[str, list[str]] = defaultdict(list)


def examples(n: int, long: int | None = None) -> int:
    """``n`` examples in the fast profile; ``long`` (default ``LONG_FACTOR * n``) in the long one."""
    if not LONG:
        return n
    if long is None:
        return n * LONG_FACTOR
    return max(n, round(long * LONG_FACTOR / DEFAULT_LONG_FACTOR))


def fuzz_settings(n: int, long: int | None = None, **kw: Any) -> settings:
    """Hypothesis settings of a fuzz test: ``examples(n, long)``, no deadline (the watchdog bounds time)."""
    return settings(
        max_examples=examples(n, long),
        deadline=None,
        derandomize=not LONG,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.function_scoped_fixture],
        **kw,
    )


class Hang(AssertionError):
    """A fuzz case ran past its time bound."""


@contextmanager
def watchdog(seconds: float, what: str) -> Iterator[None]:
    """Fail with :class:`Hang` when the body runs longer than ``seconds``.

    In the main thread ``SIGALRM`` interrupts Python code and blocking system calls
    (``open()`` of a FIFO); a C loop that never returns to Python is caught by
    ``faulthandler``, which dumps every thread's stack and exits the process after
    ``3 * seconds``.
    """
    main = threading.current_thread() is threading.main_thread()
    old = None
    if main:
        def _raise(signum, frame):
            raise Hang(f"{what}: no answer within {seconds:g} s (a hang)")

        old = signal.signal(signal.SIGALRM, _raise)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(3 * seconds + 10, exit=True, file=sys.__stderr__)  # the real fd 2
    try:
        yield
    finally:
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()


@dataclass
class Case:
    kind: str
    result: Any = None
    error: PreprocError | None = None


def count(kind: str, outcome: str, detail: str = "") -> None:
    """Count one case of ``kind``: outcome ``result``, ``error`` or ``broken``."""
    TALLY[kind]["tried"] += 1
    TALLY[kind][outcome] += 1
    if outcome == "broken" and len(BROKEN[kind]) < 5:
        BROKEN[kind].append(detail[:300])


@contextmanager
def case(kind: str, names: Sequence[str] = (), seconds: float = DEFAULT_SECONDS,
         expect: type[PreprocError] | tuple[type[PreprocError], ...] = PreprocError) -> Iterator[Case]:
    """Run one fuzz case: a result, or an ``expect`` error whose message contains one of ``names``."""
    c = Case(kind)
    try:
        with watchdog(seconds, kind):
            yield c
    except PreprocError as e:
        msg = str(e)
        if not isinstance(e, expect):
            count(kind, "broken", f"{type(e).__name__}: {msg}")
            raise AssertionError(f"{kind}: expected {expect}, got {type(e).__name__}: {msg}") from e
        if names and not any(n in msg for n in names):
            count(kind, "broken", f"message does not name the input {list(names)}: {msg}")
            raise AssertionError(f"{kind}: the message does not name the input (any of {list(names)}): {msg!r}") from e
        c.error = e
        count(kind, "error")
        return
    except BaseException as e:
        count(kind, "broken", f"{type(e).__name__}: {e}")
        raise
    count(kind, "result")


def report_rows() -> list[dict[str, Any]]:
    """One row per kind: tried, results, typed errors, contract breaks."""
    return [{"kind": k, "tried": c["tried"], "result": c["result"], "error": c["error"], "broken": c["broken"],
             "examples_of_breaks": BROKEN.get(k, [])} for k, c in sorted(TALLY.items())]


def format_report() -> str:
    rows = report_rows()
    if not rows:
        return ""
    w = max(len(r["kind"]) for r in rows)
    lines = [f"fuzz profile {PROFILE}: cases per kind", f"{'kind':<{w}}  {'tried':>7} {'result':>7} {'error':>7} {'broken':>7}"]
    for r in rows:
        lines.append(f"{r['kind']:<{w}}  {r['tried']:>7} {r['result']:>7} {r['error']:>7} {r['broken']:>7}")
    tot = Counter()
    for r in rows:
        tot.update({k: r[k] for k in ("tried", "result", "error", "broken")})
    lines.append(f"{'total':<{w}}  {tot['tried']:>7} {tot['result']:>7} {tot['error']:>7} {tot['broken']:>7}")
    return "\n".join(lines)


def write_report(path: str) -> None:
    from preproc.cache import write_text_atomic

    write_text_atomic(path, json.dumps({"profile": PROFILE, "long_factor": LONG_FACTOR, "rows": report_rows()}, indent=1))


def markdown_table(report: dict[str, Any]) -> str:
    """The counts of a ``$PREPROC_FUZZ_REPORT`` file as a Markdown table (for docs/reliability.md)."""
    lines = ["| kind | tried | result | typed error | broke the contract |", "|---|---:|---:|---:|---:|"]
    tot = Counter()
    for r in report["rows"]:
        lines.append(f"| {r['kind']} | {r['tried']} | {r['result']} | {r['error']} | {r['broken']} |")
        tot.update({k: r[k] for k in ("tried", "result", "error", "broken")})
    lines.append(f"| **total** | {tot['tried']} | {tot['result']} | {tot['error']} | {tot['broken']} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python tests/fuzz/fuzzkit.py out/fuzz-report.json
    import sys

    with open(sys.argv[1], encoding="utf-8") as f:
        print(markdown_table(json.load(f)))
