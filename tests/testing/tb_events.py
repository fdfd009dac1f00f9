"""Reads TensorBoard event files back (TFRecord framing, checksums verified) into
`{tag: [(step, value), ...]}`, so tests check what TensorBoard would show."""

from __future__ import annotations

import collections
import glob
import os
import struct

from tensorboardX.proto.event_pb2 import Event
from tensorboardX.record_writer import masked_crc32c


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    scalars = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        offset = 0
        while offset < len(data):
            header = data[offset : offset + 8]
            (length,) = struct.unpack("<Q", header)
            (header_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
            assert header_crc == masked_crc32c(header), f"{path}: bad length checksum at {offset}"
            body = data[offset + 12 : offset + 12 + length]
            (body_crc,) = struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])
            assert body_crc == masked_crc32c(body), f"{path}: bad record checksum at {offset}"
            offset += 16 + length
            event = Event.FromString(body)
            for value in event.summary.value:
                scalars[value.tag].append((event.step, value.simple_value))
    return dict(scalars)
