"""The embedded broker: kombu's filesystem transport, made safe for several processes.

kombu's own filesystem transport writes a message file in place and a reader may open it before the
writer has finished (a known race): the worker then reads half a message, fails to decode it and
dies with "Unrecoverable error". Two readers can also both take one message, because a claim
is a move into the system temp folder, which may be another filesystem (a copy, not a rename).

Here every step is one `rename` inside one folder tree on one filesystem, which POSIX makes atomic:
- a writer writes `tmp/<name>` completely, then renames it into the queue folder, so a reader only
  ever sees whole messages;
- a reader claims a message by renaming it into `claimed/`; exactly one reader's rename succeeds.
A message that still cannot be decoded is set aside in `rejected/` and logged, never raised: the
broker only carries signals, and the work they point at lives in the database (the sweeper sends
them again), so a bad file must not take the worker down.

Chosen over kombu's SQLAlchemy transport on a second SQLite file because that one polls with a
write transaction per message and so competes for SQLite's single writer lock.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)

# Given to Celery as `broker_transport`; the URL stays `filesystem://`.
TRANSPORT = "lifecycle.broker:Transport"


class Channel(filesystem.Channel):
    """Atomic put (write aside, then rename in) and exclusive get (claim by rename)."""

    # A claim older than this was left by a reader that died between claiming and reading.
    STALE_CLAIM_SECONDS = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._restore_stale_claims()

    def _restore_stale_claims(self) -> None:
        cutoff = time.time() - self.STALE_CLAIM_SECONDS
        for path in self._sibling("claimed").iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    os.rename(path, Path(self.data_folder_in) / path.name)
            except FileNotFoundError:
                continue

    def _sibling(self, name: str) -> Path:
        folder = Path(self.data_folder_out).parent / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        # Zero-padded nanoseconds keep the lexical order of file names the order of sending.
        name = f"{time.time_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        staged = self._sibling("tmp") / name
        try:
            staged.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(staged, Path(self.data_folder_out) / name)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"cannot add message {name!r}: {exc}") from exc

    def _get(self, queue: str) -> Any:
        wanted = f"{queue}.msg"
        inbox = Path(self.data_folder_in)
        for name in sorted(os.listdir(inbox)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = self._sibling("claimed") / name
            try:
                os.rename(inbox / name, claimed)
            except FileNotFoundError:
                continue  # another reader claimed it first
            try:
                payload = claimed.read_bytes()
            except FileNotFoundError:
                continue  # taken back as a stale claim by a starting channel; it will come round again
            try:
                message = loads(bytes_to_str(payload))
            except ValueError:
                self._reject(claimed, name)
                continue
            claimed.unlink(missing_ok=True)
            return message
        raise Empty()

    def _reject(self, claimed: Path, name: str) -> None:
        log.error("embedded broker: message %s is not valid JSON; set aside in rejected/", name)
        os.replace(claimed, self._sibling("rejected") / name)


class Transport(filesystem.Transport):
    Channel = Channel
