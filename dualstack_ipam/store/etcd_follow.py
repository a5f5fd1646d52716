"""How the etcd backend reads its change feed: one watch, restarted when needed.

The backend keeps one :class:`~dualstack_ipam.store.etcd_feed.Feed` (one
watch thread) and asks it for the changes after a revision. A feed that
was compacted, or that started after the revision asked for, is replaced
by a new watch from there. When the watch has not delivered a revision in
time (the last revisions belong to other prefixes, and only this prefix is
watched), the backend's fence key is put as a sync point whose event the
watch must deliver.

The watch that follows (:meth:`Follower.delivered`) may be *narrowed* to
the keys a cache needs (:meth:`Follower.narrow`): etcd then sends each
process one event per allocation (its owner record), not every record,
journal entry and marker of it, which at 4 processes was about a third
of etcd's CPU and most of each client's watch thread. The complete feed
(:meth:`Follower.complete`) is then read by a watch of its own from the
revision asked for, which stops once it has delivered the revision.
"""

from __future__ import annotations

from collections.abc import Callable

from dualstack_ipam.errors import StoreUnavailableError
from dualstack_ipam.store.etcd_feed import Feed
from dualstack_ipam.store.etcd_session import Session
from dualstack_ipam.store.etcd_transport import Transport
from dualstack_ipam.store.etcd_wire import compacted_error
from dualstack_ipam.store.records import Change

__all__ = ["Follower"]


class Follower:
    """The change feed of one etcd backend (not thread-safe: the backend locks).

    Args:
        transport: the backend's transport.
        session: the backend's session (for sync points).
        start: the first etcd key watched.
        end: the etcd key after the last one watched (``b"\\x00"``: no end).
        user_key: the backend's key of an etcd key (None: not a record).
        feed_wait: seconds to wait for the watch before a sync point.
        attempts: the backend's retry budget (bounds the wait after one).

    Complexity:
        O(1) to build; the watch starts at the first read.
    """

    def __init__(
        self,
        transport: Transport,
        session: Session,
        start: bytes,
        end: bytes,
        user_key: Callable[[bytes], str | None],
        *,
        feed_wait: float,
        attempts: int,
    ) -> None:
        self._transport, self._session = transport, session
        self._start, self._end, self._user_key = start, end, user_key
        self._feed_wait, self._attempts = feed_wait, attempts
        self._feed: Feed | None = None
        self._range = (start, end)  # what the following watch covers

    def narrow(self, span: tuple[bytes, bytes] | None) -> None:
        """Have the following watch cover only ``[start, end)`` of the watched keys.

        A running watch of another range is stopped; the next
        :meth:`delivered` starts one from the revision it is asked for.

        Args:
            span: ``(start, end)``, etcd keys; None: every watched key.

        Complexity:
            O(1).
        """
        start, end = span or (self._start, self._end)
        start = max(start, self._start)
        if self._end != b"\x00":
            end = min(end, self._end)
        if (start, end) != self._range:
            self._range = (start, end)
            self.close()
            self._feed = None

    def complete(self, after: int, revision: int) -> tuple[list[Change], int]:
        """Every change in (``after``, ``revision``], waiting for the watch.

        Returns:
            The changes, and the revision they are complete to (a sync
            point's, if one was needed).

        Raises:
            CompactedError: ``after`` is older than etcd's compaction.
            StoreUnavailableError: the watch did not deliver in time.

        Complexity:
            O(k log k) for k changes held; one round trip if a sync point
            is needed.
        """
        if self._range == (self._start, self._end):
            return self._complete(self._feed_from(after), after, revision)
        # The following watch is narrowed: read the whole range once.
        feed = Feed(self._transport, self._start, self._end, self._user_key, after, until=revision)
        try:
            return self._complete(feed, after, revision)
        finally:
            feed.close()

    def _complete(self, feed: Feed, after: int, revision: int) -> tuple[list[Change], int]:
        if not feed.wait(revision, self._feed_wait):
            if feed.compacted is not None:
                raise compacted_error(after, feed.compacted)
            revision = self._session.sync_point()
            feed.until = revision if feed.until is not None else None
            if not feed.wait(revision, self._transport.timeout * self._attempts):
                if feed.compacted is not None:
                    raise compacted_error(after, feed.compacted)
                raise StoreUnavailableError("etcd's watch did not deliver the change feed")
        return feed.since(after, revision), revision

    def delivered(self, after: int, reach: int) -> tuple[list[Change], int]:
        """The changes delivered after ``after``, waiting (no request) for ``reach``.

        Raises:
            CompactedError: ``after`` is older than etcd's compaction.

        Complexity:
            O(k log k) for k changes held.
        """
        feed = self._feed_from(after)
        # A caller already past ``reach`` (nobody wrote between its commits)
        # need not wait for the watch to bring its own commit back.
        if reach > max(feed.seen, after):
            feed.wait(reach, self._feed_wait)
        if feed.compacted is not None:
            raise compacted_error(after, feed.compacted)
        seen = max(feed.seen, after)
        return feed.since(after, seen), seen

    def close(self) -> None:
        """Stop the watch, if one runs; idempotent.

        Complexity:
            O(1).
        """
        if self._feed is not None:
            self._feed.close()

    def _feed_from(self, after: int) -> Feed:
        feed = self._feed
        if feed is None or feed.compacted is not None or after < feed.after:
            if feed is not None:
                feed.close()
            start, end = self._range
            feed = Feed(self._transport, start, end, self._user_key, after)
            self._feed = feed
        return feed
