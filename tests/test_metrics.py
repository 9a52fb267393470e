"""The daemon's Prometheus metrics: names, labels, and that each method moves its series."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from sandboxd.metrics import RETIREMENT_REASONS, SQS_OPERATIONS, Metrics
from sandboxd.models import Verdict
from sandboxd.pool import PoolStats


def families(m: Metrics) -> dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]:
    """name -> (type, samples) from the rendered text, as a scraper sees it."""
    body, _ = m.render()
    return {
        f.name: (f.type, [(s.name, s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(body.decode())
    }


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_metric_names_follow_the_conventions() -> None:
    """Every sandboxd metric has the prefix; counters end in _total; histograms are _seconds."""
    m = Metrics(["python"])
    fams = {n: t for n, (t, _) in families(m).items() if n.startswith("sandboxd_")}
    expected = {
        "sandboxd_jobs": "counter",
        "sandboxd_queue_wait_seconds": "histogram",
        "sandboxd_sandbox_acquire_seconds": "histogram",
        "sandboxd_run_seconds": "histogram",
        "sandboxd_job_duration_seconds": "histogram",
        "sandboxd_jobs_in_flight": "gauge",
        "sandboxd_sandbox_starts": "counter",
        "sandboxd_sandbox_start_seconds": "histogram",
        "sandboxd_sandbox_retirements": "counter",
        "sandboxd_sqs_errors": "counter",
        "sandboxd_messages_received": "counter",
        "sandboxd_dead_lettered": "counter",
        "sandboxd_duplicate_deliveries": "counter",
        "sandboxd_results_sent": "counter",
        "sandboxd_ready": "gauge",
        "sandboxd_build_info": "gauge",
    }
    for name, kind in expected.items():
        assert fams.get(name) == kind, name
    body = m.render()[0].decode()
    for name, kind in fams.items():
        if kind == "counter":
            assert f"\n{name}_total" in body, name
        if kind == "histogram":
            assert name.endswith("_seconds"), name


def test_known_label_sets_start_at_zero() -> None:
    """Languages x verdicts, retirement reasons and SQS operations exist before anything happens."""
    m = Metrics(["python", "ruby"])
    for language in ("python", "ruby"):
        for verdict in Verdict:
            assert value(m, "sandboxd_jobs_total", language=language, verdict=verdict) == 0
        for reason in RETIREMENT_REASONS:
            assert (
                value(m, "sandboxd_sandbox_retirements_total", language=language, reason=reason)
                == 0
            )
        assert value(m, "sandboxd_run_seconds_count", language=language) == 0
        assert value(m, "sandboxd_sandbox_starts_total", language=language) == 0
    for op in SQS_OPERATIONS:
        assert value(m, "sandboxd_sqs_errors_total", operation=op) == 0


def test_job_finished_counts_the_verdict_and_observes_every_phase() -> None:
    """job_finished adds one to its verdict and one observation to each duration histogram."""
    m = Metrics(["python"])
    m.job_finished("python", Verdict.TIMEOUT, 0.2, 0.004, 10.0, 10.3)
    m.job_finished("python", "passed", 0.1, 0.01, 1.0, 1.2)
    assert value(m, "sandboxd_jobs_total", language="python", verdict="timeout") == 1
    assert value(m, "sandboxd_jobs_total", language="python", verdict="passed") == 1
    assert value(m, "sandboxd_jobs_total", language="python", verdict="failed") == 0
    assert value(m, "sandboxd_run_seconds_count", language="python") == 2
    assert value(m, "sandboxd_run_seconds_sum", language="python") == 11.0
    assert value(m, "sandboxd_sandbox_acquire_seconds_bucket", language="python", le="0.005") == 1
    assert value(m, "sandboxd_job_duration_seconds_bucket", language="python", le="120.0") == 2
    assert value(m, "sandboxd_queue_wait_seconds_sum", language="python") == 0.2 + 0.1


def test_a_new_language_gets_its_series_on_first_use() -> None:
    """A pool that was not known at start (an image pool) gets all its series when first seen."""
    m = Metrics()
    m.sandbox_started("image:custom", 0.8)
    assert value(m, "sandboxd_sandbox_starts_total", language="image:custom") == 1
    assert value(m, "sandboxd_sandbox_start_seconds_count", language="image:custom") == 1
    assert value(m, "sandboxd_jobs_total", language="image:custom", verdict="passed") == 0


def test_counters_and_gauges_move() -> None:
    """Each event method moves exactly its own series."""
    m = Metrics(["python"])
    m.sandbox_retired("python", "memory")
    m.sqs_error("receive")
    m.sqs_error("receive")
    m.messages_received(3)
    m.dead_lettered()
    m.duplicate_delivery()
    m.result_sent()
    m.set_ready(True)
    assert value(m, "sandboxd_sandbox_retirements_total", language="python", reason="memory") == 1
    assert value(m, "sandboxd_sandbox_retirements_total", language="python", reason="age") == 0
    assert value(m, "sandboxd_sqs_errors_total", operation="receive") == 2
    assert value(m, "sandboxd_sqs_errors_total", operation="send") == 0
    assert value(m, "sandboxd_messages_received_total") == 3
    assert value(m, "sandboxd_dead_lettered_total") == 1
    assert value(m, "sandboxd_duplicate_deliveries_total") == 1
    assert value(m, "sandboxd_results_sent_total") == 1
    assert value(m, "sandboxd_ready") == 1
    m.set_ready(False)
    assert value(m, "sandboxd_ready") == 0


def test_in_flight_counts_jobs_inside_the_block_even_on_error() -> None:
    """The in-flight gauge is raised inside in_flight() and restored however the block ends."""
    m = Metrics()
    with m.in_flight():
        assert value(m, "sandboxd_jobs_in_flight") == 1
    try:
        with m.in_flight():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert value(m, "sandboxd_jobs_in_flight") == 0
    m.job_started()
    assert value(m, "sandboxd_jobs_in_flight") == 1
    m.job_ended()
    assert value(m, "sandboxd_jobs_in_flight") == 0


def test_pool_gauges_are_read_at_scrape_time() -> None:
    """Pool gauges reflect the stats callable at each scrape, with every state labelled."""
    stats = [PoolStats("python", size=3, idle=1, busy=1, starting=0)]
    m = Metrics(["python"])
    m.watch_pool(lambda: stats, target_size=lambda _: 2)
    _, samples = families(m)["sandboxd_pool_sandboxes"]
    by_state = {labels["state"]: v for _, labels, v in samples if labels["language"] == "python"}
    assert by_state == {"idle": 1, "busy": 1, "starting": 0, "recycling": 1}
    assert value(m, "sandboxd_pool_size", language="python") == 3
    assert value(m, "sandboxd_pool_target_size", language="python") == 2
    stats[0] = PoolStats("python", size=2, idle=2, busy=0, starting=0)
    assert value(m, "sandboxd_pool_sandboxes", language="python", state="idle") == 2


def test_a_failing_pool_source_does_not_break_the_scrape() -> None:
    """If reading pool stats raises, the scrape still returns every other metric."""

    def broken() -> list[PoolStats]:
        raise RuntimeError("pool gone")

    m = Metrics(["python"])
    m.watch_pool(broken)
    fams = families(m)
    assert "sandboxd_jobs" in fams
    assert "sandboxd_pool_sandboxes" not in fams


def test_watch_pool_again_replaces_the_source() -> None:
    """A second watch_pool replaces the first instead of failing on duplicate names."""

    @dataclass
    class Stats:
        pool: str
        size: int
        idle: int = 0
        busy: int = 0
        starting: int = 0

    m = Metrics()
    m.watch_pool(lambda: [Stats("python", 1, idle=1)])
    m.watch_pool(lambda: [Stats("go", 2, idle=2)])
    assert value(m, "sandboxd_pool_size", language="python") is None
    assert value(m, "sandboxd_pool_size", language="go") == 2


def test_each_instance_has_its_own_registry() -> None:
    """Two Metrics never share series (and creating many never collides)."""
    a, b = Metrics(["python"]), Metrics(["python"])
    a.result_sent()
    assert value(a, "sandboxd_results_sent_total") == 1
    assert value(b, "sandboxd_results_sent_total") == 0


def test_render_negotiates_the_format() -> None:
    """Plain scrapes get text format 0.0.4; an OpenMetrics Accept header gets OpenMetrics."""
    m = Metrics(process_metrics=False)
    body, content_type = m.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    assert b"sandboxd_ready 0.0" in body
    body, content_type = m.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_capacity_gauges_come_from_the_pool_stats() -> None:
    """Slots, target and demand per language and the host's slots, read at scrape time."""
    stats = [PoolStats("python", 3, 1, 2, 0, target=3, slots=2, demand=1.5, fixed=False)]
    m = Metrics(["python"])
    m.watch_pool(lambda: stats, host_slots=lambda: 4)
    assert value(m, "sandboxd_pool_slots", language="python") == 2
    assert value(m, "sandboxd_pool_target_size", language="python") == 3
    assert value(m, "sandboxd_pool_demand", language="python") == 1.5
    assert value(m, "sandboxd_host_slots") == 4
    stats[0] = PoolStats("python", 1, 1, 0, 0, target=1, slots=1, demand=0.0, fixed=False)
    assert value(m, "sandboxd_pool_demand", language="python") == 0.0
