"""Step lengths and close times: live minutes or an asynchronous step length, weekends skipped."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.protocols import Protocol

# A weekdays step due at the weekend closes on Monday morning (PRODUCT 3.1: "carried to Monday
# morning"), not at its own time of day on Monday: the weekend is no working time, so a step due
# Saturday 3 PM has had its working hours by Friday night, and the team starts Monday on the
# next step. Every message with the close (step, header, extend) shows its date and time.
MONDAY_MORNING = time(8, 0)
# The closing warning comes a fifth of a step's length before it closes (at 80 % of a step that
# runs as planned), however its close moves; steps under 2 minutes have none.
WARN_AT = 0.8
WARN_MIN_STEP = timedelta(minutes=2)
# A warning of a step this long or longer (an asynchronous one) that would come at night in the
# session's zone comes in the day instead: its nudges are DMs, and a 1-day step opened at 9 AM
# would have sent them at 4:12 AM. A live step's warning comes when it falls: the team is there.
DAYTIME_WARNING_STEP = timedelta(hours=4)
MORNING, EVENING = MONDAY_MORNING, time(20, 0)  # the night is from EVENING to MORNING


def step_seconds(protocol: Protocol, index: int, override: int | None) -> int:
    return override if override else protocol.step(index).minutes * 60


def calendar_days(override: int | None, typed: int | None) -> int | None:
    """Of a step's length, the whole days counted on the calendar (later's `days`): those typed
    as days (`step 1d`: 1, `step 24h`: 0); None, every whole day (a live step, or a session
    from before the days typed were kept)."""
    return typed if override else None


def days_left(typed: int | None) -> int | None:
    """The whole days of a paused step's time left to count on the calendar when it resumes
    (later's `days`): none for a step typed in hours alone (`step 24h` paused at once resumes
    with 24 hours); every one for a step typed in days, and for a session from before the days
    typed were kept. What `extend` added while it was paused counts as it was typed."""
    return 0 if typed == 0 else None


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_label(at: datetime, tz: str) -> str:
    """The fallback shown where Slack cannot render a date token: unambiguous, zone named."""
    local = at.astimezone(zone(tz))
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"


def carry_past_weekend(at: datetime, tz: str) -> datetime:
    """A close that falls in the weekend in the channel's zone, Saturday 0:00 to Monday morning,
    moves to Monday morning. Monday before the morning too: the working week begins then for
    the time a pause keeps, a resume runs and a warning counts back, and a step of 60 hours
    from Friday 3 PM closed at 3 AM on Monday, where one of 36 hours was carried to 8 AM."""
    local = at.astimezone(zone(tz))
    if local.weekday() == 0:
        morning = datetime.combine(local.date(), MONDAY_MORNING, tzinfo=local.tzinfo)
        return morning.astimezone(at.tzinfo) if local < morning else at
    if local.weekday() < 5:
        return at
    monday = local.date() + timedelta(days=7 - local.weekday())
    return datetime.combine(monday, MONDAY_MORNING, tzinfo=local.tzinfo).astimezone(at.tzinfo)


def later(at: datetime, seconds: int, tz: str | tzinfo, days: int | None = None) -> datetime:
    """`seconds` after `at`, whole days counted on the calendar of the zone `tz`: a day's step
    opened at 3 PM closes at 3 PM, across a daylight-saving change too (23 or 25 hours).
    `days`: of `seconds`, the whole days to count so (typed as days: `in 2d`, not `in 48h`);
    None, all of them."""
    if days is None:
        days, rest = divmod(seconds, 86400)
    else:
        rest = seconds - days * 86400
    if days:
        local = zone(tz) if isinstance(tz, str) else tz
        # Arithmetic on an aware datetime in one zone is on its wall clock.
        at = (at.astimezone(local) + timedelta(days=days)).astimezone(at.tzinfo)
    return at + timedelta(seconds=rest)


def later_on_weekdays(at: datetime, seconds: int, tz: str, days: int | None = None) -> datetime:
    """As later, for a weekdays session's close moved on (`extend`): a whole day that lands at
    the weekend goes on to Monday at the same time of day, as a facilitator who gives a step
    closing on Friday at 3 PM a day more means, where carry_past_weekend would close it on
    Monday morning; then the hours, and a close at the weekend carried as ever."""
    whole_days = seconds // 86400 if days is None else days
    rest = seconds - whole_days * 86400
    if whole_days:
        local = later(at, whole_days * 86400, tz).astimezone(zone(tz))
        if local.weekday() >= 5:
            local += timedelta(days=7 - local.weekday())  # wall-clock arithmetic, as in later
        at = local.astimezone(at.tzinfo)
    return carry_past_weekend(at + timedelta(seconds=rest), tz)


def close_time(
    opened: datetime, seconds: int, *, weekdays: bool, tz: str, days: int | None = None
) -> datetime:
    """When a step of `seconds` opened at `opened` closes; `days` as for later."""
    if not weekdays:
        return later(opened, seconds, tz, days)
    # A step opened at the weekend (started, or moved on with `next`, on a Saturday) counts from
    # Monday morning: counted from its opening, it was carried to Monday morning with no working
    # time at all.
    return carry_past_weekend(later(carry_past_weekend(opened, tz), seconds, tz, days), tz)


def working_start(at: datetime, tz: str) -> datetime:
    """When a weekdays session asked to start `at` opens its first step: then, or the Monday
    morning after the weekend it falls in (its step would count from there anyway, and a team
    that meets on weekdays should not find it waiting on Saturday)."""
    return carry_past_weekend(at, tz)


def after_working_time(at: datetime, seconds: int, tz: str, days: int | None = None) -> datetime:
    """When `seconds` of a weekdays session's time left have run from `at`: what falls in a
    weekend (Saturday 0:00 to Monday morning in `tz`) runs on after it, as time_left does not
    count it. A pause on Friday with 5 hours left, resumed on Saturday, closes on Monday at
    13:00, not at 8:00 with none of them. `days` as for later."""
    local_zone = zone(tz)
    at = carry_past_weekend(at, tz)
    closes = later(at, seconds, tz, days)
    while True:
        local = at.astimezone(local_zone)  # in working time: Monday morning to Friday night
        saturday = local.date() + timedelta(days=5 - local.weekday())
        weekend_starts = datetime.combine(saturday, time(0), tzinfo=local_zone).astimezone(UTC)
        # Run out at Saturday 0:00 itself: a close on Saturday, carried as close_time carries
        # it (an hour's step opened on Friday at 11:30 PM, paused and resumed at once).
        if closes < weekend_starts:
            return closes
        monday = datetime.combine(saturday + timedelta(days=2), MONDAY_MORNING, local_zone)
        at = monday.astimezone(at.tzinfo)
        closes = (monday.astimezone(UTC) + (closes - weekend_starts)).astimezone(closes.tzinfo)


def time_left(now: datetime, closes: datetime, *, weekdays: bool, tz: str) -> int:
    """The seconds a pause freezes: from `now` to the step's close. With `weekdays` a weekend
    between (Saturday 0:00 to Monday morning in `tz`) does not count, as it does not for the
    close: a day's step paused on Friday afternoon, its close carried to Monday morning, keeps
    the hours it had left that Friday, not the weekend besides."""
    left = max(timedelta(0), closes - now)
    if weekdays:
        left -= _weekends_between(now, closes, tz)
    return max(0, int(left.total_seconds()))


def _weekends_between(start: datetime, end: datetime, tz: str) -> timedelta:
    local_zone = zone(tz)
    local = start.astimezone(local_zone)
    monday = local.date() - timedelta(days=local.weekday())
    total = timedelta(0)
    while True:
        # Aware datetimes of one zone subtract on the wall clock: compare and subtract in UTC.
        weekend_starts = datetime.combine(monday - timedelta(days=2), time(0), local_zone)
        weekend_ends = datetime.combine(monday, MONDAY_MORNING, local_zone)
        begins, ends = weekend_starts.astimezone(UTC), weekend_ends.astimezone(UTC)
        if begins >= end:
            return total
        overlap = min(end, ends) - max(start, begins)
        total += max(timedelta(0), overlap)
        monday += timedelta(days=7)


def warning_lead(seconds: int) -> timedelta | None:
    """How long before a step of `seconds` closes its closing warning comes; None: no warning."""
    length = timedelta(seconds=seconds)
    if length < WARN_MIN_STEP:
        return None
    return length * (1 - WARN_AT)


def warning_time(
    opened: datetime, closes: datetime, seconds: int, *, weekdays: bool, tz: str
) -> datetime | None:
    """When the closing warning of a step of `seconds` (as planned), open from `opened` to
    `closes`, goes out: its lead (warning_lead) before the close. With `weekdays` the weekend
    does not count, as it does not for the close: the warning of a step carried to Monday
    morning comes on Friday (a 1-day step's 4.8 hours before the end of Friday, a 2-day step's
    9.6), not in the night or on Sunday evening. None for a step too short for a warning, or
    when it would be before the step opened (a step opened late on a Friday): its message says
    when it closes."""
    lead = warning_lead(seconds)
    if lead is None:
        return None
    at = _working_time_before(closes, lead, tz) if weekdays else closes - lead
    if timedelta(seconds=seconds) >= DAYTIME_WARNING_STEP:
        return _in_the_day(at, opened, closes, lead, weekdays=weekdays, tz=tz)
    return at if at > opened else None


def _in_the_day(
    at: datetime, opened: datetime, closes: datetime, lead: timedelta, *, weekdays: bool, tz: str
) -> datetime | None:
    """A warning due `at`, or, when that is at night in `tz`, the nearer of the evening before
    and the morning after: the evening if the step was open by then, the morning if it still
    leaves at least half the warning's lead before the close (a 1-day step opened at 9 AM is
    warned at 8 PM the evening before, one opened at 11 AM at 8 AM on the day it closes).
    None when the step has no daytime for it (a 12-hour step from 8 PM to 8 AM): its message
    says when it closes."""
    local_zone = zone(tz)
    local = at.astimezone(local_zone)
    if MORNING <= local.time() < EVENING:
        return at if at > opened else None
    day = local.date() if local.time() >= EVENING else local.date() - timedelta(days=1)
    evening = datetime.combine(day, EVENING, tzinfo=local_zone).astimezone(at.tzinfo)
    morning = datetime.combine(day + timedelta(days=1), MORNING, tzinfo=local_zone)
    morning = morning.astimezone(at.tzinfo)
    if weekdays:
        morning = carry_past_weekend(morning, tz)  # a Friday night's warning: not on Saturday
    choices = [evening] if evening > opened else []
    if closes - morning >= lead / 2:
        choices.append(morning)
    return min(choices, key=lambda choice: abs(choice - at), default=None)


def _working_time_before(at: datetime, lead: timedelta, tz: str) -> datetime:
    """`lead` before `at`, skipping weekends (Saturday 0:00 to Monday morning in `tz`)."""
    local_zone = zone(tz)
    while True:
        local = at.astimezone(local_zone)
        monday = local.date() - timedelta(days=local.weekday())
        week_starts = datetime.combine(monday, MONDAY_MORNING, tzinfo=local_zone)
        if local < week_starts:  # Monday before the morning: still the weekend before it
            monday -= timedelta(days=7)
            week_starts = datetime.combine(monday, MONDAY_MORNING, tzinfo=local_zone)
        saturday = datetime.combine(monday + timedelta(days=5), time(0), tzinfo=local_zone)
        if local > saturday:  # in a weekend: count back from its start
            at = saturday.astimezone(at.tzinfo)
        if at - lead >= week_starts:
            return at - lead
        lead -= at - week_starts
        weekend = datetime.combine(monday - timedelta(days=2), time(0), tzinfo=local_zone)
        at = weekend.astimezone(at.tzinfo)


def button_extension(step_seconds: int) -> int:
    """What the Extend button adds: a quarter of the step, at least 5 minutes, at most a day."""
    return max(300, min(86400, (step_seconds // 4) // 300 * 300))
