"""The hand-written remote-write encoder: decodes back to what was encoded, and Prometheus agrees."""

from __future__ import annotations

import struct

import pytest

from tests.support.prometheus import (
    PrometheusServer,
    Series,
    encode_write_request,
    snappy_compress,
    unique_id,
)

pytestmark = pytest.mark.integration


# A tiny independent decoder: protobuf wire format and snappy literals, nothing else.


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def fields(data: bytes) -> list[tuple[int, int | bytes | float]]:
    out: list[tuple[int, int | bytes | float]] = []
    i = 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(data, i)
            out.append((number, value - (1 << 64) if value >= 1 << 63 else value))
        elif wire == 1:
            out.append((number, struct.unpack("<d", data[i : i + 8])[0]))
            i += 8
        elif wire == 2:
            n, i = read_varint(data, i)
            out.append((number, data[i : i + n]))
            i += n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def snappy_literals(data: bytes) -> bytes:
    length, i = read_varint(data, 0)
    out = bytearray()
    while i < len(data):
        tag = data[i]
        i += 1
        assert tag & 3 == 0, "only literal elements expected"
        n = tag >> 2
        if n >= 60:
            extra = n - 59
            n = int.from_bytes(data[i : i + extra], "little")
            i += extra
        out += data[i : i + n + 1]
        i += n + 1
    assert len(out) == length
    return bytes(out)


def decode(data: bytes) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    decoded = []
    for number, ts_bytes in fields(data):
        assert number == 1 and isinstance(ts_bytes, bytes)
        labels: dict[str, str] = {}
        samples: list[tuple[int, float]] = []
        for inner_number, payload in fields(ts_bytes):
            assert isinstance(payload, bytes)
            parts = dict(fields(payload))
            if inner_number == 1:
                name, value = parts[1], parts[2]
                assert isinstance(name, bytes) and isinstance(value, bytes)
                labels[name.decode()] = value.decode()
            else:
                ts, v = parts.get(2, 0), parts[1]
                assert isinstance(ts, int) and isinstance(v, float)
                samples.append((ts, v))
        assert list(labels) == sorted(labels), "labels must be sorted by name"
        decoded.append((labels, samples))
    return decoded


@pytest.mark.parametrize("size", [0, 1, 59, 60, 61, 255, 256, 65536, 65537, 200_000])
def test_snappy_literals_round_trip(size: int) -> None:
    data = bytes((i * 7) % 256 for i in range(size))
    assert snappy_literals(snappy_compress(data)) == data


def test_write_request_round_trips() -> None:
    series: list[Series] = [
        ({"__name__": "m", "zone": "é", "app": "a b"}, [(1_700_000_000_000, 1.5), (-5, -0.25)]),
        ({"__name__": "n"}, [(0, 0.0), (2**40, 1e300)]),
    ]
    got = decode(encode_write_request(series))
    assert got == [
        ({"__name__": "m", "app": "a b", "zone": "é"}, [(1_700_000_000_000, 1.5), (-5, -0.25)]),
        ({"__name__": "n"}, [(0, 0.0), (2**40, 1e300)]),
    ]


def test_prometheus_reads_back_what_was_pushed(prometheus: PrometheusServer) -> None:
    tid = unique_id()
    base = 1_600_000_000_000  # years before "now": accepted thanks to the out-of-order window
    many = [
        (base + i * 1000, float(i) * 0.5) for i in range(3000)
    ]  # > 64 KiB: several snappy chunks
    prometheus.push([({"__name__": "rw_check", "test_id": tid, "q": 'a"b\\c'}, many)])
    at = (base + 2999 * 1000) / 1000
    [got] = prometheus.query(f'rw_check{{test_id="{tid}"}}', at)
    assert got["metric"] == {"__name__": "rw_check", "test_id": tid, "q": 'a"b\\c'}
    assert float(got["value"][1]) == 1499.5
    [count] = prometheus.query(f'count_over_time(rw_check{{test_id="{tid}"}}[1h])', at)
    assert float(count["value"][1]) == 3000
