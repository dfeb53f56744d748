"""The Slack Web API stand-in, driven by a real slack_sdk WebClient over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.slack_standin import Call, SlackStandin, refusal_of_message
from tests.fakes.signing import (
    PAYLOADS_DIR,
    event_body,
    interaction_body,
    load_payload,
    signed_headers,
    slash_command_body,
)

pytest_plugins = ["tests.fakes.slack_api"]  # the slack_api fixture

SECRET = "test-signing-secret"
METADATA = {"event_type": "step_posted", "event_payload": {"session_id": 7, "step": 2}}


def client_for(standin: SlackStandin, **kwargs: object) -> WebClient:
    return WebClient(token="xoxb-test", base_url=standin.url, **kwargs)  # type: ignore[arg-type]


def error_of(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(excinfo.value.response["error"])


# ---------------------------------------------------------------------- messages


def test_post_and_thread_reply(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    top = client.chat_postMessage(channel="C_TEAM", text="Step 1 of 6 - Getting Started")
    reply = client.chat_postMessage(channel="C_TEAM", text="2 of 5 replied", thread_ts=top["ts"])
    nested = client.chat_postMessage(channel="C_TEAM", text="again", thread_ts=reply["ts"])

    assert top["channel"] == "C_TEAM"
    assert top["message"]["bot_id"] == "B_BOT" and top["message"]["user"] == "U_BOT"
    assert Decimal(top["ts"]) < Decimal(reply["ts"]) < Decimal(nested["ts"])
    assert abs(float(top["ts"]) - time.time()) < 60
    assert len(top["ts"].split(".")[1]) == 6
    posted = slack_api.messages("C_TEAM")
    assert [m["text"] for m in posted] == [
        "Step 1 of 6 - Getting Started",
        "2 of 5 replied",
        "again",
    ]
    assert [m["thread_ts"] for m in posted] == [None, top["ts"], top["ts"]]
    assert set(posted[0]) >= {"ts", "channel", "text", "blocks", "thread_ts", "user", "metadata"}
    assert slack_api.calls_to("chat.postMessage")[0].token == "xoxb-test"


def test_blocks_arrive_as_structures_from_json_and_form_bodies(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*What do you see?*"}}]
    client.chat_postMessage(channel="C_TEAM", text="fallback", blocks=blocks, metadata=METADATA)
    client.api_call(
        "chat.postMessage",
        params={"channel": "C_TEAM", "text": "form", "blocks": json.dumps(blocks)},
    )

    first, second = slack_api.calls_to("chat.postMessage")
    assert first.params["blocks"] == blocks and first.params["metadata"] == METADATA
    assert second.params["blocks"] == blocks
    assert [m["blocks"] for m in slack_api.messages()] == [blocks, blocks]
    assert slack_api.messages()[0]["metadata"] == METADATA


def test_post_errors(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    client.chat_postMessage(channel="C_ANYWHERE", text="no channels registered: anything goes")

    with pytest.raises(SlackApiError) as excinfo:
        client.api_call("chat.postMessage", json={"channel": "C_TEAM", "blocks": []})
    assert error_of(excinfo) == "no_text"

    slack_api.add_channel("C_TEAM", ["U_FAC", "U_T1", "U_BOT"])
    client.chat_postMessage(channel="C_TEAM", text="registered")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C_OTHER", text="hello")
    assert error_of(excinfo) == "channel_not_found"

    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C_TEAM", text="x", blocks=[{"text": "no type"}])
    assert error_of(excinfo) == "invalid_blocks"

    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C_TEAM", text="x", metadata={"event_type": "only"})
    assert error_of(excinfo) == "invalid_metadata_format"


def test_update_delete_ephemeral_permalink(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    ts = client.chat_postMessage(channel="C_TEAM", text="Step 2 - closes at 3pm")["ts"]

    updated = client.chat_update(channel="C_TEAM", ts=ts, text="Step 2 - closed")
    assert updated["ts"] == ts and updated["text"] == "Step 2 - closed"
    assert slack_api.messages()[0]["text"] == "Step 2 - closed"
    assert slack_api.messages()[0]["edited"]["user"] == "U_BOT"

    link = client.chat_getPermalink(channel="C_TEAM", message_ts=ts)["permalink"]
    assert link.endswith(f"/archives/C_TEAM/p{ts.replace('.', '')}")

    eph = client.chat_postEphemeral(channel="C_TEAM", user="U_T1", text="Only the facilitator")
    assert eph["message_ts"]
    assert slack_api.ephemerals("C_TEAM")[0]["user"] == "U_T1"
    assert len(slack_api.messages()) == 1

    people_ts = slack_api.add_message("C_TEAM", "U_T1", "mine", thread_ts=ts)["ts"]
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel="C_TEAM", ts=people_ts, text="hijack")
    assert error_of(excinfo) == "cant_update_message"

    client.chat_delete(channel="C_TEAM", ts=ts)
    assert [m["text"] for m in slack_api.messages()] == ["mine"]
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel="C_TEAM", ts=ts, text="gone")
    assert error_of(excinfo) == "message_not_found"


def test_reactions(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    ts = slack_api.add_message("C_TEAM", "U_T1", "O: no labels on the axis")["ts"]

    client.reactions_add(channel="C_TEAM", timestamp=ts, name="eyes")
    client.reactions_add(channel="C_TEAM", timestamp=ts, name=":thought_balloon:")
    with pytest.raises(SlackApiError) as excinfo:
        client.reactions_add(channel="C_TEAM", timestamp=ts, name="eyes")
    assert error_of(excinfo) == "already_reacted"
    assert slack_api.reactions("C_TEAM", ts) == ["eyes", "thought_balloon"]

    client.reactions_remove(channel="C_TEAM", timestamp=ts, name="eyes")
    assert slack_api.reactions("C_TEAM", ts) == ["thought_balloon"]
    with pytest.raises(SlackApiError) as excinfo:
        client.reactions_remove(channel="C_TEAM", timestamp=ts, name="eyes")
    assert error_of(excinfo) == "no_reaction"
    with pytest.raises(SlackApiError) as excinfo:
        client.reactions_add(channel="C_TEAM", timestamp="1.000001", name="eyes")
    assert error_of(excinfo) == "message_not_found"


def test_dm(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    first = client.conversations_open(users="U_PRE")["channel"]["id"]
    again = client.conversations_open(users=["U_PRE"])
    assert first.startswith("D") and again["channel"]["id"] == first and again["already_open"]
    assert client.conversations_open(users="U_FAC")["channel"]["id"] != first

    client.chat_postMessage(channel=first, text="Bring the work that keeps you up at night")
    by_user = client.chat_postMessage(channel="U_PRE", text="posted to a user id")
    assert by_user["channel"] == first
    assert [m["channel"] for m in slack_api.messages()] == [first, first]
    assert client.conversations_info(channel=first)["channel"]["user"] == "U_PRE"


def test_history_replies_and_metadata(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    header = client.chat_postMessage(channel="C_TEAM", text="header", metadata=METADATA)["ts"]
    step = client.chat_postMessage(channel="C_TEAM", text="step 1")["ts"]
    reply = slack_api.add_message("C_TEAM", "U_T1", "an observation", thread_ts=step)["ts"]
    client.chat_postMessage(channel="C_TEAM", text="1 of 3", thread_ts=step)

    plain = client.conversations_history(channel="C_TEAM")
    assert [m["text"] for m in plain["messages"]] == ["step 1", "header"]  # latest first
    assert "metadata" not in plain["messages"][1]
    assert plain["messages"][0]["reply_count"] == 2
    assert plain["messages"][0]["reply_users"] == ["U_T1", "U_BOT"]

    full = client.conversations_history(channel="C_TEAM", include_all_metadata=True)
    assert full["messages"][1]["metadata"] == METADATA

    newer = client.conversations_history(channel="C_TEAM", oldest=header)["messages"]
    assert [m["ts"] for m in newer] == [step]
    page = client.conversations_history(channel="C_TEAM", limit=1)
    assert page["has_more"] and page["response_metadata"]["next_cursor"]
    rest = client.conversations_history(
        channel="C_TEAM", limit=1, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["ts"] for m in rest["messages"]] == [header] and not rest["has_more"]

    thread = client.conversations_replies(channel="C_TEAM", ts=step)["messages"]
    assert [m["text"] for m in thread] == ["step 1", "an observation", "1 of 3"]
    assert thread[1]["ts"] == reply and thread[1]["thread_ts"] == step
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_replies(channel="C_TEAM", ts="1.000001")
    assert error_of(excinfo) == "thread_not_found"

    # A person edits their reply, then writes and deletes another: the thread shows it so.
    slack_api.edit_message("C_TEAM", reply, "an observation, edited")
    gone = slack_api.add_message("C_TEAM", "U_T2", "a slip", thread_ts=step)["ts"]
    slack_api.delete_message("C_TEAM", gone)
    thread = client.conversations_replies(channel="C_TEAM", ts=step)["messages"]
    assert [m["text"] for m in thread] == ["step 1", "an observation, edited", "1 of 3"]
    assert thread[1]["edited"]["user"] == "U_T1" and float(thread[1]["edited"]["ts"]) > float(reply)


def test_channels_and_members(slack_api: SlackStandin) -> None:
    members = [f"U_T{i}" for i in range(5)]
    slack_api.add_channel("C_TEAM", members, name="grade-4")
    client = client_for(slack_api)

    info = client.conversations_info(channel="C_TEAM")["channel"]
    assert info["name"] == "grade-4" and info["num_members"] == 5
    collected: list[str] = []
    cursor = ""
    while True:
        page = client.conversations_members(channel="C_TEAM", limit=2, cursor=cursor)
        collected += page["members"]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert collected == members
    assert client.conversations_join(channel="C_TEAM")["channel"]["id"] == "C_TEAM"
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_info(channel="C_NOPE")
    assert error_of(excinfo) == "channel_not_found"


def test_an_archived_channel_or_one_the_bot_left_refuses_what_the_bot_sends(
    slack_api: SlackStandin,
) -> None:
    slack_api.add_channel("C_TEAM", ["U_FAC", "U_BOT"])
    client = client_for(slack_api)
    ts = client.chat_postMessage(channel="C_TEAM", text="step 1")["ts"]
    slack_api.archive_channel("C_TEAM")
    assert client.conversations_info(channel="C_TEAM")["channel"]["is_archived"] is True
    for call in (
        lambda: client.chat_postMessage(channel="C_TEAM", text="step 2"),
        lambda: client.chat_postEphemeral(channel="C_TEAM", user="U_FAC", text="psst"),
        lambda: client.reactions_add(channel="C_TEAM", timestamp=ts, name="eyes"),
        lambda: client.conversations_join(channel="C_TEAM"),
    ):
        with pytest.raises(SlackApiError) as excinfo:
            call()
        assert error_of(excinfo) == "is_archived"
    slack_api.archive_channel("C_TEAM", archived=False)
    slack_api.remove_member("C_TEAM", "U_BOT")
    assert client.conversations_info(channel="C_TEAM")["channel"]["is_member"] is False
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C_TEAM", text="step 2")
    assert error_of(excinfo) == "not_in_channel"
    # Nor does Slack let a bot read a public channel it is not a member of.
    for call in (
        lambda: client.conversations_history(channel="C_TEAM"),
        lambda: client.conversations_replies(channel="C_TEAM", ts=ts),
    ):
        with pytest.raises(SlackApiError) as excinfo:
            call()
        assert error_of(excinfo) == "not_in_channel"
    client.conversations_join(channel="C_TEAM")  # a public channel: the bot may join again
    client.chat_postMessage(channel="C_TEAM", text="step 2")
    assert len(client.conversations_replies(channel="C_TEAM", ts=ts)["messages"]) == 1


def test_a_private_channel_is_hidden_from_the_bot_until_someone_invites_it(
    slack_api: SlackStandin,
) -> None:
    slack_api.add_channel("C_PRIV", ["U_FAC", "U_PRE"], name="grade-4-plc", private=True)
    client = client_for(slack_api)
    for call in (
        lambda: client.chat_postMessage(channel="C_PRIV", text="step 1"),
        lambda: client.chat_postEphemeral(channel="C_PRIV", user="U_FAC", text="psst"),
        lambda: client.conversations_info(channel="C_PRIV"),
        lambda: client.conversations_members(channel="C_PRIV"),
        lambda: client.conversations_history(channel="C_PRIV"),
        lambda: client.reactions_add(channel="C_PRIV", timestamp="1.000001", name="eyes"),
    ):
        with pytest.raises(SlackApiError) as excinfo:
            call()
        assert error_of(excinfo) == "channel_not_found"
    with pytest.raises(SlackApiError) as excinfo:
        client.conversations_join(channel="C_PRIV")  # only public channels can be joined
    assert error_of(excinfo) == "method_not_supported_for_channel_type"

    slack_api.add_member("C_PRIV", "U_BOT")  # /invite @protocolbot
    info = client.conversations_info(channel="C_PRIV")["channel"]
    assert info["is_private"] is True and info["is_member"] is True
    ts = client.chat_postMessage(channel="C_PRIV", text="step 1")["ts"]
    client.reactions_add(channel="C_PRIV", timestamp=ts, name="eyes")
    assert client.conversations_members(channel="C_PRIV")["members"] == ["U_FAC", "U_PRE", "U_BOT"]


def test_blocks_too_long_all_told_are_refused_each_within_its_own_limit(
    slack_api: SlackStandin,
) -> None:
    client = client_for(slack_api)
    five = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}] * 5
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C_TEAM", text="long", blocks=five)
    assert error_of(excinfo) == "msg_blocks_too_long"
    client.chat_postMessage(channel="C_TEAM", text="long", blocks=five[:4])
    refused = WebhookClient(slack_api.response_url("long")).send(text="long", blocks=five)
    assert (refused.status_code, refused.body) == (400, "msg_blocks_too_long")
    assert (
        WebhookClient(slack_api.response_url("ok")).send(text="ok", blocks=five[:4]).status_code
        == 200
    )
    slack_api.fail_next("response_url", status=404, error="expired_url")
    expired = WebhookClient(slack_api.response_url("old")).send(text="late")
    assert (expired.status_code, expired.body) == (404, "expired_url")


def test_users(slack_api: SlackStandin) -> None:
    slack_api.add_user("U_FAC", "Dana Facilitator", tz="America/Los_Angeles", is_admin=True)
    slack_api.add_user("U_OLD", "Gone Teacher", deleted=True)
    client = client_for(slack_api)

    user = client.users_info(user="U_FAC")["user"]
    assert user["tz"] == "America/Los_Angeles" and user["tz_offset"] in (-8 * 3600, -7 * 3600)
    assert user["is_admin"] and not user["is_owner"] and not user["deleted"]
    assert user["profile"]["display_name"] == "Dana Facilitator"
    assert user["real_name"] == "Dana Facilitator"
    assert client.users_info(user="U_OLD")["user"]["deleted"]
    assert client.users_info(user="U_BOT")["user"]["is_bot"]
    with pytest.raises(SlackApiError) as excinfo:
        client.users_info(user="U_NOBODY")
    assert error_of(excinfo) == "user_not_found"
    ids = [m["id"] for m in client.users_list()["members"]]
    assert ids == ["U_BOT", "U_FAC", "U_OLD"]


def test_auth_team_and_unknown_method(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    auth = client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T_TEAM", "U_BOT", "B_BOT")
    assert client.team_info()["team"]["id"] == "T_TEAM"
    with pytest.raises(SlackApiError) as excinfo:
        client.api_call("chat.teleport")
    assert error_of(excinfo) == "unknown_method"
    with pytest.raises(SlackApiError) as excinfo:
        WebClient(base_url=slack_api.url).auth_test()
    assert error_of(excinfo) == "not_authed"
    assert client.api_call("auth.test", params={"token": "xoxb-in-form"})["ok"]

    socket_url = WebClient(token="xapp-1", base_url=slack_api.url).apps_connections_open(
        app_token="xapp-1"
    )["url"]
    assert socket_url.startswith("ws://")


def test_views(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    modal = {
        "type": "modal",
        "callback_id": "start",
        "title": {"type": "plain_text", "text": "Start a protocol"},
        "blocks": [],
    }
    opened = client.views_open(trigger_id="trigger.1", view=modal)["view"]
    assert opened["id"] and opened["callback_id"] == "start"
    updated = client.views_update(view_id=opened["id"], view=modal, hash=opened["hash"])["view"]
    assert updated["id"] == opened["id"]

    long_title = dict(
        modal, title={"type": "plain_text", "text": "A title far longer than Slack allows"}
    )
    with pytest.raises(SlackApiError) as excinfo:
        client.views_open(trigger_id="trigger.2", view=long_title)
    assert error_of(excinfo) == "invalid_arguments"

    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}],
    }
    first = client.views_publish(user_id="U_FAC", view=home)["view"]
    second = client.views_publish(user_id="U_FAC", view=home)["view"]
    assert first["id"] == second["id"] and first["type"] == "home"


def _menu(options: object = None, **element: object) -> dict[str, object]:
    """A modal holding one menu: of `options`, or of what `element` says."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Start a protocol"},
        "blocks": [
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "Protocol"},
                "element": {"type": "static_select", "action_id": "value"}
                | ({"options": options} if options is not None else {})
                | element,
            }
        ],
    }


def _option(n: int, text: str = "", value: str = "") -> dict[str, object]:
    return {
        "text": {"type": "plain_text", "text": text or f"Protocol {n}"},
        "value": value or str(n),
    }


def test_menus_buttons_and_metadata_past_slacks_limits_are_refused(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    hundred = [_option(n) for n in range(100)]
    client.views_open(trigger_id="t", view=_menu(hundred))
    client.views_open(trigger_id="t", view=_menu([_option(1, text="x" * 75, value="v" * 150)]))
    groups = [{"label": _plain(f"Part {g}"), "options": hundred} for g in range(3)]
    client.views_open(trigger_id="t", view=_menu(option_groups=groups))
    too_many = [_option(n) for n in range(101)]
    for view in (
        _menu(too_many),
        _menu([_option(1, text="x" * 76)]),
        _menu([_option(1, value="v" * 151)]),
        _menu(option_groups=[groups[0] | {"options": too_many}]),
        _menu(option_groups=groups * 34),
        _menu(hundred[:11], type="radio_buttons"),
        dict(_menu(hundred), private_metadata="m" * 3001),
    ):
        with pytest.raises(SlackApiError) as excinfo:
            client.views_open(trigger_id="t", view=view)
        assert error_of(excinfo) in ("invalid_blocks", "invalid_arguments")

    def buttons(label: str, value: str) -> list[dict[str, object]]:
        button = {"type": "button", "action_id": "a", "text": _plain(label), "value": value}
        return [{"type": "actions", "elements": [button]}]

    client.chat_postMessage(channel="C_TEAM", text="b", blocks=buttons("x" * 75, "v" * 2000))
    for label, value in (("x" * 76, "v"), ("x", "v" * 2001)):
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_postMessage(channel="C_TEAM", text="b", blocks=buttons(label, value))
        assert error_of(excinfo) == "invalid_blocks"


def test_an_acknowledgement_s_message_is_held_to_a_message_s_limits() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "a protocol"}}
    assert refusal_of_message({"text": "list", "blocks": [section] * 50}) is None
    assert refusal_of_message({"text": "list", "blocks": [section] * 51}) == "invalid_blocks"
    long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}
    assert refusal_of_message({"text": "list", "blocks": [long] * 5}) == "msg_blocks_too_long"


def _plain(text: str) -> dict[str, object]:
    return {"type": "plain_text", "text": text}


def test_file_upload_v2(slack_api: SlackStandin) -> None:
    client = client_for(slack_api)
    parent = client.chat_postMessage(channel="C_TEAM", text="notes")["ts"]
    notes = "# Notes\n\n## Observations\n- no labels on the axis\n"

    answer = client.files_upload_v2(
        channel="C_TEAM",
        thread_ts=parent,
        content=notes,
        filename="notes.md",
        title="ATLAS notes",
        initial_comment="The full notes",
    )

    assert answer["file"]["title"] == "ATLAS notes"
    (stored,) = slack_api.files
    assert stored["content"] == notes.encode()
    assert (stored["name"], stored["title"]) == ("notes.md", "ATLAS notes")
    assert (stored["channel_id"], stored["thread_ts"]) == ("C_TEAM", parent)
    assert stored["initial_comment"] == "The full notes"
    assert (
        slack_api.calls_to("files.getUploadURLExternal")[0]
        .response["upload_url"]
        .startswith(slack_api.url.removesuffix("api/") + "upload/")
    )


# ---------------------------------------------------------------------- faults


def test_rate_limited_call_is_a_429_with_retry_after(slack_api: SlackStandin) -> None:
    slack_api.fail_next("chat.postMessage", status=429, retry_after=7)
    client = client_for(slack_api, retry_handlers=[])

    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C_TEAM", text="hello")

    response = excinfo.value.response
    assert response.status_code == 429 and response["error"] == "ratelimited"
    assert response.headers["Retry-After"] == "7"
    assert slack_api.messages() == []
    (call,) = slack_api.calls_to("chat.postMessage")
    assert call.status == 429 and call.response == {"ok": False, "error": "ratelimited"}


def test_rate_limit_retry_handler_retries(slack_api: SlackStandin) -> None:
    slack_api.fail_next("chat.postMessage", status=429, retry_after=0)
    client = client_for(slack_api, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    assert client.chat_postMessage(channel="C_TEAM", text="hello")["ok"]

    assert [c.status for c in slack_api.calls_to("chat.postMessage")] == [429, 200]
    assert [m["text"] for m in slack_api.messages()] == ["hello"]


def test_server_error_and_api_error(slack_api: SlackStandin) -> None:
    slack_api.fail_next("chat.update", status=500)
    slack_api.fail_next("chat.postMessage", error="channel_not_found", times=2)
    client = client_for(slack_api)

    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel="C_TEAM", ts="1.000001", text="x")
    assert excinfo.value.response.status_code == 500
    for _ in range(2):
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_postMessage(channel="C_TEAM", text="x")
        assert excinfo.value.response.status_code == 200
        assert error_of(excinfo) == "channel_not_found"
    assert client.chat_postMessage(channel="C_TEAM", text="x")["ok"]


def test_delay_beyond_client_timeout_is_a_timeout(slack_api: SlackStandin) -> None:
    slack_api.fail_next("chat.postMessage", delay=1.0)
    client = client_for(slack_api, timeout=0.3)

    with pytest.raises(TimeoutError):
        client.chat_postMessage(channel="C_TEAM", text="lost in transit")

    slack_api.wait_for(lambda calls: any(c.method == "chat.postMessage" for c in calls))
    (call,) = slack_api.calls_to("chat.postMessage")
    assert (call.response, call.status, call.delivered) == ({}, 0, False)
    assert slack_api.messages() == []


def test_timeout_that_slack_applied_anyway(slack_api: SlackStandin) -> None:
    slack_api.fail_next("chat.postMessage", delay=1.0, apply_on_timeout=True)
    client = client_for(slack_api, timeout=0.3)

    with pytest.raises(TimeoutError):
        client.chat_postMessage(channel="C_TEAM", text="posted, answer lost")

    slack_api.wait_for(lambda calls: bool(calls))
    assert [m["text"] for m in slack_api.messages()] == ["posted, answer lost"]
    assert slack_api.calls[0].delivered is False


def test_short_delay_still_answers(slack_api: SlackStandin) -> None:
    slack_api.fail_next("chat.postMessage", delay=0.2)
    client = client_for(slack_api, timeout=5)
    started = time.monotonic()
    assert client.chat_postMessage(channel="C_TEAM", text="slow")["ok"]
    assert time.monotonic() - started >= 0.2


# ---------------------------------------------------------------------- observing


def test_wait_for_and_listeners(slack_api: SlackStandin) -> None:
    seen: list[Call] = []
    slack_api.listeners.append(seen.append)
    client = client_for(slack_api)
    client.chat_postMessage(channel="C_TEAM", text="one")
    with pytest.raises(SlackApiError):
        client.api_call("chat.postMessage", json={"channel": "C_TEAM", "text": ""})

    calls = slack_api.wait_for(lambda calls: len(calls) == 2, timeout=2)
    assert [c.method for c in calls] == ["chat.postMessage", "chat.postMessage"]
    assert [c.params["text"] for c in seen] == ["one"]  # only successful calls
    with pytest.raises(AssertionError, match="chat.postMessage C_TEAM no_text"):
        slack_api.wait_for(lambda calls: len(calls) > 5, timeout=0.2)


def test_context_manager_and_response_url() -> None:
    with SlackStandin(team_id="T_OTHER") as standin:
        assert client_for(standin).auth_test()["team_id"] == "T_OTHER"
        url = standin.response_url("cmd1")
        assert WebhookClient(url).send(text="only you can see this").status_code == 200
        (call,) = standin.calls_to("response_url")
        assert call.params["text"] == "only you can see this"
        assert call.params["response_url"] == url
    with pytest.raises(RuntimeError):
        _ = standin.url


# ---------------------------------------------------------------------- signing and payloads


def test_signed_headers_verify() -> None:
    body = slash_command_body("status")
    headers = signed_headers(body, SECRET)
    verifier = SignatureVerifier(SECRET)

    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + "x", headers)
    stale = signed_headers(body, SECRET, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert signed_headers(event_body({}), SECRET)["Content-Type"] == "application/json"


def test_request_bodies() -> None:
    command = {k: v[0] for k, v in parse_qs(slash_command_body("start atlas <@U_PRE>")).items()}
    assert command["command"] == "/protocol" and command["text"] == "start atlas <@U_PRE>"
    assert (command["user_id"], command["channel_id"], command["team_id"]) == (
        "U_FAC",
        "C_TEAM",
        "T_TEAM",
    )
    assert command["trigger_id"] and command["response_url"]

    envelope = json.loads(event_body({"type": "app_home_opened"}, event_id="Ev1"))
    assert envelope["type"] == "event_callback" and envelope["event_id"] == "Ev1"
    assert envelope["team_id"] == "T_TEAM" and envelope["authorizations"][0]["user_id"] == "U_BOT"
    assert isinstance(envelope["event_time"], int) and envelope["api_app_id"]
    assert json.loads(event_body({}))["event_id"] != json.loads(event_body({}))["event_id"]

    payload = parse_qs(interaction_body({"type": "block_actions"}))["payload"][0]
    assert json.loads(payload) == {"type": "block_actions"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("message_thread_reply", "message"),
        ("message_changed", "message_changed"),
        ("message_deleted", "message_deleted"),
        ("bot_message", "bot_message"),
        ("reaction_added", "reaction_added"),
        ("app_home_opened", "app_home_opened"),
        ("block_actions", "block_actions"),
        ("view_submission", "view_submission"),
        ("url_verification", "url_verification"),
    ],
)
def test_payload_fixtures(name: str, kind: str) -> None:
    payload = load_payload(name)
    assert payload.get("subtype", payload["type"]) == kind
    assert (PAYLOADS_DIR / f"{name}.json").exists()


def test_bolt_app_round_trip(slack_api: SlackStandin) -> None:
    """A Bolt app on the stand-in: auth.test at start, a signed event in, a threaded answer out."""
    app = App(signing_secret=SECRET, client=client_for(slack_api))

    @app.event("message")
    def echo(event: dict[str, str], say: object) -> None:
        say(text=f"got: {event['text']}", thread_ts=event["thread_ts"])  # type: ignore[operator]

    event = load_payload("message_thread_reply")
    body = event_body(event)
    headers: dict[str, str | Sequence[str]] = {**signed_headers(body, SECRET)}
    response = app.dispatch(BoltRequest(body=body, headers=headers))

    assert response.status == 200
    assert slack_api.calls_to("auth.test")
    slack_api.wait_for(lambda calls: any(c.method == "chat.postMessage" for c in calls))
    (message,) = slack_api.messages("C_TEAM")
    assert message["text"].startswith("got: O: The student drew")
    assert message["thread_ts"] == event["thread_ts"]
