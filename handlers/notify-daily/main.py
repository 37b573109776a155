#!/usr/bin/env python3
"""notify-daily: write a short digest and say where it is.

Event: digest.due, payload {kind: "daily" | "weekly"} (a [[schedules]] entry
usually sends it). Writes .autod/out/digests/<YYYY-MM-DD>-<kind>.md with
  - the run log's lines by result over the period (24 hours for daily, 7 days
    for weekly), read from .autod/log/autod.log and its rotated files. A `dead`
    line is written in addition to the last `failed` one, and `rejected` is an
    event no handler ran, so the counts are shown as they are, not summed;
  - how many notes .autod/out/notes-index.json holds (see note-indexer).
"Notify" is one line on stdout; swap it for a mail or chat message if you like.

The period ends at the event's `ts`, not at the clock, so a retry hours later
still reports the period it was fired for and rewrites the same file.

Exit codes: 0 done; 65 an unknown kind (permanent); anything else retryable.
"""
import collections
import datetime
import glob
import json
import os
import sys
import tempfile

EX_DATAERR = 65
LOG = ".autod/log/autod.log"  # paths are relative to the project root, our cwd
NOTES_INDEX = ".autod/out/notes-index.json"
DIGESTS = ".autod/out/digests"
PERIODS = {"daily": datetime.timedelta(days=1), "weekly": datetime.timedelta(days=7)}
# The order people read results in; anything new goes after, alphabetically.
RESULT_ORDER = ["ok", "failed", "timeout", "dead", "skipped", "rejected"]


def fail(message):
    print(f"notify-daily: {message}", file=sys.stderr)
    sys.exit(EX_DATAERR)


def instant(text):
    """RFC 3339 -> aware datetime. Accepts `Z` and long fractions on Python < 3.11."""
    text = text.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[:digits][:6].ljust(6, "0") + rest[digits:]
    return datetime.datetime.fromisoformat(text)


def count_runs(start, end):
    """Runs by result with start < ts <= end, over autod.log and the rotated
    autod.log.1 … (a busy day can span a rotation). A missing log is zero runs;
    a line that is not a run-log object is skipped, not fatal."""
    counts = collections.Counter()
    for path in [LOG] + sorted(glob.glob(glob.escape(LOG) + ".[0-9]*")):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        run = json.loads(line)
                        if start < instant(run["ts"]) <= end:
                            counts[str(run["result"])] += 1
                    except (ValueError, KeyError, TypeError, AttributeError):
                        continue
        except FileNotFoundError:
            continue
    return counts


def note_count():
    try:
        with open(NOTES_INDEX, encoding="utf-8") as f:
            index = json.load(f)
        return len(index) if isinstance(index, dict) else None
    except (FileNotFoundError, ValueError):
        return None


def write_atomically(path, text):
    """Temp file in the same folder, fsync, rename, fsync the folder."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".digest.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def main():
    try:
        event = json.load(sys.stdin)
        kind = event["payload"]["kind"]
        ts = event.get("ts")
        end = instant(ts) if ts else datetime.datetime.now(datetime.timezone.utc)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        fail(f"not a digest.due event autod would send: {e!r}")
    if not isinstance(kind, str) or kind not in PERIODS:
        fail(f"unknown digest kind {kind!r}; expected one of {sorted(PERIODS)}")

    start = end - PERIODS[kind]
    day = end.astimezone().strftime("%Y-%m-%d")  # the user's local day
    counts = count_runs(start, end)
    notes = note_count()

    def utc(t):
        return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    lines = [f"# {kind.capitalize()} digest, {day}", ""]
    lines.append(f"Run log `{LOG}` from {utc(start)} to {utc(end)}, lines by result:")
    lines.append("")
    if counts:
        lines += ["| result | lines |", "|---|---|"]
        rank = {r: i for i, r in enumerate(RESULT_ORDER)}
        for result in sorted(counts, key=lambda r: (rank.get(r, len(rank)), r)):
            lines.append(f"| {result} | {counts[result]} |")
    else:
        lines.append("No runs logged in this period.")
    lines.append("")
    if notes is None:
        lines.append(f"Notes: no index yet (`{NOTES_INDEX}` appears after the first note event).")
    else:
        lines.append(f"Notes in the index: {notes} (`{NOTES_INDEX}`).")

    target = os.path.join(DIGESTS, f"{day}-{kind}.md")
    write_atomically(target, "\n".join(lines) + "\n")
    print(f"{kind} digest ready: {target}")


if __name__ == "__main__":
    main()
