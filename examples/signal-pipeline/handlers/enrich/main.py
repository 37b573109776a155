#!/usr/bin/env python3
"""enrich: adds the sensor's room and limit from data/sensors.json.

The flaky sensor's lookup fails on its first attempt (a stand-in for a
service that is briefly down): exit 1, retried by autod with backoff. A sensor
the data file does not know can never be enriched: exit 65, given up at once,
and autod's [notify] on_dead event pages someone."""
import json
import os
import sys

event = json.load(sys.stdin)
p = event["payload"]
with open("data/sensors.json") as f:  # the working directory is the project root
    sensors = json.load(f)
if p["sensor"] == "s-flaky" and os.environ["AUTOD_ATTEMPT"] == "1":
    print("sensor registry timed out", file=sys.stderr)
    sys.exit(1)
known = sensors.get(p["sensor"])
if known is None:
    print(f"unknown sensor {p['sensor']}: add it to data/sensors.json", file=sys.stderr)
    sys.exit(65)
with open(os.environ["AUTOD_EMIT"], "a") as out:
    out.write(json.dumps({"eventType": "signal.enriched",
                          "payload": {**p, "room": known["room"], "limit": known["limit"]}}) + "\n")
