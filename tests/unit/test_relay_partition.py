"""The relay picks partitions itself (it hands the producer one record batch per partition): it must
pick exactly what aiokafka's `send()` would, or a key's records would change partition on upgrade."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from hub.relay import murmur2, partition_for


def test_murmur2_equals_aiokafkas_for_every_length_and_byte():
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(70) for _ in range(40)]
    keys += [b"", b"\x00", b"\xff" * 9, b"LT0123456789AB", "客户-1".encode()]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]


def test_murmur2_known_values_of_the_java_client():
    # org.apache.kafka.common.utils.Utils.murmur2, as the Java client's tests pin it (signed ints there)
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert murmur2(b"foobar") == -790332482 & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") == -985981536 & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-longer-string") == -1486304829 & 0xFFFFFFFF
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971 & 0xFFFFFFFF
    assert murmur2(b"abc") == 479470107


def test_partition_for_a_key_is_the_default_partitioners():
    rng = random.Random(11)
    for count in (1, 2, 3, 6, 12):
        partitions = list(range(count))
        for _ in range(300):
            key = f"LT{rng.getrandbits(48):012X}".encode()
            assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_a_record_without_key_goes_to_some_partition():
    assert {partition_for(None, [0, 1, 2]) for _ in range(200)} == {0, 1, 2}
