import pytest

from leap import leap_year


@pytest.mark.parametrize(
    ("year", "expected"),
    [(2015, False), (1996, True), (2100, False), (2000, True)],
)
def test_leap_year(year, expected):
    assert leap_year(year) is expected
