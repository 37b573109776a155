#!/usr/bin/env python3
"""pager: a pair autod gave up on ([notify] on_dead). A real one would mail or
message a person; this one writes the page to out/pages/."""
import json
import os
import sys

p = json.load(sys.stdin)["payload"]
# The chain's root: the signal that started it (the notice keeps its correlationId).
signal = os.environ["AUTOD_CORRELATION_ID"]
os.makedirs("out/pages", exist_ok=True)
with open(f"out/pages/{signal}.txt", "w") as f:
    f.write(f"signal {signal}: {p['handler']} gave up on {p['eventType']} {p['eventId']} "
            f"after {p['attempts']} attempt(s) ({p['state']}): {(p.get('stderrTail') or '').strip()}\n")
