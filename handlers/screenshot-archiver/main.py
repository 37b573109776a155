#!/usr/bin/env python3
"""screenshot-archiver: keep a dated copy of every screenshot.

Event: screenshot.taken, payload {path, size?, takenAt?, ...}.
Writes two copies of the file named by payload.path:
  - $AUTOD_OUTPUT_DIR/<basename>   (the artifacts folder autod gives this run)
  - $ARCHIVE_DIR/<YYYY-MM-DD>/<basename>   (ARCHIVE_DIR defaults to .autod/out/archive)
It only ever reads the source file and only writes inside those two folders.

Exit codes (the autod handler contract):
  0  done (also when the archive already holds this exact file: safe to rerun)
  65 bad input: the path does not exist or is not a regular file. Retrying
     cannot fix that, so autod dead-letters it at once.
  anything else (an uncaught exception exits 1): retryable, e.g. a full disk.
"""
import datetime
import errno
import json
import os
import re
import stat
import sys
import tempfile

EX_DATAERR = 65


def fail(message):
    print(f"screenshot-archiver: {message}", file=sys.stderr)
    sys.exit(EX_DATAERR)


def parse_time(text):
    """RFC 3339 -> aware datetime. Handles `Z` and long fractions, which
    datetime.fromisoformat only accepts from Python 3.11 on."""
    text = text.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[:digits][:6].ljust(6, "0") + rest[digits:]
    return datetime.datetime.fromisoformat(text)


def open_regular_file(path):
    """Open `path` for reading, refusing anything but a regular file.

    O_NONBLOCK so that a FIFO cannot make us hang; the check is done on the
    open descriptor (fstat), so the file cannot be swapped between check and read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP, errno.EACCES, errno.EISDIR):
            fail(f"{path}: cannot open: {e.strerror}")
        raise  # anything else may be temporary: let autod retry
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        fail(f"{path}: not a regular file")
    return os.fdopen(fd, "rb")


def write_atomically(folder, name, data):
    """Write data to folder/name so that a reader never sees half a file:
    temp file in the same folder, fsync, rename, fsync the folder."""
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def same_content(path, data):
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except FileNotFoundError:
        return False


def main():
    try:
        event = json.load(sys.stdin)
    except ValueError as e:
        fail(f"stdin is not one JSON event: {e}")
    payload = event.get("payload") if isinstance(event, dict) else None
    if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
        fail("payload.path is missing (schemas/screenshot.taken.json should have caught this)")
    # Relative paths are relative to the project root, which is our working directory.
    source = payload["path"]
    with open_regular_file(source) as f:
        data = f.read()
    name = os.path.basename(source)

    # The date folder comes from the event, not the clock: a retry tomorrow
    # must land in the same folder as the first attempt did.
    when = payload.get("takenAt") or event.get("ts")
    try:
        moment = parse_time(when) if when else datetime.datetime.now(datetime.timezone.utc)
    except (ValueError, AttributeError):
        fail(f"{when!r} is not an RFC 3339 time")
    day = moment.astimezone().strftime("%Y-%m-%d")  # the user's local day

    archive = os.path.join(os.environ.get("ARCHIVE_DIR") or ".autod/out/archive", day)
    target = name
    if os.path.exists(os.path.join(archive, target)) and not same_content(os.path.join(archive, target), data):
        # A different file with the same name on the same day (two folders, or a
        # name reused): keep both rather than overwrite the older copy.
        stem, ext = os.path.splitext(name)
        event_id = os.environ.get("AUTOD_EVENT_ID", "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", event_id) or ".." in event_id:
            event_id = "copy"  # run by hand: autod always sets a file-name-safe id
        target = f"{stem}.{event_id}{ext}"
    if not same_content(os.path.join(archive, target), data):
        write_atomically(archive, target, data)

    output_dir = os.environ.get("AUTOD_OUTPUT_DIR")
    if output_dir:  # unset only when run by hand outside autod
        write_atomically(output_dir, name, data)

    print(f"archived {source} -> {os.path.join(archive, target)}")


if __name__ == "__main__":
    main()
