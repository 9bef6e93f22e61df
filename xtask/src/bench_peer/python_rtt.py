"""One-unit round trips through musketeer's Python client, shaped like the Celery driver's:
``noop.apply_async(x).get()`` in one warm process, sequentially. Prints the times (ms) as one
JSON list. Arguments: server URL, researcher token, number of round trips."""

import json
import sys
import time

import musketeer

url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with musketeer.Client(url, token) as client:
    noop = client.task("noop")
    # Untimed, as the Celery driver's warm-up: the connection is open before the first timing.
    for i in range(5):
        noop.apply_async({"warm": i}).get(timeout=120)
    times = []
    for i in range(count):
        started = time.perf_counter()
        output = noop.apply_async({"py": i}).get(timeout=120)
        times.append((time.perf_counter() - started) * 1000.0)
        if output != {"py": i}:
            sys.exit(f"round trip {i} came back as {output!r}")
print(json.dumps(times))
