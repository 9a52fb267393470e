"""Prometheus metrics of one daemon, in a registry of its own.

Names follow the Prometheus conventions: `sandboxd_` prefix, `_total` for counters,
base units (`_seconds`). Label sets known at start (languages x verdicts, retirement
reasons, SQS operations) are created up front so dashboards and `rate()` see zeros
instead of missing series. Pool gauges are read from the pool at scrape time, so they
can never drift from the pool's own bookkeeping.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from sandboxd import __version__
from sandboxd.models import Verdict
from sandboxd.reasons import RetireReason

log = logging.getLogger(__name__)

# Job phases range from a few milliseconds (acquiring a warm sandbox) to the
# two-minute ceiling of a wall-clock limit.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)

# Every retirement reason, so each series exists from the start.
RETIREMENT_REASONS: Final = tuple(reason.value for reason in RetireReason)
SQS_OPERATIONS: Final = ("receive", "send", "delete", "change_visibility")
POOL_STATES: Final = ("idle", "busy", "starting", "recycling")


class PoolStatsLike(Protocol):
    """What `sandboxd.pool.PoolStats` offers; a Protocol so tests can hand in plain objects."""

    @property
    def pool(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def idle(self) -> int: ...
    @property
    def busy(self) -> int: ...
    @property
    def starting(self) -> int: ...


PoolStatsFn = Callable[[], Iterable[PoolStatsLike]]
TargetSizeFn = Callable[[str], int]


class _PoolCollector(Collector):
    """Pool gauges computed at scrape time from the pool's own counts."""

    def __init__(
        self,
        stats: PoolStatsFn,
        target_size: TargetSizeFn | None,
        host_slots: Callable[[], int] | None = None,
    ) -> None:
        self._stats = stats
        self._target_size = target_size
        self._host_slots = host_slots

    def _families(self) -> dict[str, GaugeMetricFamily]:
        lang = ["language"]
        return {
            "sandboxes": GaugeMetricFamily(
                "sandboxd_pool_sandboxes",
                "Sandboxes of a pool by state (recycling: being reset or retired).",
                labels=["language", "state"],
            ),
            "size": GaugeMetricFamily(
                "sandboxd_pool_size", "Sandboxes a pool holds now, in any state.", labels=lang
            ),
            "target": GaugeMetricFamily(
                "sandboxd_pool_target_size",
                "Warm sandboxes a pool aims to keep (its slots and its spares).",
                labels=lang,
            ),
            "slots": GaugeMetricFamily(
                "sandboxd_pool_slots",
                "Jobs a pool may run at once: its share of the host's slots.",
                labels=lang,
            ),
            "demand": GaugeMetricFamily(
                "sandboxd_pool_demand",
                "Jobs a pool held at once recently: arrival rate x hold time (Little's law).",
                labels=lang,
            ),
            "host": GaugeMetricFamily(
                "sandboxd_host_slots", "Job slots of this host, shared by its pools."
            ),
        }

    def describe(self) -> Iterable[Metric]:
        return self._families().values()

    def collect(self) -> Iterable[Metric]:
        f = self._families()
        try:
            stats = list(self._stats())
            host = self._host_slots() if self._host_slots is not None else None
        except Exception:
            # A scrape must not fail because the pool is in a bad state; the rest of
            # the metrics are exactly what an operator needs then.
            log.exception("reading pool stats for metrics failed")
            return []
        shown = ["sandboxes", "size"]
        for s in stats:
            recycling = max(0, s.size - s.idle - s.busy - s.starting)
            for state, value in zip(
                POOL_STATES, (s.idle, s.busy, s.starting, recycling), strict=True
            ):
                f["sandboxes"].add_metric([s.pool, state], value)
            f["size"].add_metric([s.pool], s.size)
            target = getattr(s, "target", None)
            if self._target_size is not None:
                target = self._target_size(s.pool)
            if target is not None:
                f["target"].add_metric([s.pool], target)
            for name in ("slots", "demand"):
                if (figure := getattr(s, name, None)) is not None:
                    f[name].add_metric([s.pool], figure)
        for name in ("target", "slots", "demand"):
            if f[name].samples:
                shown.append(name)
        if host is not None:
            f["host"].add_metric([], host)
            shown.append("host")
        return [f[name] for name in shown]


class Metrics:
    """All metrics of one daemon. Every method is cheap and safe to call from the event loop."""

    def __init__(
        self,
        languages: Iterable[str] = (),
        *,
        version: str = __version__,
        process_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

        Gauge(
            "sandboxd_build_info", "Always 1; labels say what runs.", ["version"], registry=r
        ).labels(version).set(1)

        self._jobs = Counter(
            "sandboxd_jobs", "Jobs finished, by verdict.", ["language", "verdict"], registry=r
        )
        self._queue_wait = Histogram(
            "sandboxd_queue_wait_seconds",
            "Time from a job's enqueueing (SQS SentTimestamp) to its receipt here.",
            ["language"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._acquire = Histogram(
            "sandboxd_sandbox_acquire_seconds",
            "Time to get a sandbox from the warm pool.",
            ["language"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._run = Histogram(
            "sandboxd_run_seconds",
            "Time a job ran inside its sandbox.",
            ["language"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._duration = Histogram(
            "sandboxd_job_duration_seconds",
            "End-to-end time of a job, from enqueueing to its result.",
            ["language"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._in_flight = Gauge("sandboxd_jobs_in_flight", "Jobs running now.", registry=r)

        self._starts = Counter(
            "sandboxd_sandbox_starts", "Sandboxes started.", ["language"], registry=r
        )
        self._start_seconds = Histogram(
            "sandboxd_sandbox_start_seconds",
            "Time to create and start a sandbox.",
            ["language"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._retirements = Counter(
            "sandboxd_sandbox_retirements",
            "Sandboxes retired instead of reused, by reason.",
            ["language", "reason"],
            registry=r,
        )

        self._sqs_errors = Counter(
            "sandboxd_sqs_errors", "Failed SQS calls, by operation.", ["operation"], registry=r
        )
        for op in SQS_OPERATIONS:
            self._sqs_errors.labels(op)
        self._received = Counter(
            "sandboxd_messages_received", "Job messages received from SQS.", registry=r
        )
        self._dead_lettered = Counter(
            "sandboxd_dead_lettered",
            "Messages sent to the dead-letter queue (no reply address known).",
            registry=r,
        )
        self._duplicates = Counter(
            "sandboxd_duplicate_deliveries",
            "Deliveries of a job id already finished or running here.",
            registry=r,
        )
        self._results_sent = Counter(
            "sandboxd_results_sent", "Result messages sent to a reply queue.", registry=r
        )
        self._ready = Gauge("sandboxd_ready", "1 when /readyz last said ready, else 0.", registry=r)

        self._languages: set[str] = set()
        for language in languages:
            self.add_language(language)
        self._pool_collector: _PoolCollector | None = None

    # -- set-up ---------------------------------------------------------------------------

    def add_language(self, language: str) -> None:
        """Create the zero series of a language (or image pool); idempotent."""
        if language in self._languages:
            return
        self._languages.add(language)
        for verdict in Verdict:
            self._jobs.labels(language, verdict.value)
        for hist in (self._queue_wait, self._acquire, self._run, self._duration):
            hist.labels(language)
        self._starts.labels(language)
        self._start_seconds.labels(language)
        for reason in RETIREMENT_REASONS:
            self._retirements.labels(language, reason)

    def watch_pool(
        self,
        stats: PoolStatsFn,
        target_size: TargetSizeFn | None = None,
        host_slots: Callable[[], int] | None = None,
    ) -> None:
        """Export pool gauges read from `stats()` (e.g. `Pool.stats`) at each scrape.

        The target, slots and demand of a pool come from its stats when they carry them
        (`target_size(language)`, when given, overrides the target); `host_slots()` gives
        `sandboxd_host_slots`. A family with no figure is absent. Calling again replaces
        the previous source.
        """
        if self._pool_collector is not None:
            self.registry.unregister(self._pool_collector)
        self._pool_collector = _PoolCollector(stats, target_size, host_slots)
        self.registry.register(self._pool_collector)

    # -- jobs -----------------------------------------------------------------------------

    def job_finished(
        self,
        language: str,
        verdict: Verdict | str,
        queue_wait_s: float,
        acquire_s: float,
        run_s: float,
        total_s: float,
    ) -> None:
        """Count one finished job and observe its phase durations (seconds)."""
        self.add_language(language)
        self._jobs.labels(language, str(verdict)).inc()
        self._queue_wait.labels(language).observe(max(0.0, queue_wait_s))
        self._acquire.labels(language).observe(max(0.0, acquire_s))
        self._run.labels(language).observe(max(0.0, run_s))
        self._duration.labels(language).observe(max(0.0, total_s))

    def job_started(self) -> None:
        self._in_flight.inc()

    def job_ended(self) -> None:
        self._in_flight.dec()

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a job as in flight for the duration of the block, whatever happens in it."""
        self.job_started()
        try:
            yield
        finally:
            self.job_ended()

    # -- pool hooks (signatures match `Pool(on_start=..., on_retire=...)`) ----------------

    def sandbox_started(self, language: str, seconds: float) -> None:
        self.add_language(language)
        self._starts.labels(language).inc()
        self._start_seconds.labels(language).observe(max(0.0, seconds))

    def sandbox_retired(self, language: str, reason: str) -> None:
        self.add_language(language)
        self._retirements.labels(language, reason).inc()

    # -- queue ----------------------------------------------------------------------------

    def sqs_error(self, operation: str) -> None:
        """A failed SQS call; `operation` is one of `SQS_OPERATIONS`."""
        self._sqs_errors.labels(operation).inc()

    def messages_received(self, count: int = 1) -> None:
        self._received.inc(count)

    def dead_lettered(self) -> None:
        self._dead_lettered.inc()

    def duplicate_delivery(self) -> None:
        self._duplicates.inc()

    def result_sent(self) -> None:
        self._results_sent.inc()

    def set_ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    # -- exposition -----------------------------------------------------------------------

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (body, content type); `accept` is the scraper's Accept header.

        Without an Accept header asking for something newer this is the classic text
        format 0.0.4, which every Prometheus version parses.
        """
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
