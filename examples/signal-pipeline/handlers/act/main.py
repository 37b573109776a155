#!/usr/bin/env python3
"""act: writes the result, one file per chain (named by its correlation id,
the eventId of the signal that started it). Written atomically, so a rerun
replaces it whole."""
import json
import os
import sys

event = json.load(sys.stdin)
os.makedirs("out/results", exist_ok=True)
name = os.environ["AUTOD_CORRELATION_ID"]
tmp = f"out/results/.{name}.tmp"
with open(tmp, "w") as f:
    json.dump({"signal": name, **event["payload"]}, f)
os.replace(tmp, f"out/results/{name}.json")
