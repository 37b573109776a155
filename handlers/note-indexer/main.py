#!/usr/bin/env python3
"""note-indexer: keep .autod/out/notes-index.json in step with note events.

  note.saved   {path, title, tags?}  ->  index[path] = {title, tags, updatedAt}
  note.deleted {path}                ->  index loses path

The index is one JSON object keyed by note path, sorted, so diffs stay small.

Idempotent: updatedAt is the event's own `ts`, never the clock, so handling
the same event twice (autod --force, replay, a retry after a crash) leaves the
same bytes. An event older than what the index holds for its path is ignored,
so a late retry cannot undo a newer save. (A delete leaves no trace, so a stale
save that arrives after a delete does bring the note back.)

Exit codes: 0 done; 65 the event is not a note event this handler understands
(permanent: retrying will not change it); anything else is retryable.
"""
import datetime
import fcntl
import json
import os
import sys
import tempfile

EX_DATAERR = 65
INDEX = ".autod/out/notes-index.json"  # relative to the project root, our cwd


def fail(message):
    print(f"note-indexer: {message}", file=sys.stderr)
    sys.exit(EX_DATAERR)


def instant(text):
    """RFC 3339 -> aware datetime, for comparing event times (a plain string
    comparison breaks on offsets and fractions). Accepts `Z` on Python < 3.11."""
    text = text.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[:digits][:6].ljust(6, "0") + rest[digits:]
    return datetime.datetime.fromisoformat(text)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except FileNotFoundError:
        return {}
    # A broken index is not this event's fault: exit 1 (retryable) so the event
    # waits in the dead-letter folder until someone fixes or deletes the file.
    except ValueError as e:
        sys.exit(f"note-indexer: {path} is not valid JSON ({e}); fix or delete it, then `autod retry`")
    if not isinstance(index, dict):
        sys.exit(f"note-indexer: {path} is not a JSON object; fix or delete it, then `autod retry`")
    return index


def save(path, text):
    """Crash-safe replace: temp file in the same folder, fsync, rename, fsync
    the folder. A reader sees the old index or the new one, never half of one."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".notes-index.", suffix=".tmp")
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
        event_type = event["eventType"]
        payload = event["payload"]
        path = payload["path"]
        ts = event.get("ts") or datetime.datetime.now(datetime.timezone.utc).isoformat()
        when = instant(ts)
        if event_type == "note.saved":
            entry = {"title": payload["title"], "tags": payload.get("tags", []), "updatedAt": ts}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        fail(f"not a note event autod would send: {e!r}")
    if event_type not in ("note.saved", "note.deleted"):
        fail(f"no idea what to do with {event_type!r}; handle it or narrow `on` in autod.toml")

    os.makedirs(os.path.dirname(INDEX), exist_ok=True)
    # autod's `concurrency = 1` serializes runs within one autod process, but a
    # daemon and a cron `autod retry` are two processes: without this lock both
    # could read the old index and one update would be lost.
    with open(INDEX + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = load(INDEX)
        current = index.get(path)
        if current and instant(current["updatedAt"]) > when:
            print(f"{path}: index already has a newer version ({current['updatedAt']}); nothing to do")
            return
        if event_type == "note.saved":
            index[path] = entry
        else:
            index.pop(path, None)
        text = json.dumps(index, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        try:
            with open(INDEX, encoding="utf-8") as f:
                unchanged = f.read() == text
        except FileNotFoundError:
            unchanged = False
        if not unchanged:  # a rerun changes nothing on disk, not even the mtime
            save(INDEX, text)
    print(f"{event_type} {path}: {len(index)} notes in {INDEX}")


if __name__ == "__main__":
    main()
