from __future__ import annotations

import logging
import re
from pathlib import Path

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxd.config import (
    OTHER_VARIABLES,
    ConfigError,
    Settings,
    env_name,
    load_settings,
    unknown_variables,
)
from sandboxd.limits import DEFAULT_MAXIMA, Limits


def config_error(env: dict[str, str]) -> str:
    """The message `load_settings(env)` fails with, checked to be one line."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    return message


def test_defaults() -> None:
    """With no variables set, the daemon runs an embedded SQS and the documented defaults."""
    settings = load_settings({})
    assert settings.sqs == "embedded"
    assert settings.embedded_sqs_port == 9324
    assert (settings.jobs_queue, settings.results_queue) == ("sandboxd-jobs", "sandboxd-results")
    assert settings.dead_letter_queue is None, "unset: the jobs queue's redrive target"
    assert settings.embedded_dead_letter_queue == "sandboxd-jobs-dlq"
    assert settings.max_receive_count == 3
    assert settings.region == "us-east-1"
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8700)
    assert settings.pool_sizes == {}, "no fixed sizes: pools are planned from demand"
    assert settings.served_languages == ["python"]
    assert settings.slots is None and settings.host_slots >= 1
    assert settings.pool_floor == 1 and settings.warm_memory_mb is None
    assert settings.pool_spares == 1
    assert settings.maxima == DEFAULT_MAXIMA
    assert settings.grace_seconds == 30.0
    assert settings.heartbeat_seconds < settings.visibility_timeout
    assert 0 <= settings.wait_time_seconds <= 20
    assert settings.host_id
    assert settings.state_dir == Path(".cache")
    assert settings.embedded_sqs_log == Path(".cache/embedded-sqs.log")


def test_reads_every_field_from_its_variable() -> None:
    """Each field is read from `SANDBOXD_<FIELD>`, parsed to its type."""
    settings = load_settings(
        {
            "SANDBOXD_SQS": "aws",
            "SANDBOXD_EMBEDDED_SQS_PORT": "9325",
            "SANDBOXD_JOBS_QUEUE": "https://sqs.eu-west-1.amazonaws.com/1/jobs",
            "SANDBOXD_RESULTS_QUEUE": "results",
            "SANDBOXD_DEAD_LETTER_QUEUE": "dead_letters",
            "SANDBOXD_MAX_RECEIVE_COUNT": "7",
            "SANDBOXD_REGION": "eu-west-1",
            "SANDBOXD_STATE_DIR": "/var/lib/sandboxd",
            "SANDBOXD_HTTP_ADDR": "[::1]:9000",
            "SANDBOXD_POOL_SIZES": "python=3",
            "SANDBOXD_POOL_SPARES": "0",
            "SANDBOXD_MAX_WALL_SECONDS": "1.5",
            "SANDBOXD_MAX_CPU_SECONDS": "2",
            "SANDBOXD_MAX_MEMORY_MB": "512",
            "SANDBOXD_MAX_PIDS": "64",
            "SANDBOXD_MAX_OUTPUT_BYTES": "1000",
            "SANDBOXD_MAX_DISK_MB": "10",
            "SANDBOXD_GRACE_SECONDS": "0",
            "SANDBOXD_VISIBILITY_TIMEOUT": "30",
            "SANDBOXD_HEARTBEAT_SECONDS": "7.5",
            "SANDBOXD_WAIT_TIME_SECONDS": "20",
            "SANDBOXD_HOST_ID": "host-a",
        }
    )
    assert settings.sqs == "aws"
    assert settings.embedded_sqs_port == 9325
    assert settings.jobs_queue == "https://sqs.eu-west-1.amazonaws.com/1/jobs"
    assert settings.dead_letter_queue == settings.embedded_dead_letter_queue == "dead_letters"
    assert settings.max_receive_count == 7
    assert settings.region == "eu-west-1"
    assert settings.embedded_sqs_log == Path("/var/lib/sandboxd/embedded-sqs.log")
    assert (settings.http_host, settings.http_port) == ("::1", 9000)
    assert settings.pool_sizes == {"python": 3}
    assert settings.pool_spares == 0
    assert settings.maxima == Limits(
        wall_seconds=1.5, cpu_seconds=2.0, memory_mb=512, pids=64, output_bytes=1000, disk_mb=10
    )
    assert settings.grace_seconds == 0
    assert (settings.visibility_timeout, settings.heartbeat_seconds) == (30, 7.5)
    assert settings.wait_time_seconds == 20
    assert settings.host_id == "host-a"


def test_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`load_settings()` reads `os.environ`; an explicit mapping ignores it."""
    monkeypatch.setenv("SANDBOXD_MAX_PIDS", "77")
    assert load_settings().max_pids == 77
    assert load_settings({}).max_pids == DEFAULT_MAXIMA.pids
    monkeypatch.setenv("SANDBOXD_MAX_PIDS", "bad")
    assert load_settings({}).max_pids == DEFAULT_MAXIMA.pids


def test_settings_are_frozen() -> None:
    """Settings cannot change after start-up."""
    settings = load_settings({})
    with pytest.raises(pydantic.ValidationError):
        settings.max_pids = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SQS", "sqs", "must be 'embedded' or 'aws'"),
        ("EMBEDDED_SQS_PORT", "65536", "less than or equal to 65535"),
        ("EMBEDDED_SQS_PORT", "0", "greater than or equal to 1"),
        ("EMBEDDED_SQS_PORT", "http", "whole number"),
        ("JOBS_QUEUE", "has space", "standard queue name"),
        ("RESULTS_QUEUE", "results.fifo", "standard queue name"),
        ("DEAD_LETTER_QUEUE", "x" * 81, "standard queue name"),
        ("DEAD_LETTER_QUEUE", "", "standard queue name"),
        ("MAX_RECEIVE_COUNT", "0", "greater than or equal to 1"),
        ("MAX_RECEIVE_COUNT", "1001", "less than or equal to 1000"),
        ("REGION", "", "must not be empty"),
        ("REGION", "us east 1", "not a region name"),
        ("STATE_DIR", "", "must not be empty"),
        ("STATE_DIR", "a\x00b", "NUL"),
        ("HTTP_ADDR", "8700", "host:port"),
        ("HTTP_ADDR", "localhost:", "port must be a number"),
        ("HTTP_ADDR", "localhost:0", "port must be a number"),
        ("HTTP_ADDR", "localhost:65536", "port must be a number"),
        ("HTTP_ADDR", "localhost:\u0668\u0667\u0660\u0660", "port must be a number"),
        ("HTTP_ADDR", "local host:80", "host:port"),
        ("LANGUAGES", " , ", "at least one language"),
        ("LANGUAGES", "python,python", "twice"),
        ("LANGUAGES", "Python", "not a language name"),
        ("SLOTS", "0", "greater than or equal to 1"),
        ("POOL_FLOOR", "-1", "greater than or equal to 0"),
        ("WARM_MEMORY_MB", "0", "greater than or equal to 1"),
        ("POOL_SIZES", "python", "not language=size"),
        ("POOL_SIZES", "python=two", "python: must be a whole number"),
        ("POOL_SIZES", "python=-1", "at least 0"),
        ("POOL_SIZES", "Python=1", "not a language name"),
        ("POOL_SIZES", "python=1,python=2", "given twice"),
        ("POOL_SIZES", '{"python": 1, "python": 2}', "given twice"),
        ("POOL_SIZES", '{"python": true}', "whole number"),
        ("POOL_SIZES", '{"python": 1.5}', "whole number"),
        ("POOL_SIZES", "{python: 1}", "not valid JSON"),
        ("POOL_SIZES", "[1]", 'must be JSON like {"python": 2}'),
        ("POOL_SPARES", "-1", "greater than or equal to 0"),
        ("MAX_WALL_SECONDS", "0", "greater than 0"),
        ("MAX_WALL_SECONDS", "nan", "finite number"),
        ("MAX_CPU_SECONDS", "inf", "finite number"),
        ("MAX_CPU_SECONDS", "ten", "must be a number"),
        ("MAX_MEMORY_MB", "1.5", "whole number"),
        ("MAX_PIDS", "0", "greater than 0"),
        ("MAX_OUTPUT_BYTES", "1e6", "whole number"),
        ("MAX_DISK_MB", "-5", "greater than 0"),
        ("GRACE_SECONDS", "-1", "greater than or equal to 0"),
        ("VISIBILITY_TIMEOUT", "0", "greater than or equal to 1"),
        ("VISIBILITY_TIMEOUT", "43201", "less than or equal to 43200"),
        ("VISIBILITY_TIMEOUT", "9" * 5000, "whole number"),
        ("HEARTBEAT_SECONDS", "0", "greater than 0"),
        ("HEARTBEAT_SECONDS", "60", "less than SANDBOXD_VISIBILITY_TIMEOUT (60)"),
        ("WAIT_TIME_SECONDS", "21", "less than or equal to 20"),
        ("HOST_ID", "", "must not be empty"),
    ],
)
def test_bad_value_names_its_variable(variable: str, value: str, says: str) -> None:
    """A bad value fails with one line that starts with the variable's name."""
    message = config_error({f"SANDBOXD_{variable}": value})
    assert message.startswith(f"SANDBOXD_{variable}: "), message
    assert says in message


def test_bad_scalar_is_echoed_but_not_at_length() -> None:
    """The value given is quoted back, shortened when long."""
    assert "(got 'lots')" in config_error({"SANDBOXD_MAX_PIDS": "lots"})
    long = config_error({"SANDBOXD_MAX_PIDS": "x" * 500})
    assert "x" * 57 + "..." in long and "x" * 58 not in long


def test_several_bad_values_are_all_named_on_one_line() -> None:
    """Every bad variable is reported at once, so one restart fixes them all."""
    message = config_error({"SANDBOXD_MAX_PIDS": "0", "SANDBOXD_SQS": "gcp"})
    assert "SANDBOXD_MAX_PIDS: " in message and "SANDBOXD_SQS: " in message


def test_served_languages() -> None:
    """SANDBOXD_LANGUAGES says what is served; SANDBOXD_POOL_SIZES alone does too (and
    fixes those sizes); a language fixed at 0 is not served."""
    assert load_settings({"SANDBOXD_LANGUAGES": "python, ruby"}).served_languages == [
        "python",
        "ruby",
    ]
    sized = load_settings({"SANDBOXD_POOL_SIZES": "ruby=2,python=0"})
    assert sized.served_languages == ["ruby"]
    both = load_settings({"SANDBOXD_LANGUAGES": "python", "SANDBOXD_POOL_SIZES": "java=1"})
    assert both.served_languages == ["python", "java"]
    assert load_settings({"SANDBOXD_SLOTS": "6"}).host_slots == 6


def test_pool_sizes_forms() -> None:
    """Pool sizes are `lang=n,...` or a JSON object; zero is allowed."""
    simple = load_settings({"SANDBOXD_POOL_SIZES": " python = 2 , javascript=1, "})
    assert simple.pool_sizes == {"python": 2, "javascript": 1}
    as_json = load_settings({"SANDBOXD_POOL_SIZES": '{"python": 2, "javascript": 0}'})
    assert as_json.pool_sizes == {"python": 2, "javascript": 0}


def test_embedded_takes_queue_names_only() -> None:
    """A queue URL points away from the embedded server, so only `aws` accepts one."""
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"
    message = config_error({"SANDBOXD_JOBS_QUEUE": url})
    assert message.startswith("SANDBOXD_JOBS_QUEUE: must be a queue name, not a URL")
    assert "SANDBOXD_SQS=embedded" in message
    assert load_settings({"SANDBOXD_SQS": "aws", "SANDBOXD_JOBS_QUEUE": url}).jobs_queue == url
    named = load_settings({"SANDBOXD_SQS": "aws", "SANDBOXD_JOBS_QUEUE": "Jobs_1-a"})
    assert named.jobs_queue == "Jobs_1-a"


def test_heartbeat_must_beat_before_visibility_runs_out() -> None:
    """A heartbeat at or above the visibility timeout is refused; just below is fine."""
    message = config_error(
        {"SANDBOXD_VISIBILITY_TIMEOUT": "10", "SANDBOXD_HEARTBEAT_SECONDS": "10"}
    )
    assert message.startswith("SANDBOXD_HEARTBEAT_SECONDS: must be less than")
    ok = load_settings({"SANDBOXD_VISIBILITY_TIMEOUT": "10", "SANDBOXD_HEARTBEAT_SECONDS": "9.9"})
    assert ok.heartbeat_seconds == 9.9


def test_bad_visibility_is_blamed_not_the_heartbeat() -> None:
    """When the visibility timeout itself is bad, only it is reported."""
    message = config_error({"SANDBOXD_VISIBILITY_TIMEOUT": "soon"})
    assert message.startswith("SANDBOXD_VISIBILITY_TIMEOUT: ")
    assert "HEARTBEAT" not in message


def test_maxima_property() -> None:
    """`maxima` gathers the max_* settings into the `Limits` that clamping takes."""
    settings = load_settings({"SANDBOXD_MAX_MEMORY_MB": "300", "SANDBOXD_MAX_WALL_SECONDS": "5"})
    assert settings.maxima == Limits(
        wall_seconds=5.0,
        cpu_seconds=DEFAULT_MAXIMA.cpu_seconds,
        memory_mb=300,
        pids=DEFAULT_MAXIMA.pids,
        output_bytes=DEFAULT_MAXIMA.output_bytes,
        disk_mb=DEFAULT_MAXIMA.disk_mb,
    )


def test_env_name() -> None:
    """Field names map to upper-case prefixed variables."""
    assert env_name("heartbeat_seconds") == "SANDBOXD_HEARTBEAT_SECONDS"


FIELDS = sorted(Settings.model_fields)
NUMERIC = sorted(
    name for name, field in Settings.model_fields.items() if field.annotation in (int, float)
)


def blames(field: str, message: str) -> bool:
    """Whether `message` is one line about `field`'s variable.

    A visibility timeout at or below the default heartbeat is reported on the heartbeat.
    """
    blamed = [env_name(field)]
    if field == "visibility_timeout":
        blamed.append(env_name("heartbeat_seconds"))
    return len(message.splitlines()) == 1 and message.startswith(tuple(f"{v}: " for v in blamed))


@given(field=st.sampled_from(FIELDS), value=st.text())
def test_any_string_loads_or_fails_with_config_error(field: str, value: str) -> None:
    """Whatever text a variable holds, the result is settings or one ConfigError line."""
    try:
        load_settings({env_name(field): value})
    except ConfigError as exc:
        assert blames(field, str(exc)), str(exc)


@given(field=st.sampled_from(NUMERIC), number=st.integers(min_value=-(2**53), max_value=2**53))
def test_numbers_are_read_exactly_or_refused(field: str, number: int) -> None:
    """A whole number in a numeric variable is taken as given, or refused by name."""
    try:
        settings = load_settings({env_name(field): str(number)})
    except ConfigError as exc:
        assert blames(field, str(exc)), str(exc)
    else:
        assert getattr(settings, field) == number


@given(
    sizes=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
        st.integers(min_value=0, max_value=1000),
        min_size=1,
        max_size=5,
    )
)
def test_pool_sizes_simple_form_round_trips(sizes: dict[str, int]) -> None:
    """Any valid pool sizes written as `lang=n,...` read back as the same mapping."""
    text = ",".join(f"{language}={size}" for language, size in sizes.items())
    assert load_settings({"SANDBOXD_POOL_SIZES": text}).pool_sizes == sizes


def test_region_falls_back_to_the_standard_aws_variables() -> None:
    assert load_settings({}).region == "us-east-1"
    assert load_settings({"AWS_DEFAULT_REGION": "eu-west-2"}).region == "eu-west-2"
    both = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "x"}
    assert load_settings(both).region == "eu-west-1"
    env = {"AWS_REGION": "eu-west-1", "SANDBOXD_REGION": "ap-south-1"}
    assert load_settings(env).region == "ap-south-1"


# -- variables that are not settings -----------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_a_misspelt_variable_is_named_with_the_closest_setting() -> None:
    """A near miss names the setting it probably meant; a far one is just unknown."""
    env = {"SANDBOXD_POOL_SIZE": "python=1", "SANDBOXD_FROBNICATE": "1", "PATH": "/bin"}
    assert unknown_variables(env) == [
        "SANDBOXD_FROBNICATE is not a setting",
        "SANDBOXD_POOL_SIZE is not a setting (did you mean SANDBOXD_POOL_SIZES?)",
    ]
    assert unknown_variables({"sandboxd_http_addr": "x"}) == [
        "sandboxd_http_addr is not a setting (did you mean SANDBOXD_HTTP_ADDR?)"
    ]
    assert unknown_variables({"SANDBOXD_HOMES": "/x"}) == [
        "SANDBOXD_HOMES is not a setting (did you mean SANDBOXD_HOME?)"
    ]


def test_settings_and_other_read_variables_are_not_warned_about() -> None:
    """Every setting's variable and every allow-listed variable passes without a warning."""
    env = {env_name(field): "x" for field in Settings.model_fields}
    env.update(dict.fromkeys(OTHER_VARIABLES, "x"))
    assert unknown_variables(env) == []


def test_the_allow_list_is_what_the_code_reads() -> None:
    """Each `"SANDBOXD_*"` literal in the code is a setting or allow-listed, and each
    allow-listed variable is still read somewhere."""
    literal = re.compile(r"[\"'](SANDBOXD_[A-Z0-9_]+)[\"']")
    found: set[str] = set()
    for folder in ("sandboxd", "runners", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and (path.suffix == ".py" or path.name == "run"):
                found.update(literal.findall(path.read_text("utf-8", "replace")))
    settings = {env_name(field) for field in Settings.model_fields}
    assert found - settings - set(OTHER_VARIABLES) == set()
    assert set(OTHER_VARIABLES) <= found


def test_load_settings_warns_even_when_it_then_fails(caplog: pytest.LogCaptureFixture) -> None:
    """The warning is logged by `load_settings`, before a bad value stops it."""
    caplog.set_level(logging.WARNING, logger="sandboxd.config")
    load_settings({"SANDBOXD_MAX_PID": "5"})
    with pytest.raises(ConfigError):
        load_settings({"SANDBOXD_VISIBILITY_TIMOUT": "90", "SANDBOXD_HEARTBEAT_SECONDS": "60"})
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "SANDBOXD_MAX_PID is not a setting (did you mean SANDBOXD_MAX_PIDS?)",
        "SANDBOXD_VISIBILITY_TIMOUT is not a setting (did you mean SANDBOXD_VISIBILITY_TIMEOUT?)",
    ]


def test_every_setting_is_documented_in_the_readme() -> None:
    """The README's configuration table names every variable the daemon reads."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for field in Settings.model_fields:
        name = env_name(field)
        documented = f"`{name}`" in readme or (
            name.startswith("SANDBOXD_MAX_") and "`SANDBOXD_MAX_WALL_SECONDS`, `…_" in readme
        )
        assert documented, f"{name} is not in README.md"
