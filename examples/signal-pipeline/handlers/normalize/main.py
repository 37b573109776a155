#!/usr/bin/env python3
"""normalize: a raw reading (from `autod dispatch`, or a file dropped in
incoming/) becomes a reading in degrees Celsius."""
import json
import os
import sys

event = json.load(sys.stdin)
if event["eventType"] == "signal.file":
    # The watch payload names the file; the reading is its content.
    with open(event["payload"]["path"]) as f:
        raw = json.load(f)
else:
    raw = event["payload"]
try:
    reading = float(raw["reading"])
    sensor = str(raw["sensor"])
except (KeyError, TypeError, ValueError) as e:
    print(f"not a reading: {e}", file=sys.stderr)
    sys.exit(65)  # this input can never succeed: dead-lettered, not retried
celsius = (reading - 32) * 5 / 9 if raw.get("unit") == "F" else reading
with open(os.environ["AUTOD_EMIT"], "a") as out:
    out.write(json.dumps({"eventType": "signal.normalized",
                          "payload": {"sensor": sensor, "celsius": round(celsius, 1)}}) + "\n")
