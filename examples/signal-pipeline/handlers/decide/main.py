#!/usr/bin/env python3
"""decide: over its room's limit is an alert, anything else is logged."""
import json
import os
import sys

p = json.load(sys.stdin)["payload"]
action = "alert" if p["celsius"] > p["limit"] else "log"
with open(os.environ["AUTOD_EMIT"], "a") as out:
    out.write(json.dumps({"eventType": "action.chosen",
                          "payload": {"action": action, "room": p["room"], "celsius": p["celsius"]}}) + "\n")
