"""A live phone call transferred through the (fake) Twilio REST API, and the `check` message
when credentials are missing."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest

from voicebot.config import load_config
from voicebot.plugins import make_plugin_manager
from voicebot.server.telephony import transfer_problems

from .support import base_config, serve
from .test_cli import run_cli
from .twilio_e2e_support import assert_nothing_left, record
from .twilio_phone import Phone, phone_config
from .twilio_rest_fake import fake_twilio_rest

SID, TOKEN = "AC0001", "test-auth-token"


@pytest.fixture
async def fake_twilio():
    async with fake_twilio_rest(SID, TOKEN) as fake:
        fake.refuse["CAgone"] = (404, 20404, "The requested resource was not found")
        yield fake.url, fake.requests


def config(api: str, **twilio):
    cfg = base_config()
    cfg["telephony"] = {
        "twilio": {"auth_token": TOKEN, "account_sid": SID, "api_base_url": api, **twilio}
    }
    return cfg


async def live_call(server, call_sid: str = "CA0001") -> Phone:
    phone = await Phone.call(server, auth_token=TOKEN, call_sid=call_sid)
    await phone.connected()
    await phone.start()
    await phone.wait(lambda: phone.media)
    return phone


async def test_transfer_redirects_the_live_call(tmp_path, fake_twilio):
    api, requests = fake_twilio
    async with serve(tmp_path, config(api, transfer_caller_id="+15550000000")) as server:
        rec = record(server)
        phone = await live_call(server)
        assert await rec.calls[0].io.transfer("+15551234567") is True
        (req,) = requests
        assert req.path == f"/2010-04-01/Accounts/{SID}/Calls/CA0001.json"
        dial = ET.fromstring(req.get("Twiml")).find("Dial")
        assert (dial.text, dial.get("callerId")) == ("+15551234567", "+15550000000")
        await phone.stop()  # Twilio leaves the stream once the new TwiML runs
        await phone.wait_closed()
        await assert_nothing_left(server)


async def test_failed_transfer_is_logged_and_the_call_goes_on(tmp_path, fake_twilio, caplog):
    api, _ = fake_twilio
    async with serve(tmp_path, config(api)) as server:
        rec = record(server)
        phone = await live_call(server, call_sid="CAgone")
        with caplog.at_level(logging.ERROR):
            assert await rec.calls[0].io.transfer("+15551234567") is False
        assert any("transfer to +15551234567 failed" in r.getMessage() for r in caplog.records)
        assert not phone.closed.is_set()
        await phone.stop()
        await phone.wait_closed()


async def test_transfer_without_credentials_says_what_to_set(tmp_path, caplog):
    cfg = phone_config()
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start()
        await phone.wait(lambda: phone.media)
        with caplog.at_level(logging.ERROR):
            assert await rec.calls[0].io.transfer("+15551234567") is False
        assert any("telephony.twilio.account_sid" in r.getMessage() for r in caplog.records)
        await phone.stop()
        await phone.wait_closed()


def test_check_explains_missing_transfer_credentials(tmp_path):
    pm = make_plugin_manager()
    empty = load_config(None, env={})
    (problem,) = transfer_problems(empty, pm.registry)
    assert "telephony.twilio.account_sid" in problem
    path = tmp_path / "config.yaml"
    path.write_text("telephony:\n  twilio:\n    account_sid: ${SID}\n    auth_token: ${TOKEN}\n")
    ready = load_config(path, env={"SID": SID, "TOKEN": TOKEN})
    assert transfer_problems(ready, pm.registry) == []


def test_voicebot_check_warns_about_transfers_it_cannot_make(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(
        "flow: main\nstart: agent\nnodes:\n  agent:\n    transfer: '+15550100'\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text("dialogue: {mode: flows}\nflows: {dir: flows, start: main}\n")
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "main.yaml:5:5: warning: this step transfers calls" in result.stderr
    assert "telephony.twilio.account_sid" in result.stderr
    config.write_text(
        config.read_text() + "telephony: {twilio: {account_sid: AC1, auth_token: t}}\n"
    )
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 0 and "warning" not in result.stderr


def test_voicebot_check_errors_on_transfers_a_phone_deployment_cannot_make(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(
        "flow: main\nstart: agent\nnodes:\n  agent:\n    transfer: '+15550100'\n"
    )
    config = tmp_path / "config.yaml"
    # set up for phone calls (a signing token) but without the account SID transfers need
    config.write_text(
        "dialogue: {mode: flows}\nflows: {dir: flows, start: main}\n"
        "telephony: {twilio: {auth_token: t}}\n"
    )
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "main.yaml:5:5: this step transfers calls, but" in result.stderr
    assert "telephony.twilio.account_sid" in result.stderr and "warning" not in result.stderr


def test_transfer_warning_names_the_unset_variables_not_a_line_already_there(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "main.yaml").write_text(
        "flow: main\nstart: agent\nnodes:\n  agent:\n    transfer: '+15550100'\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(  # the default config's lines, with variables no environment sets
        "dialogue: {mode: flows}\nflows: {dir: flows, start: main}\ntelephony:\n  twilio:\n"
        "    auth_token: ${VOICEBOT_TEST_UNSET_TOKEN:-}\n"
        "    account_sid: ${VOICEBOT_TEST_UNSET_SID:-}\n"
    )
    (problem,) = transfer_problems(load_config(config, env={}), make_plugin_manager().registry)
    assert problem.endswith(
        "telephony.twilio.account_sid and telephony.twilio.auth_token are empty, because "
        "VOICEBOT_TEST_UNSET_SID and VOICEBOT_TEST_UNSET_TOKEN are not set in the environment"
    )
    assert "e.g." not in problem
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "VOICEBOT_TEST_UNSET_SID and VOICEBOT_TEST_UNSET_TOKEN are not set" in result.stderr
    only_sid = load_config(config, env={"VOICEBOT_TEST_UNSET_TOKEN": "t"})
    (problem,) = transfer_problems(only_sid, make_plugin_manager().registry)
    assert problem.endswith(
        "telephony.twilio.account_sid is empty, because VOICEBOT_TEST_UNSET_SID is not set in "
        "the environment"
    )
