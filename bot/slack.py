"""The outbound port: every Slack call goes through a durable outbox, sent in order per channel.

A row is committed in the same transaction as the state change that wants it, so a crash can
neither lose a post nor make one without its cause. The sender keeps to Slack's per-channel pace,
honours Retry-After, retries 5xx and timeouts with backoff, and, before repeating a post whose
fate is unknown, looks for it in the channel by the metadata it carries.

One sender runs per deployment: the single process, or the `clock` beside web processes (which
only enqueue and NOTIFY it; see bot/notify.py, whose advisory lock keeps a second clock on
standby). That is what keeps each channel's posts in order and its pace within Slack's limit, so
rows are not claimed across processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import (
    CTE,
    BigInteger,
    Integer,
    Row,
    String,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, defer

from bot.activity import ACTIVITY, FAILED, SENT
from bot.clock import Clock
from bot.keepalive import KeepAliveWebClient
from bot.logs import Outage, unreachable
from bot.store import raw
from bot.store.db import Database
from bot.store.models import PENDING_SQL, OutboxMessage, UTCDateTime

log = logging.getLogger(__name__)

METADATA_TYPE = "protocolbot_post"
# Session.info keys: this transaction enqueued a row; the calls it hands to the sender.
ENQUEUED = "outbox_enqueued"
HANDED = "outbox_handed"
# Answers that mean the call's purpose is already met.
DONE_ERRORS = frozenset(
    {"already_reacted", "no_reaction", "message_not_found", "cant_delete", "file_deleted"}
)
RETRY_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
# Slack's answers to a token that no longer works (revoked, or the bot's account deactivated):
# the installation is gone, though no tokens_revoked or app_uninstalled event said so.
INSTALLATION_GONE = frozenset({"invalid_auth", "token_revoked", "account_inactive", "not_authed"})
# A call Slack keeps failing (5xx, timeouts) is tried, a minute apart at most, for this long
# before it is given up and the facilitator told: Slack's outages have lasted hours, and a step's
# message or the notes must outlast them. A 429 is Slack asking for a wait: it never counts.
GIVE_UP_AFTER = timedelta(hours=24)
# ...unless Slack does the workspace's other calls meanwhile: then it is this call Slack can't do
# (about 20 minutes of tries), and the channel's later posts, which wait behind it, go on.
MAX_ATTEMPTS = 25
# A channel's post is held up, and whoever cares is told once (on_held_up), after this many tries
# Slack failed (about 15 s on the back-off), or, asked only to wait (429), this long after it was
# meant to go.
HELD_UP_TRIES = 5
HELD_UP_FOR = timedelta(minutes=1)
# A pending row's `error` once on_held_up has told of it: its going through is news too.
HELD_UP = "held_up"
# A sent row's `error` once the message it posted was deleted in Slack (see deleted_in_slack):
# nothing edits it since.
GONE = "deleted_in_slack"
# How far apart the clocks of the processes writing to the outbox may be without delaying a post.
CLOCK_LEEWAY = timedelta(minutes=1)
# Not a Web API method: the outbox's name for slack_sdk's three-call files upload v2.
UPLOAD_METHOD = "files.upload_v2"
# Calls kept to Slack's pace of about one a second per channel: what the channel sees, posts and
# file shares. A private line (chat.postEphemeral, a Tier 4 method: 100+ a minute, bursts
# welcome) is not: paced, a burst of nudges to people replying held the next step back a second
# each behind them.
PACED_METHODS = frozenset({"chat.postMessage", UPLOAD_METHOD})
# Calls whose order beside the channel's posts does not matter: a tag reaction on a reply, a
# private line to one person. One that Slack holds back (a 429: reactions.add takes about 50 a
# minute, and a busy step brings hundreds) holds back only the calls of its kind behind it, not
# the next step's message.
ASIDE_METHODS = frozenset(
    {"reactions.add", "reactions.remove", "chat.postEphemeral", "chat.update"}
)
# Each kind set aside waits for its own only: the reactions behind one Slack holds back (it keeps
# the order of a re-tag's remove and add), not an edit of the step message.
_ASIDE_KIND = {"reactions.add": "reactions.add", "reactions.remove": "reactions.add"}
# An edit of a message the bot posted: its row's thread_ref names the post (as a reply's names
# its thread's first message), whose ts goes in as the edit's `ts` once the post is sent. An
# edit is a Tier 3 call, not a post: not kept to the channel's pace, and one Slack holds back
# holds back only the calls set aside (ASIDE_METHODS), never the next step's message.
UPDATE_METHOD = "chat.update"
# Calls that take away what an earlier row posted: its ts (a message) or its file id (an upload,
# whose row records the file's id as its ts), as an edit gets its post's ts.
DELETE_METHOD, FILE_DELETE_METHOD = "chat.delete", "files.delete"
_OF_A_POST = frozenset({UPDATE_METHOD, DELETE_METHOD, FILE_DELETE_METHOD})
ClientFor = Callable[[str], WebClient | None]
# Rows of one channel claimed at a time (more wait for the next round, unclaimed).
CLAIM_PER_CHANNEL = 10
# The sender looks for due rows when woken (at most once per gather), else every POLL_SECONDS.
# Measured by alternating the two values in one run at 100 replies/s: on SQLite 50 ms cost the
# same CPU per reply as 20 ms (at 400/s too) and doubled the time to a reply's tag reaction (32
# ms against 15). On PostgreSQL every round is also work for the server, on whose answers the
# acks wait: 50 ms took the reply ack p99 from 15.7 to 9.4 ms and the bot's CPU per reply from
# 6.3 to 5.5 ms.
GATHER_SECONDS, GATHER_SECONDS_POSTGRES, POLL_SECONDS = 0.02, 0.05, 0.25
# How long a call waits for the clock's next beat when the last is too old (see current).
CURRENT_WAIT = 10.0
# A commit's reactions are made one channel after another on one worker, until they have taken
# this long (seconds); the channels left then get a worker each.
SPREAD_AFTER = 0.025


def _retry_after(exc: SlackApiError, default: int | None = 1) -> int | None:
    """Slack's Retry-After header, in whole seconds (a missing or odd one: `default`)."""
    raw = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
    try:
        return max(0, int(float(raw))) if raw is not None else default
    except ValueError:
        return default


def make_client(token: str | None, base_url: str, *, retries: bool = True) -> WebClient:
    client = KeepAliveWebClient(token=token, base_url=base_url, timeout=10)
    if not retries:
        # The outbox retries itself; a client-side retry of a post could post it twice.
        client.retry_handlers = []
    return client


def enqueue(
    s: Session,
    *,
    now: datetime,
    team_id: str,
    channel: str,
    method: str,
    payload: dict[str, Any],
    ref: str | None = None,
    thread_ref: str | None = None,
    at_once: bool = False,
    hand_to: OutboxSender | None = None,
) -> None:
    """Put a call in the outbox, sent once the transaction commits.

    at_once: insert the row now with Core, for a transaction that writes a row or two; the ORM's
    unit of work costs several times the insert, and pays off only when it batches many. Either
    way the row is visible to the transaction's later reads (the ORM's autoflush).

    hand_to: a running sender that may take the call straight to a worker at the commit (see
    Handoff), for a call no other row waits on (a reaction: no ref, no thread). The transaction
    must be an Engine's, which hands it over or, if it fails, lets the channel go.
    """
    Pending(
        s,
        now=now,
        team_id=team_id,
        channel=channel,
        method=method,
        payload=payload,
        ref=ref,
        thread_ref=thread_ref,
        hand_to=hand_to if ref is None and thread_ref is None else None,
    ).insert(at_once=at_once)


class Pending:
    """An outbox row on its way in (see enqueue): its values, and what follows its insert.

    insert() puts it in. A caller may instead insert it with a statement of its own (on
    PostgreSQL a reply's tag reaction goes in with the reply: see enqueued_from and named()),
    then say with put() or dropped() how that went. Either way the row is written claimed if
    the transaction holds its channel for the call."""

    def __init__(
        self,
        s: Session,
        *,
        now: datetime,
        team_id: str,
        channel: str,
        method: str,
        payload: dict[str, Any],
        ref: str | None = None,
        thread_ref: str | None = None,
        hand_to: OutboxSender | None = None,
    ) -> None:
        self._s = s
        self.row: dict[str, Any] = {
            "team_id": team_id,
            "channel_id": channel,
            "method": method,
            "payload": payload,
            "ref": ref,
            "thread_ref": thread_ref,
            "status": "pending",
            "attempts": 0,
            # Due at once, even for a sender whose clock runs behind the writer's (a web process
            # on another machine): only a back-off (a retry) puts not_before ahead.
            "not_before": now - CLOCK_LEEWAY,
            "created_at": now,
        }
        self._handoff: Handoff | None = None
        if hand_to is not None:
            handoff: Handoff = s.info.setdefault(HANDED, Handoff(hand_to))
            if handoff.holds(channel):
                self._handoff = handoff
                self.row.update(in_flight_at=now, attempts=1)

    def insert(self, *, at_once: bool = False) -> None:
        """Insert the row (see enqueue for `at_once`)."""
        if self._handoff is not None:
            # Written claimed, as a round would leave it: if the process dies before the call,
            # the next start's sender finds it in flight and makes it.
            claimed = _ENQUEUE_CLAIMED.first(self._s, self.row)
            assert claimed is not None  # RETURNING its id
            self.put(claimed[0])
        elif at_once:
            _ENQUEUE.execute(self._s, self.row)
            self.put()
        elif (gathered := raw.gathered(self._s)) is not None:
            gathered.add(_ENQUEUE, self.row)  # see raw.gathering
            self.put()
        else:
            self._s.add(OutboxMessage(**self.row))
            self.put()

    def named(self, prefix: str) -> dict[str, Any]:
        """The row's values as enqueued_from's statement takes them."""
        return {prefix + name: value for name, value in {"in_flight_at": None, **self.row}.items()}

    def put(self, row_id: int | None = None) -> None:
        """The row is in; a held row's id is what its claim is made of."""
        if self._handoff is None:
            self._s.info[ENQUEUED] = True  # Engine.transaction wakes the sender at its commit
            return
        assert row_id is not None, "a held row is handed over by its id"
        row = self.row
        payload = dict(row["payload"])  # a worker may add to it (a thread's ts)
        self._handoff.add(
            _Claim(row_id, row["team_id"], row["channel_id"], row["method"], payload, None, False)
        )

    def dropped(self) -> None:
        """The caller's statement inserted nothing (a reply delivered twice): a channel held
        for this row alone is given back."""
        if self._handoff is not None:
            self._handoff.unhold(self.row["channel_id"])


def ref_session(ref: str | None, *kinds: str) -> int | None:
    """The session a ref of one of `kinds` names ("step:12:3", "notes:12": 12), else None."""
    kind, _, rest = (ref or "").partition(":")
    session_id = rest.partition(":")[0]
    return int(session_id) if kind in kinds and session_id.isdigit() else None


def deleted_in_slack(s: Session, team_id: str, ref: str, ts: str) -> None:
    """The message `ref` posted as `ts` was deleted in Slack (gone, or a tombstone, which no one
    can edit): its row says so, and the outbox makes no edit or deletion of it since, those
    waiting included (see OutboxSender._claim)."""
    s.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.team_id == team_id,
            OutboxMessage.ref == ref,
            OutboxMessage.status == "sent",
            OutboxMessage.result_ts == ts,
        )
        .values(error=GONE)
    )


def enqueued(s: Session, team_id: str, ref: str, channel: str | None = None) -> bool:
    """Whether a call with this ref (to `channel`, if given) is in the outbox already: for a word
    said once."""
    query = select(OutboxMessage.id).where(
        OutboxMessage.team_id == team_id, OutboxMessage.ref == ref
    )
    if channel is not None:
        query = query.where(OutboxMessage.channel_id == channel)
    return s.scalars(query).first() is not None


def enqueued_from(source: CTE, prefix: str) -> CTE:
    """PostgreSQL: a CTE that inserts one outbox row for each row of `source` and returns its
    id. Its values are named `prefix` + column, as Pending.named gives them."""
    table = OutboxMessage.__table__
    columns = [*_ENQUEUED_COLUMNS, "in_flight_at"]
    values = select(*[bindparam(prefix + c, type_=table.c[c].type) for c in columns])
    return (
        insert(OutboxMessage)
        .from_select(columns, values.select_from(source))
        .returning(OutboxMessage.id)
        .cte(f"{prefix}enqueued")
    )


def _upload(client: WebClient, payload: dict[str, Any]) -> Any:
    """Upload a text file (the notes as Markdown) into a channel or thread."""
    args = {k: v for k, v in payload.items() if v is not None}
    return client.files_upload_v2(**args)


# team, ref, status, result_ts
_Parent = Row[str, str | None, str, str | None, str | None]


def _thread(
    client: WebClient, channel: str, ts: str, *, metadata: bool = False
) -> Iterator[dict[str, Any]]:
    """Every message of a thread, oldest first, page by page: what the bot posted after the
    ambiguous attempt it looks for comes after all the replies already there (a step's thread
    may hold hundreds)."""
    cursor = None
    while True:
        page = client.conversations_replies(
            channel=channel, ts=ts, include_all_metadata=metadata, limit=200, cursor=cursor
        )
        yield from page.get("messages") or []
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return


def _parents(s: Session, refs: set[str]) -> dict[tuple[str, str], _Parent]:
    """The latest row carrying each (team, ref) in `refs` as its ref: status, ts and error only."""
    if not refs:
        return {}
    found: dict[tuple[str, str], _Parent] = {}
    for parent in s.connection().execute(
        select(
            OutboxMessage.team_id,
            OutboxMessage.ref,
            OutboxMessage.status,
            OutboxMessage.result_ts,
            OutboxMessage.error,
        )
        .where(OutboxMessage.ref.in_(refs))
        .order_by(OutboxMessage.id)
    ):
        if parent.ref is not None:
            found[(parent.team_id, parent.ref)] = parent
    return found


class TokenBucket:
    """About one post a second per channel, with a small burst, as Slack asks."""

    def __init__(self, rate: float = 1.0, burst: float = 3.0) -> None:
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_time(self, key: str, now: float) -> float:
        """Take a token if one is there (return 0), else say how long until one is."""
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._state[key] = (tokens - 1, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (1 - tokens) / self.rate


@dataclass(frozen=True)
class Sent:
    """A message Slack took: what the sender's `on_sent` hears about it."""

    row_id: int
    team_id: str
    channel: str
    ref: str | None
    ts: str | None
    # Taken after an earlier try that failed, or whose answer was lost: the message may have
    # been in Slack, and people may have answered it in its thread, a while before now.
    late: bool = False


OnSent = Callable[[Session, list[Sent]], None]
# Rows put in the outbox with Core, on SQLite by the driver alone (a reply's reaction is one).
_ENQUEUED_COLUMNS = [
    "team_id",
    "channel_id",
    "method",
    "payload",
    "ref",
    "thread_ref",
    "status",
    "attempts",
    "not_before",
    "created_at",
]
_ENQUEUE = raw.Statement(insert(OutboxMessage), _ENQUEUED_COLUMNS)
_ENQUEUE_CLAIMED = raw.Statement(
    insert(OutboxMessage).returning(OutboxMessage.id), [*_ENQUEUED_COLUMNS, "in_flight_at"]
)
# The queue's head, oldest first (statements built once: the sender reads this every round),
# from the partial index of the rows still to send (models.OutboxMessage), whose predicate the
# statement states as written.
_DUE = (
    select(
        OutboxMessage.id, OutboxMessage.channel_id, OutboxMessage.method, OutboxMessage.not_before
    )
    .where(text(f"outbox.{PENDING_SQL}"))
    .order_by(OutboxMessage.id)
    .limit(bindparam("limit", type_=Integer))
)
_DUE_SKIPPING = _DUE.where(OutboxMessage.channel_id.not_in(bindparam("skip", expanding=True)))
# What a claim reads of its rows (all but the outcome columns).
# Locked as they are read, on PostgreSQL: a row another transaction holds (a word of late
# replies being written again, its rows deleted) is left for a later round, not sent as it was
# read. (SQLite has one writer at a time, and renders no FOR UPDATE.)
_CLAIMABLE = (
    select(
        OutboxMessage.id,
        OutboxMessage.team_id,
        OutboxMessage.channel_id,
        OutboxMessage.method,
        OutboxMessage.payload,
        OutboxMessage.ref,
        OutboxMessage.thread_ref,
        OutboxMessage.status,
        OutboxMessage.in_flight_at,
        OutboxMessage.error,
    )
    .where(OutboxMessage.id.in_(bindparam("ids", expanding=True)))
    .with_for_update(skip_locked=True)
)
_MARK_IN_FLIGHT = (
    update(OutboxMessage)
    .where(OutboxMessage.id.in_(bindparam("ids", expanding=True)))
    .values(in_flight_at=bindparam("at"), attempts=OutboxMessage.attempts + 1)
)
# The rows Slack took, many at once: on SQLite with raw.update_pairs, one VALUES row (id, ts)
# each; on PostgreSQL as two arrays unnested side by side. One statement, where an executemany
# was one a row, each its own work for the server and the driver.
_MARK_SENT_PAIRS = (
    "UPDATE outbox SET status = 'sent', sent_at = ?, result_ts = marked.column2"
    " FROM (VALUES {rows}) AS marked WHERE outbox.id = marked.column1"
)
_MARK_SENT_ARRAYS = text(
    "UPDATE outbox SET status = 'sent', sent_at = :at, result_ts = marked.ts"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:tss AS varchar[])) AS marked (id, ts)"
    " WHERE outbox.id = marked.id"
).bindparams(
    bindparam("at", type_=UTCDateTime()),
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("tss", type_=ARRAY(String)),
)


@dataclass
class _Claim:
    """A row taken for sending: what the call needs, read in the claiming transaction."""

    row_id: int
    team_id: str
    channel: str
    method: str
    payload: dict[str, Any]
    ref: str | None
    maybe_sent: bool
    # Set when the thread's first message is claimed in the same batch, ahead of this row.
    parent_ref: str | None = None
    # What to put back if the row is claimed but never tried (its channel stopped before it).
    previous_in_flight: datetime | None = None
    # Told of as held up (see HELD_UP): if Slack takes it now, that is told too.
    held_up: bool = False
    # An edit or deletion of a message deleted in Slack since (deleted_in_slack): not made.
    gone: bool = False


@dataclass
class _Outcome:
    """What became of one claimed row: finished (sent or failed), retried later, or not tried."""

    row_id: int
    kind: str  # "finish" | "retry" | "release"
    ts: str | None = None
    error: str | None = None
    after: int | None = None
    ambiguous: bool = False
    limited: bool = False  # Slack said to wait (429): not a failed attempt
    previous_in_flight: datetime | None = None
    claim: _Claim | None = None  # the row as claimed, once it was tried


class Handoff:
    """Calls a unit of work hands straight to the sender's workers once it commits.

    A reply's tag reaction would otherwise wait for the sender's next round to claim it: up to
    a gather's wait, and a round's reads and writes for one row. Instead the transaction holds
    the reaction's channel for itself (no worker is on it, no round is claiming), writes the row
    already claimed, and at its commit gives its calls to a worker. A channel someone else has
    (a worker, a round, another transaction) is joined instead: at the commit its calls queue
    behind that owner's, and whoever has the channel then makes them (see OutboxSender.join).
    Their outcomes are written back by the next round, like any worker's. Calls to a channel
    that can be neither held nor joined go the usual way.
    """

    def __init__(self, sender: OutboxSender) -> None:
        self.sender = sender
        self.claims: dict[str, list[_Claim]] = {}
        self.joined: dict[str, list[_Claim]] = {}
        self.refused = False

    def holds(self, channel: str) -> bool:
        if channel in self.claims or channel in self.joined:
            return True
        if self.sender.hold(channel):
            self.claims[channel] = []
        elif self.sender.join(channel):
            self.joined[channel] = []
        else:
            self.refused = True
            return False
        return True

    def add(self, claim: _Claim) -> None:
        (self.claims if claim.channel in self.claims else self.joined)[claim.channel].append(claim)

    def unhold(self, channel: str) -> None:
        """Give a channel back if this transaction holds it for nothing: the call it was held
        for was not enqueued after all (a reply delivered twice)."""
        if channel in self.claims and not self.claims[channel]:
            del self.claims[channel]
            self.sender.let_go(channel)
        elif channel in self.joined and not self.joined[channel]:
            del self.joined[channel]
            self.sender.leave(channel)

    def committed(self) -> None:
        if self.claims:
            self.sender.send_held(self.claims)
        for channel, claims in self.joined.items():
            self.sender.leave(channel, claims)
        if self.refused:
            # Its row went the usual way: the next round should not wait out a gather for it.
            self.sender.wake(soon=True)

    def rolled_back(self) -> None:
        for channel in self.claims:
            self.sender.let_go(channel)
        for channel in self.joined:
            self.sender.leave(channel)


def handed(s: Session) -> Handoff | None:
    """What this transaction hands to the sender (taken: an Engine calls this once)."""
    handoff: Handoff | None = s.info.pop(HANDED, None)
    return handoff


class OutboxSender:
    """Drains the outbox: one worker per channel at a time, so each channel's posts keep order.

    The sender works in rounds, one transaction each: it writes back what became of the rows
    workers finished since the last round, then marks the due rows of idle channels in flight.
    Workers make the calls (a channel's rows in order, one channel per worker) and hand their
    outcomes to the next round. A channel stays busy until its outcomes are committed, so no row
    is ever claimed twice. A reply's tag reaction skips the claim: the transaction that records
    the reply holds its channel, or joins whoever has it, and hands the call over at its commit
    (Handoff). At
    10,000 sessions on one-minute steps, ~170 posts a second share a few dozen transactions
    rather than taking one or two each.
    """

    def __init__(
        self,
        db: Database,
        client_for: ClientFor,
        clock: Clock,
        on_sent: OnSent | None = None,
        on_failed: Callable[[Session, OutboxMessage], None] | None = None,
        on_gone: Callable[[str, str], None] | None = None,
        on_held_up: Callable[[Session, OutboxMessage], bool] | None = None,
        on_through: Callable[[Session, OutboxMessage], None] | None = None,
        workers: int = 32,
        rate: float = 1.0,
        burst: float = 3.0,
    ) -> None:
        self.db, self.client_for, self.clock = db, client_for, clock
        self.on_sent, self.on_failed = on_sent, on_failed
        # (team id, Slack's error) when a workspace's token is refused for good.
        self.on_gone = on_gone
        # A post Slack keeps failing or holding back: told once (True when someone was), and
        # again when it gets through (a post given up on goes to on_failed).
        self.on_held_up, self.on_through = on_held_up, on_through
        self._gone: set[str] = set()  # workspaces whose refused token was logged
        # When Slack last did a call of each workspace's: a call failing since before that is
        # failing on its own, not in an outage.
        self._answered: dict[str, datetime] = {}
        # Calls don't wait for acks in flight (bot/foreground.py): a tag reaction's call comes
        # from a lane's batch, which has let the acks before it go first. A/B at 500 replies/s
        # on SQLite, with and without a wait before each call: CPU per reply 1.89 -> 1.76 ms,
        # ack p99 126 -> 16.3 ms, tag reaction p99 1,066 -> 164 ms; at 100/s ack p99 3.28 ->
        # 3.08 ms. Waiting, the workers were woken by every ack that ended.
        self.bucket = TokenBucket(rate, burst)
        self.workers = workers
        self.gather = GATHER_SECONDS_POSTGRES if db.is_postgres else GATHER_SECONDS
        self.spread_after = SPREAD_AFTER
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="outbox")
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._taken: set[str] = set()  # channels the round under way has taken (_claim)
        # A busy channel's joiners (see join): transactions not yet ended, and the calls of
        # those that committed, which the channel's owner makes next. `_kept`: busy channels
        # that no worker, round or holder has, waiting for their joiners to end.
        self._joined: dict[str, int] = {}
        self._queued: dict[str, list[_Claim]] = {}
        self._kept: set[str] = set()
        # Channels a round had rows of to claim but left to their joiners: joined no more
        # until a round claims them, or a reply every second in a step would keep the next
        # step's post from ever being claimed.
        self._wanted: set[str] = set()
        # Channels whose worker is done, with the outcomes the next round writes back.
        self._finished: list[tuple[str, list[_Outcome]]] = []
        self._round = threading.Lock()  # one round at a time (the loop, drain, stop)
        self._wake = threading.Event()
        self._soon = threading.Event()  # a round now, rather than after the gather
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dm_channels: dict[tuple[str, str], str] = {}
        # The database out of reach: a line now and then, not a traceback every round.
        self._outage = Outage(log, "outbox dispatch")
        self._apart_failed = False  # this round's outcomes met the outage (see _record_apart)
        # Slack out of reach: likewise, not a line for every try of every row.
        self._slack_outage = Outage(log, "posting to Slack")
        # Whether this process may still post, asked before each call: on PostgreSQL, that
        # the clock's beat gets through (ClockLink.current), or a standby may have taken over.
        # Given how long it may wait for the next beat.
        self.current: Callable[[float], bool] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> OutboxSender:
        self._thread = threading.Thread(target=self._loop, name="outbox-dispatch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._soon.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=False)
        try:
            self.dispatch(claim=False)  # what the workers finished on their way out
        except Exception:
            log.exception("could not record the last outbox outcomes; they will be retried")

    def wake(self, soon: bool = False) -> None:
        """Something was enqueued. soon: a call a round turned away (see Handoff), which the
        next round takes without waiting out the gather."""
        if soon:
            self._soon.set()
        self._wake.set()

    # -- calls handed over at a commit (see Handoff) -------------------------------------------
    def hold(self, channel: str) -> bool:
        """Take `channel` for calls a transaction hands over at its commit. False while the
        sender isn't running, or a worker is on the channel (or a round has claimed it). A
        round under way doesn't refuse it: the round leaves a channel held since it began to
        the holder (_claim). Refused during every round, half the tag reactions at 600 replies
        a second went the round's way (1,659 of 3,600 in one run); taken, the ack p99 was
        0.56x and the CPU per reply 0.96x of that (A/B, SQLite, 4 rounds)."""
        if self._thread is None or self._stop.is_set():
            return False
        with self._busy_lock:
            if channel in self._busy:
                return False
            self._busy.add(channel)
            return True

    def join(self, channel: str) -> bool:
        """Join a busy channel (one that hold refused) for calls a transaction hands over at
        its commit: they queue behind the calls of whoever has the channel, which makes them
        before it lets the channel go (see _drain_channel and _settle). A channel stays busy
        while it has joiners, so no round claims the rows they write claimed. False when the
        channel is free again, a round is waiting for it (see _wanted), or the sender isn't
        running."""
        if self._thread is None or self._stop.is_set():
            return False
        with self._busy_lock:
            if channel not in self._busy or channel in self._wanted:
                return False
            self._joined[channel] = self._joined.get(channel, 0) + 1
            return True

    def leave(self, channel: str, claims: list[_Claim] | None = None) -> None:
        """A joiner of `channel` ended: the calls it committed queue behind the owner's (none
        when it rolled back, or its call was not enqueued after all)."""
        with self._busy_lock:
            left = self._joined.pop(channel) - 1
            if left:
                self._joined[channel] = left
            if claims:
                self._queued.setdefault(channel, []).extend(claims)
            kept = channel in self._kept
        if kept:
            # Nobody else has the channel: the next round makes the calls, or lets it go.
            self.wake(soon=True)

    def send_held(self, held: dict[str, list[_Claim]]) -> None:
        """Make the calls a commit held, its channels one after another on one worker."""
        try:
            self._pool.submit(self._drain_held, list(held.items()))
        except RuntimeError:
            # Stopping: the rows stay claimed, and the next start's sender makes the calls.
            for channel in held:
                self.let_go(channel)

    def _drain_held(self, held: list[tuple[str, list[_Claim]]]) -> None:
        """One worker for a batch's reactions, rather than one per channel: at 500 replies/s
        on SQLite that took the bot's CPU per reply from 1.55 to 1.36 ms and the ack p99 from
        7.0 to 4.1 ms (A/B, one run). Once calls prove slow (Slack itself, not the stand-in on
        loopback), the channels left go to workers of their own, so none waits on the others."""
        began = time.monotonic()
        for i, (channel, claims) in enumerate(held):
            if i and time.monotonic() - began > self.spread_after:
                self._spread(held[i:])
                return
            self._drain_channel(channel, claims)

    def _spread(self, held: list[tuple[str, list[_Claim]]]) -> None:
        for n, (channel, claims) in enumerate(held):
            try:
                self._pool.submit(self._drain_channel, channel, claims)
            except RuntimeError:
                # Stopping: this worker puts the rest back untried (_drain_channel sees _stop).
                for rest in held[n:]:
                    self._drain_channel(*rest)
                return

    def let_go(self, channel: str) -> None:
        """The holder of `channel` is done with it without a worker: free, unless it has
        joiners (see _settle)."""
        with self._busy_lock:
            queued = self._settle(channel, [])
        if queued:
            self._submit(channel, queued)

    def _settle(self, channel: str, outcomes: list[_Outcome]) -> list[_Claim]:
        """A round is done with a channel whose worker finished (`outcomes`, written back) or
        that nobody had, or its holder is (let_go): free it, or give back the calls its joiners
        queued, which the caller hands to a worker (the channel stays busy); with joiners yet
        to end, it is kept busy for them. After a call that didn't finish, they go
        back unclaimed, as a worker leaves the calls behind such a call; the channel waits for
        that. Called with _busy_lock held."""
        queued = self._queued.pop(channel, [])
        if queued and (self._stop.is_set() or any(o.kind != "finish" for o in outcomes)):
            self._finished.append((channel, [_release(c) for c in queued]))
            self._wake.set()
            return []
        if queued:
            return queued
        if channel in self._joined:
            self._kept.add(channel)
        else:
            self._busy.discard(channel)
            self._wanted.discard(channel)
        return []

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.current is not None and not self.current(POLL_SECONDS):
                # Frozen long enough that a standby may own the outbox now: no row is claimed
                # or written back until the clock's beat gets through (or it exits).
                continue
            began = time.monotonic()
            # What wakes the sender from here on (during the round) calls for another round.
            self._wake.clear()
            self._soon.clear()
            self._apart_failed = False
            try:
                self.dispatch()
            except Exception as error:
                if not self._outage.failed(error):
                    log.exception("outbox dispatch failed; retrying")
            else:
                if not self._apart_failed:  # a round whose outcomes could not be written
                    self._outage.ok()
            self._wake.wait(POLL_SECONDS)
            # Every commit that enqueues wakes the sender: gather what a short moment brings
            # into one round rather than scanning and claiming once per row. Not for a tag
            # reaction a round turned away: on PostgreSQL, waiting out the 50 ms gather for
            # those was the tag reaction's p99 (66 ms, against a p50 of 14 ms at 100 replies/s).
            self._soon.wait(max(0.0, began + self.gather - time.monotonic()))

    # -- dispatch ------------------------------------------------------------------------------
    def _due_by_channel(
        self, s: Session, skip: Iterable[str] = (), channels: int = 1000
    ) -> dict[str, list[int]]:
        """The due rows of up to `channels` channels not in `skip`, oldest first, per channel.

        Read with Core on the session's connection, not through the ORM: the sender reads this
        every round, and the ORM doubles its cost."""
        now = self.clock.now()
        # Busy channels' rows are at the head of the queue: read past them, not through them.
        # A prefix of the queue is a prefix of each channel's rows, so order per channel holds.
        if skip := list(skip):
            query, params = _DUE_SKIPPING, {"limit": 4 * channels, "skip": skip}
        else:
            query, params = _DUE, {"limit": 4 * channels}
        rows = s.connection().execute(query, params).all()
        due: dict[str, list[int]] = {}
        blocked: set[str] = set()
        # (channel, kind) with a call set aside waiting (ASIDE_METHODS, _ASIDE_KIND)
        blocked_aside: set[tuple[str, str]] = set()
        for row_id, channel, method, not_before in rows:
            aside = (channel, _ASIDE_KIND.get(method, method)) if method in ASIDE_METHODS else None
            # Strict order per channel: a row waiting out a back-off holds the ones behind it
            # (one set aside, only the calls of its kind).
            if channel in blocked or (aside is not None and aside in blocked_aside):
                continue
            if not_before > now:
                if aside is None:
                    blocked.add(channel)
                else:
                    blocked_aside.add(aside)
                continue
            due.setdefault(channel, []).append(row_id)
        return due

    def dispatch(self, claim: bool = True) -> None:
        """One round: write back what workers finished, then hand idle channels' due rows out."""
        with self._round:
            self._dispatch(claim)

    def _dispatch(self, claim: bool) -> None:
        with self._busy_lock:
            finished, self._finished = self._finished, []
            kept, self._kept = self._kept, set()
            done = {channel for channel, _ in finished} | kept
            busy = self._busy - done
        # Enough to keep every worker going; the rest wait for the next round, unclaimed.
        room = 4 * self.workers - len(busy) if claim else 0
        claims: dict[str, list[_Claim]] = {}
        try:
            with self.db.session() as s:
                if finished:
                    self._record(s, [o for _, outcomes in finished for o in outcomes])
                    # What the recording changed through the ORM, before the Core reads below.
                    s.flush()
                if room > 0:
                    due = self._due_by_channel(s, busy, room)
                    taken = {c: ids[:CLAIM_PER_CHANNEL] for c, ids in list(due.items())[:room]}
                    if taken:
                        claims = self._claim(s, taken, done)
        except Exception as exc:
            claims = {}
            if not finished:
                raise
            # One channel's trouble (a callback that fails) must not hold up the rest.
            if unreachable(exc) is None:
                log.warning("an outbox round failed; recording its outcomes one channel at a time")
            self._record_apart(finished)
        finally:
            outcomes: dict[str, list[_Outcome]] = {}
            for channel, theirs in finished:
                outcomes.setdefault(channel, []).extend(theirs)
            claimed = {channel for channel, batch in claims.items() if batch}
            with self._busy_lock:
                # _claim took the channels it claimed (see there); one it took and then failed
                # to claim for is done with too.
                for channel in (done | self._taken) - claimed:
                    if queued := self._settle(channel, outcomes.get(channel, [])):
                        claims[channel] = queued
                self._busy |= claimed
                self._taken = set()
            if finished:
                self._wake.set()  # a callback may have enqueued something
        for channel, batch in claims.items():
            if batch:
                self._submit(channel, batch)

    def _submit(self, channel: str, claims: list[_Claim]) -> None:
        try:
            self._pool.submit(self._drain_channel, channel, claims)
        except RuntimeError:
            # Stopping: the rows stay claimed, and the next start's sender makes the calls.
            with self._busy_lock:
                self._busy.discard(channel)

    def drain(self, timeout: float = 30.0) -> None:
        """Send everything due now and wait for it (tests and the demo use this)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.dispatch()
            with self._busy_lock:
                busy = bool(self._busy)
            if not busy:
                with self.db.session() as s:
                    if not self._due_by_channel(s):
                        return
            time.sleep(0.02)

    def _claim(
        self, s: Session, taken: dict[str, list[int]], done: set[str] | None = None
    ) -> dict[str, list[_Claim]]:
        """Mark the rows in flight (in the order each channel must send them); return them.

        A channel's claim stops at a thread reply whose first message is still unsent and not
        ahead of it in this batch: the thread's first message goes first.
        """
        ids = [row_id for batch in taken.values() for row_id in batch]
        # Plain rows and one UPDATE, through the session's connection: the ORM's objects, and
        # even its handling of a Core statement (an UPDATE is matched against the objects it
        # holds), cost more CPU than the claim.
        conn = s.connection()
        rows = {row.id: row for row in conn.execute(_CLAIMABLE, {"ids": ids})}
        parents = _parents(s, {row.thread_ref for row in rows.values() if row.thread_ref})
        claims: dict[str, list[_Claim]] = {}
        claimed: list[int] = []
        for channel, batch in taken.items():
            mine: list[_Claim] = []
            claimed_refs: set[str] = set()
            for row_id in batch:
                row = rows.get(row_id)
                if row is None:
                    break  # held by another transaction, or gone: the rest waits a round
                if row.status != "pending":
                    continue
                payload = dict(row.payload)
                parent_ref, gone = None, False
                if row.thread_ref:
                    parent = parents.get((row.team_id, row.thread_ref))
                    if parent is not None and parent.status == "pending":
                        if row.thread_ref not in claimed_refs:
                            break
                        parent_ref = row.thread_ref
                    elif parent is not None and parent.status == "sent" and parent.result_ts:
                        payload[_parent_key(row.method)] = parent.result_ts
                        gone = row.method in _OF_A_POST and parent.error == GONE
                    # a failed (or long purged) parent: post at top level rather than lose it
                mine.append(
                    _Claim(
                        row_id=row.id,
                        team_id=row.team_id,
                        channel=row.channel_id,
                        method=row.method,
                        payload=payload,
                        ref=row.ref,
                        maybe_sent=row.in_flight_at is not None,
                        parent_ref=parent_ref,
                        previous_in_flight=row.in_flight_at,
                        held_up=row.error == HELD_UP,
                        gone=gone,
                    )
                )
                claimed.append(row.id)
                if row.ref:
                    claimed_refs.add(row.ref)
            claims[channel] = mine
        if done is not None:
            # A round (`done`: the channels whose workers it is recording): a transaction may
            # have held a channel for its own calls since the round began (hold), or joined it
            # (join). That channel is its worker's or its joiners', and its rows here wait for
            # a later round. The rest are taken now, so no hold meets them between here and
            # the round's end.
            with self._busy_lock:
                joined = {c for c in claims if c in self._joined or c in self._queued}
                lost = {c for c in claims if c in self._busy and c not in done} | joined
                self._wanted |= {c for c in joined if claims[c]}
                self._taken = {c for c, mine in claims.items() if mine and c not in lost}
                self._busy |= self._taken
                self._wanted -= self._taken
            if lost:
                claims = {c: mine for c, mine in claims.items() if c not in lost}
                claimed = [c.row_id for mine in claims.values() for c in mine]
        if claimed:
            conn.execute(_MARK_IN_FLIGHT, {"ids": claimed, "at": self.clock.now()})
        return claims

    def _drain_channel(self, channel: str, claims: list[_Claim]) -> None:
        outcomes: list[_Outcome] = []
        while True:
            all_done = self._drain_claims(channel, claims, outcomes)
            with self._busy_lock:
                # Calls queued by the channel's joiners meanwhile (see join) come next: the
                # channel is this worker's until the round writes back what it did. Up to a
                # claim's worth: what it did is written back before it does more.
                more = all_done and len(outcomes) < CLAIM_PER_CHANNEL
                claims = self._queued.pop(channel, []) if more else []
                if not claims:
                    self._finished.append((channel, outcomes))
                    break
        self._wake.set()

    def _drain_claims(self, channel: str, claims: list[_Claim], outcomes: list[_Outcome]) -> bool:
        """Make a channel's claimed calls in order, adding what became of each to `outcomes`;
        True when every one finished."""
        try:
            sent: dict[str, str | None] = {}
            for i, claim in enumerate(claims):
                if self._stop.is_set():
                    outcomes.extend(_release(c) for c in claims[i:])
                    return False
                if claim.parent_ref is not None and sent.get(claim.parent_ref):
                    claim.payload[_parent_key(claim.method)] = sent[claim.parent_ref]
                outcome = self._call(claim)
                outcome.claim = claim
                outcomes.append(outcome)
                if outcome.kind == "finish" and claim.ref:
                    sent[claim.ref] = outcome.ts if outcome.error is None else None
                if outcome.kind != "finish":
                    # Strict order: what follows waits for this row's retry.
                    outcomes.extend(_release(c) for c in claims[i + 1 :])
                    return False
        except Exception:
            log.exception("outbox worker failed on channel %s", channel)
            done = {o.row_id for o in outcomes}
            outcomes.extend(_release(c) for c in claims if c.row_id not in done)
            return False
        return True

    # -- writing outcomes back -----------------------------------------------------------------
    def _record(self, s: Session, outcomes: list[_Outcome]) -> None:
        sent: list[Sent] = []
        rest: list[_Outcome] = []
        for o in outcomes:
            if o.kind == "finish" and o.error is None and o.claim and not o.claim.held_up:
                c = o.claim
                sent.append(Sent(o.row_id, c.team_id, c.channel, c.ref, o.ts, late=c.maybe_sent))
            else:
                rest.append(o)
        if sent:
            self._record_sent(s, sent)
            ACTIVITY.count(SENT, len(sent))
        if not rest:
            return
        # The payload (the message itself, the largest column) is not needed to record what
        # became of it; a callback that wants it loads it.
        rows = {
            row.id: row
            for row in s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.id.in_([o.row_id for o in outcomes]))
                .options(defer(OutboxMessage.payload))
            )
        }
        for outcome in sorted(rest, key=lambda o: o.row_id):
            row = rows.get(outcome.row_id)
            if row is not None:
                self._apply(s, row, outcome)

    def _record_sent(self, s: Session, sent: list[Sent]) -> None:
        """The rows Slack took, in one statement: the most common outcome by far (every step of
        every session posts), so no row is loaded for it."""
        now = self.clock.now()
        dbapi = raw.driver(s)
        if dbapi is None:
            ids, tss = [each.row_id for each in sent], [each.ts for each in sent]
            s.execute(_MARK_SENT_ARRAYS, {"at": now, "ids": ids, "tss": tss})
        else:
            # SQLite: the round holds the write lock that a lane's next batch waits for.
            pairs = [(each.row_id, each.ts) for each in sent]
            raw.update_pairs(dbapi, _MARK_SENT_PAIRS, pairs, raw.stored_datetime(now))
        if self.on_sent:
            self.on_sent(s, sent)

    def _record_apart(self, finished: list[tuple[str, list[_Outcome]]]) -> None:
        for channel, outcomes in finished:
            try:
                with self.db.session() as s:
                    self._record(s, outcomes)
            except Exception as exc:
                # The rows stay in flight: the next try looks for them by metadata first. The
                # database out of reach is the outbox's outage, said once for all of it.
                if self._outage.failed(exc):
                    self._apart_failed = True
                else:
                    log.exception(
                        "could not record outbox outcomes in %s; they will be retried", channel
                    )

    def _apply(self, s: Session, row: OutboxMessage, outcome: _Outcome) -> bool:
        if outcome.kind == "release":
            row.in_flight_at = outcome.previous_in_flight
            row.attempts = max(0, row.attempts - 1)
            return False
        if outcome.kind == "retry":
            return self._apply_retry(
                s, row, outcome.after, ambiguous=outcome.ambiguous, limited=outcome.limited
            )
        return self._apply_finish(s, row, outcome.ts, outcome.error)

    # -- one call ------------------------------------------------------------------------------
    def _send_one(self, row_id: int) -> bool:
        """Send one row on its own; True when the channel may go on to its next row."""
        with self.db.session() as s:
            row = s.get(OutboxMessage, row_id)
            if row is None or row.status != "pending":
                return True
            claims = self._claim(s, {row.channel_id: [row_id]}).get(row.channel_id)
        if not claims:
            return False  # the thread's first message goes first
        outcome = self._call(claims[0])
        if outcome.kind == "retry":
            return self._retry(
                row_id, outcome.after, ambiguous=outcome.ambiguous, limited=outcome.limited
            )
        return self._finish(row_id, ts=outcome.ts, error=outcome.error)

    def _call(self, claim: _Claim) -> _Outcome:
        """Make the Slack call for a claimed row; say what became of it (nothing is written)."""
        row_id, team_id, method, target = claim.row_id, claim.team_id, claim.method, claim.channel
        payload, maybe_sent = claim.payload, claim.maybe_sent
        client = self.client_for(team_id)
        if client is None:
            return _finished(row_id, error="no_installation")

        if claim.gone:
            return _finished(row_id)  # the message was deleted in Slack: nothing to change
        if method in _OF_A_POST and not payload.get(_parent_key(method)):
            # The message to edit or delete was never posted (Slack refused it, or it was given
            # up on), or the file never shared.
            return _finished(row_id, error="not_posted")
        if method in PACED_METHODS:
            while (wait := self.bucket.wait_time(target, time.monotonic())) > 0:
                time.sleep(wait)
        if self.current is not None and not self.current(CURRENT_WAIT):
            return _release(claim)  # not tried: another clock may own it now
        try:
            if method in ("chat.postMessage", UPDATE_METHOD, DELETE_METHOD):
                # An edit or a deletion of a direct message names its conversation, not the user.
                payload["channel"] = self._channel_for(client, team_id, payload["channel"])
                payload["metadata"] = {
                    "event_type": METADATA_TYPE,
                    "event_payload": {"outbox_id": row_id},
                }
                if maybe_sent:
                    found = self._find_posted(client, payload, row_id)
                    self._slack_outage.ok()
                    if found:
                        return _finished(row_id, ts=found)
            if method == UPLOAD_METHOD:
                if maybe_sent and self._find_upload(client, payload):
                    return _finished(row_id)
                response = _upload(client, payload)
            else:
                response = client.api_call(method, json=payload)
            self._slack_outage.ok()
            data: dict[str, Any] = response.data if isinstance(response.data, dict) else {}
            if self._gone:
                self._gone.discard(team_id)  # installed again: a refusal is news again
            self._answered[team_id] = self.clock.now()
            if method == UPLOAD_METHOD:
                shared: dict[str, Any] = data.get("file") or next(iter(data.get("files") or []), {})
                return _finished(row_id, ts=shared.get("id"))
            return _finished(row_id, ts=data.get("ts") or data.get("message_ts"))
        except SlackApiError as exc:
            self._slack_outage.ok()  # Slack answered
            error = exc.response.get("error")
            if error in INSTALLATION_GONE:
                self.installation_gone(team_id, str(error))
                return _finished(row_id, error=str(error))
            return self._on_api_error(row_id, client, payload, exc, maybe_sent=maybe_sent)
        except (TimeoutError, URLError, ConnectionError, OSError) as exc:
            if not self._slack_outage.failed(exc):
                log.warning(
                    "slack call %s timed out or failed to connect: %s", method, type(exc).__name__
                )
            return _Outcome(row_id, "retry", after=None, ambiguous=True)

    def installation_gone(self, team_id: str, error: str) -> None:
        """Slack refused the workspace's token for good (on a post, or on a facilitator's
        control: bot/listeners/people.py): as an uninstall, said once in the log (the token
        never is), and handed to on_gone each time (a post of a session started since stops
        that one too)."""
        with self._busy_lock:
            first = team_id not in self._gone
            self._gone.add(team_id)
        if first:
            log.warning(
                "slack refused the bot token of workspace %s (%s): taken as uninstalled",
                team_id,
                error,
            )
        if self.on_gone is not None:
            try:
                self.on_gone(team_id, error)
            except Exception:
                log.exception("could not stop workspace %s after its token was refused", team_id)

    def _channel_for(self, client: WebClient, team_id: str, channel: str) -> str:
        """A user id as channel means a DM: open (or reuse) the app's conversation with them."""
        if not channel.startswith(("U", "W")):
            return channel
        key = (team_id, channel)
        if key not in self._dm_channels:
            opened = client.conversations_open(users=channel)
            self._dm_channels[key] = opened["channel"]["id"]
        return self._dm_channels[key]

    def _find_posted(self, client: WebClient, payload: dict[str, Any], row_id: int) -> str | None:
        """Did an earlier attempt reach Slack? Look for our metadata among recent messages."""
        try:
            found: Iterable[dict[str, Any]]
            if payload.get("thread_ts"):
                found = _thread(client, payload["channel"], payload["thread_ts"], metadata=True)
            else:
                history = client.conversations_history(
                    channel=payload["channel"], include_all_metadata=True, limit=100
                )
                found = history.get("messages") or []
            for message in found:
                meta = message.get("metadata") or {}
                if (meta.get("event_payload") or {}).get("outbox_id") == row_id:
                    return str(message.get("ts"))
        except SlackApiError as exc:
            if exc.response.status_code == 429 or exc.response.status_code >= 500:
                raise  # can't tell yet: try the whole row again later, still unsure
            return None  # can't tell at all (e.g. no history scope): post
        return None

    def _find_upload(self, client: WebClient, payload: dict[str, Any]) -> bool:
        """Did an earlier attempt share this file? Uploads carry a unique file name."""
        if not payload.get("thread_ts"):
            return False
        try:
            return any(
                f.get("name") == payload.get("filename")
                for message in _thread(client, payload["channel"], payload["thread_ts"])
                for f in message.get("files") or []
            )
        except SlackApiError:
            return False

    def _on_api_error(
        self,
        row_id: int,
        client: WebClient,
        payload: dict[str, Any],
        exc: SlackApiError,
        *,
        maybe_sent: bool,
    ) -> _Outcome:
        status = exc.response.status_code
        error = str(exc.response.get("error") or f"http_{status}")
        # A clear refusal says nothing of an earlier attempt that timed out: still unsure then.
        if status == 429:
            return _Outcome(
                row_id, "retry", after=_retry_after(exc), ambiguous=maybe_sent, limited=True
            )
        if status >= 500 or error in RETRY_ERRORS:
            return _Outcome(row_id, "retry", after=_retry_after(exc, None), ambiguous=True)
        if error == "token_expired":
            # A rotating token whose refresh Slack failed: the next try refreshes it again.
            return _Outcome(row_id, "retry", after=None, ambiguous=maybe_sent)
        if error in DONE_ERRORS:
            return _finished(row_id)
        if error == "not_in_channel" and payload.get("channel"):
            try:
                client.conversations_join(channel=payload["channel"])
                return _Outcome(row_id, "retry", after=0, ambiguous=maybe_sent)
            except SlackApiError as join_error:
                log.warning(
                    "could not join %s: %s",
                    payload["channel"],
                    join_error.response.get("error") or join_error.response.status_code,
                )
        log.warning("slack refused outbox row %s: %s", row_id, error)
        return _finished(row_id, error=error)

    def _retry(
        self, row_id: int, after: int | None, *, ambiguous: bool, limited: bool = False
    ) -> bool:
        with self.db.session() as s:
            row = s.get(OutboxMessage, row_id)
            if row is None:
                return False
            return self._apply_retry(s, row, after, ambiguous=ambiguous, limited=limited)

    def _apply_retry(
        self,
        s: Session,
        row: OutboxMessage,
        after: int | None,
        *,
        ambiguous: bool,
        limited: bool = False,
    ) -> bool:
        now = self.clock.now()
        if limited:
            # Slack asked for a wait (429 and its Retry-After), however long a storm lasts: the
            # call is not given up on for that, and later back-offs don't grow from it.
            row.attempts = max(0, row.attempts - 1)
        elif row.failing_since is None:
            row.failing_since = now
        if after is None:
            after = min(60, 2 ** min(row.attempts - 1, 6))
        if not ambiguous:
            row.in_flight_at = None
        if not limited and self._gives_up(row, now):
            row.status, row.error = "failed", "gave_up"
            ACTIVITY.count(FAILED)
            if self.on_failed:
                self.on_failed(s, row)
                self._wake.set()
            return True
        row.not_before = now + timedelta(seconds=after)
        told = row.error == HELD_UP or not self._held_up(row, now)
        if self.on_held_up and not told and self.on_held_up(s, row):
            row.error = HELD_UP
            self._wake.set()
        return False

    def _held_up(self, row: OutboxMessage, now: datetime) -> bool:
        """Whether a call Slack failed, or asked to wait for, again is late enough to tell of:
        HELD_UP_TRIES tries failed, or (only asked to wait) it is HELD_UP_FOR late."""
        if row.failing_since is not None:
            return row.attempts >= HELD_UP_TRIES
        return now - row.created_at >= HELD_UP_FOR

    def _gives_up(self, row: OutboxMessage, now: datetime) -> bool:
        """Whether a call Slack failed again is given up: after a day of an outage, or after
        MAX_ATTEMPTS tries while Slack did the workspace's other calls."""
        failing = row.failing_since
        if failing is None:
            return False
        if now - failing >= GIVE_UP_AFTER:
            return True
        answered = self._answered.get(row.team_id)
        return row.attempts >= MAX_ATTEMPTS and answered is not None and answered >= failing

    def _finish(self, row_id: int, ts: str | None = None, error: str | None = None) -> bool:
        with self.db.session() as s:
            row = s.get(OutboxMessage, row_id)
            if row is None:
                return True
            return self._apply_finish(s, row, ts, error)

    def _apply_finish(
        self, s: Session, row: OutboxMessage, ts: str | None, error: str | None
    ) -> bool:
        row.sent_at = self.clock.now()
        ACTIVITY.count(FAILED if error else SENT)
        if error:
            row.status, row.error = "failed", error[:200]
            if self.on_failed:
                self.on_failed(s, row)
                self._wake.set()  # it may have enqueued a word to someone about it
        else:
            through = row.error == HELD_UP
            row.status, row.result_ts, row.error = "sent", ts, None
            if self.on_sent:
                late = through or row.attempts > 1
                self.on_sent(s, [Sent(row.id, row.team_id, row.channel_id, row.ref, ts, late)])
            if through and self.on_through:
                self.on_through(s, row)
                self._wake.set()
        return True


def _parent_key(method: str) -> str:
    """Where a row's parent's ts goes: the message an edit changes or a deletion takes away,
    the file a file's deletion takes away, else the thread's."""
    if method in (UPDATE_METHOD, DELETE_METHOD):
        return "ts"
    return "file" if method == FILE_DELETE_METHOD else "thread_ts"


def _finished(row_id: int, ts: str | None = None, error: str | None = None) -> _Outcome:
    return _Outcome(row_id, "finish", ts=ts, error=error)


def _release(claim: _Claim) -> _Outcome:
    """A claimed row that was never tried: as it was before the claim."""
    return _Outcome(claim.row_id, "release", previous_in_flight=claim.previous_in_flight)
