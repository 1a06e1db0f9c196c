"""Stream tokens: each binds one media stream to the call whose webhook the server answered."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from voiceguard.errors import CallRefused
from voiceguard.server import ServerConfig, StreamTokens, create_app
from voiceguard.server.tokens import STREAM_TOKEN_PARAMETER

AUTH = "tokens-test-auth-token-0123456789"
CALL = "CA" + "a" * 32
ACCOUNT = "AC" + "b" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def refusal(tokens: StreamTokens, parameters: dict[str, str], call: str = CALL) -> str:
    with pytest.raises(CallRefused) as refused:
        tokens.check(parameters, call, ACCOUNT)
    assert refused.value.close_code == 1008
    return refused.value.reason


def test_a_token_opens_its_own_call_once() -> None:
    tokens = StreamTokens(AUTH, clock=Clock())
    token = tokens.issue(CALL, ACCOUNT)
    assert AUTH not in token
    tokens.check({STREAM_TOKEN_PARAMETER: token, "caller": "x"}, CALL, ACCOUNT)
    assert "used already" in refusal(tokens, {STREAM_TOKEN_PARAMETER: token})


def test_another_call_another_account_or_another_key_is_refused() -> None:
    clock = Clock()
    token = StreamTokens(AUTH, clock=clock).issue(CALL, ACCOUNT)
    tokens = StreamTokens(AUTH, clock=clock)
    assert "not this call's" in refusal(tokens, {STREAM_TOKEN_PARAMETER: token}, "CA" + "c" * 32)
    with pytest.raises(CallRefused, match="not this call's"):
        tokens.check({STREAM_TOKEN_PARAMETER: token}, CALL, "AC" + "d" * 32)
    other_key = StreamTokens(AUTH + "x", clock=clock)
    assert "not this call's" in refusal(other_key, {STREAM_TOKEN_PARAMETER: token})
    tokens.check({STREAM_TOKEN_PARAMETER: token}, CALL, ACCOUNT)  # still unused: it opens


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "no stream token"),
        ("v1", "malformed"),
        ("v2.1800000060.abc", "malformed"),
        ("v1.soon.abc", "malformed"),
        ("v1.9" + "9" * 20 + ".abc", "malformed"),
        ("v1.1800000060", "not this call's"),
        ("v1.1800000060.forged", "not this call's"),
    ],
)
def test_missing_malformed_and_forged_tokens_are_refused(token: str, reason: str) -> None:
    tokens = StreamTokens(AUTH, clock=Clock())
    assert reason in refusal(tokens, {STREAM_TOKEN_PARAMETER: token} if token else {})


def test_a_token_expires() -> None:
    clock = Clock()
    tokens = StreamTokens(AUTH, lifetime=60.0, clock=clock)
    token = tokens.issue(CALL, ACCOUNT)
    clock.now += 61
    assert "expired" in refusal(tokens, {STREAM_TOKEN_PARAMETER: token})


def test_used_tokens_are_forgotten_once_expired() -> None:
    clock = Clock()
    tokens = StreamTokens(AUTH, lifetime=10.0, clock=clock)
    for number in range(100):
        tokens.check(
            {STREAM_TOKEN_PARAMETER: tokens.issue(f"CA{number}", ACCOUNT)}, f"CA{number}", ACCOUNT
        )
    clock.now += 11
    fresh = tokens.issue(CALL, ACCOUNT)
    tokens.check({STREAM_TOKEN_PARAMETER: fresh}, CALL, ACCOUNT)
    assert tokens.remembered == 1, "the memory is bounded by the lifetime"


def test_the_webhook_issues_the_token_for_its_call_by_post_and_by_get() -> None:
    app = create_app(ServerConfig(api_key="sk-x", twilio_auth_token=AUTH))
    client = TestClient(app, base_url="https://voice.example.com")
    oracle = RequestValidator(AUTH)
    form = {"CallSid": CALL, "AccountSid": ACCOUNT}
    url = "https://voice.example.com/incoming-call"
    post = client.post(
        url, data=form, headers={"X-Twilio-Signature": oracle.compute_signature(url, form)}
    )
    query = f"{url}?CallSid={CALL}&AccountSid={ACCOUNT}"
    get = client.get(query, headers={"X-Twilio-Signature": oracle.compute_signature(query, {})})
    for answer in (post, get):
        assert answer.status_code == 200, answer.text
        token = answer.text.split(f'name="{STREAM_TOKEN_PARAMETER}" value="')[1].split('"')[0]
        StreamTokens(AUTH).check({STREAM_TOKEN_PARAMETER: token}, CALL, ACCOUNT)


def test_without_signatures_or_with_tokens_off_the_twiml_has_no_token() -> None:
    for config in (
        ServerConfig(api_key="sk-x"),
        ServerConfig(api_key="sk-x", twilio_auth_token=AUTH, stream_tokens=False),
    ):
        client = TestClient(create_app(config), base_url="https://voice.example.com")
        url = "https://voice.example.com/incoming-call"
        form = {"CallSid": CALL}
        headers = {"X-Twilio-Signature": RequestValidator(AUTH).compute_signature(url, form)}
        answer = client.post(url, data=form, headers=headers)
        assert answer.status_code == 200
        assert '<Stream url="wss://voice.example.com/media-stream"/>' in answer.text
