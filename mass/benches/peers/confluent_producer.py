"""Python peers for `cargo bench -p mass --bench produce` (not a project dependency: pip install confluent-kafka numpy).

Modes:
  paper-kmeans  the original MASS loop: fresh numpy points around centres -> str(list) -> produce -> flush per
                message (no rate control), for DURATION seconds; prints delivered messages/s.
  bytes         one random SIZE-byte payload (incompressible, like MASS's synthetic source) N times with acks=all,
                linger LINGER ms and a QUEUE_KB client queue (MASS's settings, passed by the bench); flush at the
                end; prints delivered MB/s. Arguments: SIZE N [LINGER [QUEUE_KB]].
Prints one JSON line.
"""
import json
import os
import sys
import time

from confluent_kafka import Producer


def main():
    bootstrap, topic, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "message.max.bytes": 16777216}
    delivered = [0, 0]  # messages, bytes
    first_send = [None]

    def on_delivery(err, msg):
        if err is None:
            delivered[0] += 1
            delivered[1] += len(msg.value())

    if mode == "paper-kmeans":
        import numpy as np

        duration = float(sys.argv[4])
        rng = np.random.RandomState(1)
        centres = rng.uniform(-10, 10, size=(10, 3))
        p = Producer(conf)
        t0 = time.time()
        n = 0
        while time.time() - t0 < duration:
            idx = rng.randint(0, 10, size=5000)
            points = centres[idx] + rng.randn(5000, 3)
            p.produce(topic, str(points.tolist()).encode(), on_delivery=on_delivery)
            p.flush()
            n += 1
        elapsed = time.time() - t0
        print(json.dumps({"mode": mode, "messages": delivered[0], "seconds": elapsed,
                          "msgs_per_s": delivered[0] / elapsed, "bytes_per_msg": delivered[1] / max(1, delivered[0])}))
    elif mode == "bytes":
        size, n = int(sys.argv[4]), int(sys.argv[5])
        linger = sys.argv[6] if len(sys.argv) > 6 else "5"
        queue_kb = sys.argv[7] if len(sys.argv) > 7 else "1048576"
        conf.update({"linger.ms": linger, "queue.buffering.max.kbytes": queue_kb})
        p = Producer(conf)
        payload = os.urandom(size)
        t0 = time.time()
        for _ in range(n):
            while True:
                try:
                    p.produce(topic, payload, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.001)
            p.poll(0)
        p.flush(120)
        elapsed = time.time() - t0
        print(json.dumps({"mode": mode, "messages": delivered[0], "seconds": elapsed,
                          "mb_per_s": delivered[1] / 1e6 / elapsed}))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
