"""An instrument's own producer, as a test peer: detector frames written as ESS ad00 FlatBuffers by PyPI's
ess-streaming-data-types and sent with confluent-kafka, one message per frame.

    python ad00_producer.py BOOTSTRAP TOPIC FRAMES_DIR

FRAMES_DIR holds frames.json ({"rows", "cols", "frames": [{"index", "angle_deg", "frame_type", "epoch"}]}) and
frames.bin (the frames' uint16 pixels, row-major, one after another). Prints the number of frames delivered.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Producer
from streaming_data_types.area_detector_ad00 import Attribute, serialise_ad00


def main() -> int:
    bootstrap, topic, frames_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    meta = json.loads((frames_dir / "frames.json").read_text())
    rows, cols = meta["rows"], meta["cols"]
    pixels = np.fromfile(frames_dir / "frames.bin", dtype="<u2").reshape(-1, rows, cols)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(str(err))

    for f, image in zip(meta["frames"], pixels):
        attributes = [
            Attribute("angle", "rotation angle", "peer", float(f["angle_deg"])),
            Attribute("frame_type", "projection, flat or dark", "peer", f["frame_type"]),
            Attribute("epoch", "flat/dark epoch", "peer", int(f["epoch"])),
        ]
        body = serialise_ad00("peer-detector", int(f["index"]), time.time_ns(), image, attributes)
        producer.produce(topic, body, partition=0, on_delivery=report)
        producer.poll(0)
    left = producer.flush(30)
    if failed or left:
        print(f"failed: {failed[:3]}, {left} undelivered", file=sys.stderr)
        return 1
    print(len(meta["frames"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
