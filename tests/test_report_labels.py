"""The report's labels come from markers a test states, never from words in its name."""
import pytest

from pytest_netconform import report


class Item:
    """What area_of and severity_of read of a pytest item: its nodeid and closest markers."""

    def __init__(self, *markers):
        self.nodeid = "suites/test_x.py::test_not_a_severity_word"
        self.markers = {marker.name: marker for marker in markers}

    def get_closest_marker(self, name):
        return self.markers.get(name)


def test_the_area_is_the_suites_marker():
    assert report.area_of(Item(pytest.mark.area("bridge").mark)) == "bridge"


def test_an_unmarked_suite_is_in_area_other():
    assert report.area_of(Item(pytest.mark.document("000", "x").mark)) == "other"


def test_a_severity_is_claimed_only_by_its_marker():
    assert report.severity_of(Item(pytest.mark.severity("critical").mark)) == "critical"
    assert report.severity_of(Item()) is None


@pytest.mark.parametrize("marker", [pytest.mark.severity("urgent"), pytest.mark.severity()], ids=["unknown", "empty"])
def test_a_severity_allure_cannot_read_is_refused_in_one_line(marker):
    with pytest.raises(pytest.UsageError, match=r"^suites/test_x.py::test_not_a_severity_word: pytest.mark.severity "
                                                 r"takes one of blocker, critical, normal, minor, trivial, not"):
        report.severity_of(Item(marker.mark))
