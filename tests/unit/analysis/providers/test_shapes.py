"""Every odd Prometheus result becomes NoData or ProviderError with a reason, never a zero or a crash."""

from __future__ import annotations

import math
from typing import Any

import pytest

from analysis.providers.port import Buckets, Counts, NoData, ProviderError
from analysis.providers.shapes import MONOTONE_SLACK, to_buckets, to_counts, to_number


def series(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000.0, value]}


def buckets(*pairs: tuple[str, str], **labels: str) -> list[dict[str, Any]]:
    return [series(v, le=le, **labels) for le, v in pairs]


class TestNumber:
    def test_one_series_is_its_value(self) -> None:
        assert to_number([series("12.5", app="a")], "q") == 12.5

    def test_scalar_result_is_its_value(self) -> None:
        assert to_number([1700000000.0, "3"], "q") == 3.0

    def test_empty_vector_is_no_data_not_zero(self) -> None:
        with pytest.raises(NoData, match="empty result"):
            to_number([], "canary total")

    @pytest.mark.parametrize("text", ["NaN", "+Inf", "-Inf"])
    def test_nan_and_inf_are_no_data(self, text: str) -> None:
        with pytest.raises(NoData, match="no requests in the window"):
            to_number([series(text)], "q")

    def test_nan_scalar_is_no_data(self) -> None:
        with pytest.raises(NoData):
            to_number([1700000000.0, "NaN"], "q")

    def test_two_series_name_both_label_sets(self) -> None:
        with pytest.raises(ProviderError, match="expected one series, got 2") as e:
            to_number([series("1", pod="a"), series("2", pod="b")], "canary events")
        assert 'pod="a"' in str(e.value) and 'pod="b"' in str(e.value)
        assert "canary events" in str(e.value)

    def test_many_series_are_summarised(self) -> None:
        with pytest.raises(ProviderError, match="and 3 more"):
            to_number([series("1", pod=str(i)) for i in range(8)], "q")

    def test_matrix_is_refused_with_a_hint(self) -> None:
        matrix = [{"metric": {}, "values": [[1.0, "1"], [2.0, "2"]]}]
        with pytest.raises(ProviderError, match="range vector"):
            to_number(matrix, "q")

    def test_string_result_is_refused(self) -> None:
        with pytest.raises(ProviderError, match="string"):
            to_number([1700000000.0, "hello"], "q")

    def test_garbage_is_refused(self) -> None:
        with pytest.raises(ProviderError, match="unexpected result shape"):
            to_number({"oops": 1}, "q")


class TestBuckets:
    def test_sorted_cumulative_with_inf(self) -> None:
        got = to_buckets(buckets(("+Inf", "10"), ("0.1", "4"), ("0.5", "9")), "q")
        assert got == Buckets(bounds=(0.1, 0.5, math.inf), counts=(4.0, 9.0, 10.0))

    def test_missing_inf_bucket_is_an_error(self) -> None:
        with pytest.raises(ProviderError, match=r"\+Inf"):
            to_buckets(buckets(("0.1", "4"), ("0.5", "9")), "q")

    def test_missing_le_is_an_error(self) -> None:
        with pytest.raises(ProviderError, match="no le label"):
            to_buckets([series("4", pod="a")], "q")

    def test_unparsable_le_is_an_error(self) -> None:
        with pytest.raises(ProviderError, match="not a number"):
            to_buckets(buckets(("fast", "4"), ("+Inf", "5")), "q")

    def test_repeated_le_names_the_series(self) -> None:
        result = buckets(("0.1", "1"), ("+Inf", "2"), pod="a") + buckets(
            ("0.1", "1"), ("+Inf", "2"), pod="b"
        )
        with pytest.raises(ProviderError, match=r"more than one series for le=0\.1") as e:
            to_buckets(result, "q")
        assert 'pod="a"' in str(e.value) and 'pod="b"' in str(e.value)

    def test_decreasing_counts_are_an_error(self) -> None:
        with pytest.raises(ProviderError, match="decrease"):
            to_buckets(buckets(("0.1", "8"), ("0.5", "5"), ("+Inf", "10")), "q")

    def test_float_noise_decrease_is_repaired(self) -> None:
        noisy = str(1000 - 1000 * MONOTONE_SLACK / 10)
        got = to_buckets(buckets(("0.1", "1000"), ("0.5", noisy), ("+Inf", "1200")), "q")
        assert got.counts == (1000.0, 1000.0, 1200.0)

    def test_negative_count_is_an_error(self) -> None:
        with pytest.raises(ProviderError, match="negative"):
            to_buckets(buckets(("0.1", "-1"), ("+Inf", "3")), "q")

    def test_nan_bucket_is_no_data(self) -> None:
        with pytest.raises(NoData):
            to_buckets(buckets(("0.1", "NaN"), ("+Inf", "NaN")), "q")

    def test_empty_is_no_data(self) -> None:
        with pytest.raises(NoData):
            to_buckets([], "q")

    def test_no_observations_is_no_data(self) -> None:
        with pytest.raises(NoData, match="no observations"):
            to_buckets(buckets(("0.1", "0"), ("+Inf", "0")), "q")

    def test_scalar_is_an_error(self) -> None:
        with pytest.raises(ProviderError, match="scalar"):
            to_buckets([1.0, "3"], "q")


class TestCounts:
    def test_plain_counts(self) -> None:
        assert to_counts(3.0, 100.0, "c") == Counts(3.0, 100.0)

    def test_no_requests_is_no_data(self) -> None:
        # The series exist but did not move: no evidence either way, never a clean window.
        with pytest.raises(NoData, match="no requests"):
            to_counts(0.0, 0.0, "c")

    def test_zero_errors_out_of_some_requests_is_a_real_zero(self) -> None:
        assert to_counts(0.0, 5.0, "c") == Counts(0.0, 5.0)

    def test_negative_is_an_error(self) -> None:
        with pytest.raises(ProviderError, match="negative"):
            to_counts(-1.0, 10.0, "c")

    def test_more_events_than_total_is_an_error(self) -> None:
        with pytest.raises(ProviderError, match="more events than total"):
            to_counts(11.0, 10.0, "canary counts")

    def test_float_noise_above_total_is_clamped(self) -> None:
        assert to_counts(10.0 + 1e-9, 10.0, "c") == Counts(10.0, 10.0)
