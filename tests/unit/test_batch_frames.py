"""A DecodedBatch crosses the pipes as a frame: records travel as plain tuples and come back
as ScanRecords, equal in every field, with everything else of the batch."""

from __future__ import annotations

import pickle
import pickletools

from contracts.messages import DecodedBatch, encode_batch, split_batch_frame
from contracts.records import DeadLetter, ScanRecord


def test_a_batch_frame_comes_back_equal_with_scan_records() -> None:
    batch = DecodedBatch(
        slot=3,
        records=[
            ScanRecord("1.2.3.4", 80, "HTTP", 1_700_000_000, "hello\0world", 2),
            ScanRecord("::1", 0, "DNS", 0, "", 1),
        ],
        record_ack_ids=["a1", "a2"],
        record_publish_times=[1.5, 2.5],
        dead_letters=[DeadLetter(b"{", "invalid_json", "m3", 3.0, "detail")],
        dead_letter_ack_ids=["a3"],
        nbytes=123,
    )
    count, view = split_batch_frame(encode_batch(batch))
    back = pickle.loads(view)
    assert count == 3
    assert back == batch
    assert all(type(record) is ScanRecord for record in back.records)
    assert back.records[0].response == "hello\0world" and back.records[1].key == ("::1", 0, "DNS")


def object_builds(count: int) -> int:
    """Opcodes that run Python code to build an object, in the frame of `count` records."""
    records = [ScanRecord(f"10.0.0.{i}", i, "HTTP", i, "r", 2) for i in range(count)]
    batch = DecodedBatch(slot=0, records=records, record_ack_ids=["x"] * count,
                         record_publish_times=[0.0] * count)  # fmt: skip
    _, view = split_batch_frame(encode_batch(batch))
    ops = [op.name for op, _, _ in pickletools.genops(bytes(view))]
    return sum(op in ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD") for op in ops)


def test_records_cost_no_python_call_each_on_the_way() -> None:
    # Plain tuples are packed and unpacked by pickle's C code; a record pickled as an object
    # would add a build per record (what made unpickling a third of the writer's CPU).
    assert object_builds(50) == object_builds(1)
