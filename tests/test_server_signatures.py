"""Twilio request signatures: webhooks and media streams, behind a proxy and not.

Signatures are computed with the ``twilio`` package's ``RequestValidator`` (the oracle), never
with voiceguard's own code, and voiceguard's validator must accept exactly what the oracle's
``validate`` accepts: a table of edge cases and a property test check that. A refused request
must open no model session: the model router records every connection attempt. Without the
``twilio`` package (a dev dependency) the whole file is skipped.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse, urlsplit, urlunsplit

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from server_harness import ModelRouter, ServerProcess

from voiceguard.server import compute_twilio_signature, validate_twilio_signature
from voiceguard.server.signatures import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    signature_algorithm,
)
from voiceguard.sim.caller import CallerSimulator, HangUp
from voiceguard.sim.realtime import RealtimeSimulator, Reply
from voiceguard.transports import TransportClosed
from voiceguard.transports.websocket import connect_websocket

twilio_validator: Any = pytest.importorskip("twilio.request_validator")
RequestValidator: Any = twilio_validator.RequestValidator

TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://voice.example.com"
ORACLE = RequestValidator(TOKEN)
FORM = {
    "CallSid": "CA" + "1" * 32,
    "AccountSid": "AC" + "0" * 32,
    "From": "+15551234567",
    "To": "+15557654321",
}


# ---------------------------------------------------------------------------------------------
# The signature itself, against the oracle


@given(
    url=st.sampled_from(
        [
            "https://voice.example.com/incoming-call",
            "https://voice.example.com/incoming-call?x=1&y=%20",
            "wss://voice.example.com/media-stream",
            "http://127.0.0.1:5050/incoming-call",
        ]
    ),
    params=st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=6),
)
def test_signature_matches_twilios_validator(url: str, params: dict[str, str]) -> None:
    expected = ORACLE.compute_signature(url, params)
    assert compute_twilio_signature(TOKEN, url, params) == expected
    assert validate_twilio_signature(TOKEN, url, params, expected)
    assert ORACLE.validate(url, params, compute_twilio_signature(TOKEN, url, params))


def test_repeated_parameters_sign_as_twilio_does() -> None:
    class Multi(dict[str, str]):
        def getall(self, name: str) -> list[str]:
            return {"a": ["2", "1", "2"], "b": ["x"]}[name]

    expected = ORACLE.compute_signature("https://h/p", Multi(a="", b=""))
    params = {"a": ["2", "1", "2"], "b": "x"}
    assert compute_twilio_signature(TOKEN, "https://h/p", params) == expected


def test_validation_refuses_missing_wrong_and_other_urls() -> None:
    url = "wss://voice.example.com/media-stream"
    good = ORACLE.compute_signature(url, {})
    assert validate_twilio_signature(TOKEN, url, None, good)
    assert validate_twilio_signature(TOKEN, "wss://voice.example.com:443/media-stream", None, good)
    assert not validate_twilio_signature(TOKEN, url, None, None)
    assert not validate_twilio_signature(TOKEN, url, None, "")
    assert not validate_twilio_signature(TOKEN, url, None, good[:-2] + "AA")
    assert not validate_twilio_signature(TOKEN, url, None, "ü" + good)
    assert not validate_twilio_signature("another token", url, None, good)
    assert not validate_twilio_signature(
        TOKEN, "https://voice.example.com/media-stream", None, good
    )


# ---------------------------------------------------------------------------------------------
# Exactly what the oracle accepts, no more: an edge-case table and a property

SHARED_KEY = "sharedkey-secret-fedcba9876543210"
SHA256_SETTINGS = "key=webhooks_sharedkey_0123456789abcdef,algorithm=HMAC_SHA256"
BODY = '{"CallSid": "CA1", "CallStatus": "ringing", "Note": "h\u00e9"}'
BODY_HASH = hashlib.sha256(BODY.encode("utf-8")).hexdigest()
OTHER_HASH = hashlib.sha256(b"another body").hexdigest()

Outcome = Literal["accepts", "refuses", "raises"]
Form = Mapping[str, str | Sequence[str]]
Params = Form | str | None


class MultiDict(dict[str, str]):
    """Form parameters as Flask gives them: ``getall`` has every value of a name."""

    def __init__(self, params: Form) -> None:
        super().__init__(dict.fromkeys(params, ""))
        self.all = {name: [v] if isinstance(v, str) else list(v) for name, v in params.items()}

    def getall(self, name: str) -> list[str]:
        return self.all[name]


def for_oracle(params: Params) -> Any:
    """*params* as the oracle reads them: a name's several values through ``getall``."""
    if params is None or isinstance(params, str):
        return params
    return MultiDict(params)


def oracle_sign(secret: str, url: str, params: Params, algorithm: str | None) -> str:
    """The oracle's signature over *url* (a JSON body signs no parameters)."""
    form = for_oracle(params) if isinstance(params, Mapping) else {}
    signature: str = RequestValidator(secret).compute_signature(url, form, algorithm)
    return signature


def oracle_outcome(
    secret: str, url: str, params: Params, signature: str | None, algorithm: str | None
) -> Outcome:
    """What ``RequestValidator.validate`` makes of a request: it may raise instead of refusing."""
    try:
        valid = RequestValidator(secret).validate(url, for_oracle(params), signature, algorithm)
    except (TypeError, ValueError):
        return "raises"
    return "accepts" if valid is True else "refuses"


def assert_agrees(
    secret: str, url: str, params: Params, signature: str | None, algorithm: str | None
) -> bool:
    """Ours accepts if and only if the oracle accepts; returns whether it accepted."""
    ours = validate_twilio_signature(secret, url, params, signature, algorithm=algorithm)
    theirs = oracle_outcome(secret, url, params, signature, algorithm)
    assert ours is (theirs == "accepts"), (url, params, signature, algorithm, theirs)
    return ours


def natural_variants(url: str) -> list[str]:
    """The port-removed and port-added URL as a careful reading of it gives them (the host as
    urllib reads it, 443 for wss too): what voiceguard tried before, not what the package does."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        return []
    host = f"[{host}]" if ":" in host else host
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    default = 443 if parts.scheme in ("https", "wss") else 80
    out = [urlunsplit(parts._replace(netloc=prefix + host))]
    if port is None:
        out.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    return out


def url_variants(url: str) -> list[str]:
    """The URL as given, the package's port-added and port-removed URLs, and the natural ones."""
    out = [url]
    try:
        parsed = urlparse(url)
        out += [twilio_validator.add_port(parsed), twilio_validator.remove_port(parsed)]
    except ValueError:
        pass  # a malformed port or IPv6 host: the package cannot make its variants
    out += natural_variants(url)
    return list(dict.fromkeys(out))


def as_given(signature: str) -> str | None:
    return signature


@dataclass(frozen=True)
class Row:
    """A request and a signature: whether the oracle accepts it is written down (and checked)."""

    url: str  # validated against
    signed: str  # the URL the signature is made over
    accepted: bool
    params: Params = None  # validated with
    signed_params: Form | Literal["same"] | None = "same"  # signed with ("same": *params*)
    algorithm: str | None = None  # the validation algorithm, unless *settings* names it
    settings: str | None = None  # the X-Twilio-Webhooks-Signature-Settings header
    signed_with: str | None = None  # the signing algorithm (default: the validation one)
    secret: str = TOKEN
    signature: Callable[[str], str | None] = as_given
    oracle_raises: bool = False  # the oracle raises instead of refusing

    def validation_algorithm(self) -> str | None:
        if self.settings is None:
            return self.algorithm
        ours = signature_algorithm(self.settings)
        assert ours == twilio_validator.get_signature_algorithm(self.settings)
        return ours

    def signing(self) -> tuple[Params, str | None]:
        params = self.params if self.signed_params == "same" else self.signed_params
        algorithm = self.signed_with or self.validation_algorithm()
        supported = (algorithm or HMAC_SHA1).upper() in (HMAC_SHA1, HMAC_SHA256)
        return params, algorithm if supported else HMAC_SHA1


def row(name: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Row(*args, **kwargs), id=name)


H = "https://voice.example.com"
WSS = "wss://voice.example.com"
CALL = "/incoming-call"
STREAM = "/media-stream"

ROWS = [
    # https: the URL as given, the default port 443 added or removed, another port removed
    row("https", H + CALL, H + CALL, True, FORM),
    row("https-signed-with-443", H + CALL, "https://voice.example.com:443" + CALL, True, FORM),
    row("https-443-signed-without", "https://voice.example.com:443" + CALL, H + CALL, True, FORM),
    row("https-8443-signed-without", "https://voice.example.com:8443" + CALL, H + CALL, True, FORM),
    row(
        "https-8443-signed-with-443",
        "https://voice.example.com:8443" + CALL,
        "https://voice.example.com:443" + CALL,
        False,
        FORM,
    ),
    row("https-signed-with-80", H + CALL, "https://voice.example.com:80" + CALL, False, FORM),
    row("https-signed-as-http", H + CALL, "http://voice.example.com" + CALL, False, FORM),
    # http: 80
    row("http-signed-with-80", "http://h.test/p", "http://h.test:80/p", True, FORM),
    row("http-80-signed-without", "http://h.test:80/p", "http://h.test/p", True, FORM),
    row("http-5050-signed-without", "http://127.0.0.1:5050/p", "http://127.0.0.1/p", True, FORM),
    row("http-signed-with-443", "http://h.test/p", "http://h.test:443/p", False, FORM),
    # ws and wss: the package adds 80 to every scheme but https, wss included
    row("wss", WSS + STREAM, WSS + STREAM, True),
    row("wss-signed-with-80", WSS + STREAM, "wss://voice.example.com:80" + STREAM, True),
    row("wss-signed-with-443", WSS + STREAM, "wss://voice.example.com:443" + STREAM, False),
    row("wss-443-signed-without", "wss://voice.example.com:443" + STREAM, WSS + STREAM, True),
    row(
        "wss-443",
        "wss://voice.example.com:443" + STREAM,
        "wss://voice.example.com:443" + STREAM,
        True,
    ),
    row("wss-signed-as-https", WSS + STREAM, H + STREAM, False),
    row("ws-signed-with-80", "ws://localhost/m", "ws://localhost:80/m", True),
    row("ws-8080-signed-without", "ws://localhost:8080/m", "ws://localhost/m", True),
    # the URL is rebuilt by urllib: the scheme lower-cased, the host kept as written
    row(
        "upper-case-scheme-as-given",
        "HTTPS://Voice.Example.com/p",
        "HTTPS://Voice.Example.com/p",
        False,
    ),
    row(
        "upper-case-scheme-lowered",
        "HTTPS://Voice.Example.com/p",
        "https://Voice.Example.com/p",
        True,
    ),
    row(
        "upper-case-host-with-443",
        "https://Voice.Example.com/p",
        "https://Voice.Example.com:443/p",
        True,
    ),
    row(
        "upper-case-host-lowered",
        "https://Voice.Example.com/p",
        "https://voice.example.com:443/p",
        False,
    ),
    row("empty-query-as-given", "https://h.test/p?", "https://h.test/p?", False),
    row("empty-query-dropped", "https://h.test/p?", "https://h.test/p", True),
    row("empty-path-parameters-as-given", "https://h.test/p;", "https://h.test/p;", False),
    row("empty-path-parameters-dropped", "https://h.test/p;", "https://h.test/p", True),
    row("path-parameters", "https://h.test/p;v=1", "https://h.test/p;v=1", True),
    row("fragment", "https://h.test/p#top", "https://h.test/p#top", True),
    # userinfo: the package cuts the network location at its first colon
    row("userinfo-signed-with-443", "https://u:pw@h.test/p", "https://u:pw@h.test:443/p", True),
    row(
        "userinfo-8443-signed-without", "https://u:pw@h.test:8443/p", "https://u:pw@h.test/p", False
    ),
    row("userinfo-8443-cut-at-first-colon", "https://u:pw@h.test:8443/p", "https://u/p", True),
    row("user-8443-signed-without", "https://u@h.test:8443/p", "https://u@h.test/p", True),
    # IPv6: the same cut leaves "["
    row("ipv6-signed-with-443", "https://[2001:db8::1]/p", "https://[2001:db8::1]:443/p", True),
    row("ipv6-8443-signed-without", "https://[::1]:8443/p", "https://[::1]/p", False),
    row("ipv6-8443-cut-at-first-colon", "https://[::1]:8443/p", "https://[/p", True),
    row("ipv6-wss-with-port", "wss://[::1]:5050" + STREAM, "wss://[::1]:5050" + STREAM, True),
    row("ipv6-malformed", "https://[::1/p", "https://[::1/p", False, oracle_raises=True),
    # odd ports: 0 counts as none, an empty one gets a second colon, a malformed one raises
    row("port-0-signed-without", "http://h.test:0/p", "http://h.test/p", False),
    row("port-0-signed-with-80-after-it", "http://h.test:0/p", "http://h.test:0:80/p", True),
    row("empty-port-signed-with-80", "http://h.test:/p", "http://h.test:80/p", False),
    row("empty-port-signed-with-second-colon", "http://h.test:/p", "http://h.test::80/p", True),
    row(
        "port-not-a-number", "http://h.test:abc/p", "http://h.test:abc/p", False, oracle_raises=True
    ),
    row("port-out-of-range", "http://h.test:99999/p", "http://h.test/p", False, oracle_raises=True),
    # query strings: signed as given, in their order
    row("query", H + CALL + "?attempt=2&b=%20", H + CALL + "?attempt=2&b=%20", True, FORM),
    row("query-reordered", "https://h.test/p?b=2&a=1", "https://h.test/p?a=1&b=2", False),
    row("query-443-signed-without", "https://h.test:443/p?x=1", "https://h.test/p?x=1", True),
    # JSON webhooks: bodySHA256, its first value, the URL signed with no parameters
    row(
        "body-hash",
        f"{H}{CALL}?bodySHA256={BODY_HASH}",
        f"{H}{CALL}?bodySHA256={BODY_HASH}",
        True,
        BODY,
    ),
    row(
        "body-hash-signed-with-443",
        f"{H}{CALL}?bodySHA256={BODY_HASH}",
        f"https://voice.example.com:443{CALL}?bodySHA256={BODY_HASH}",
        True,
        BODY,
    ),
    row(
        "body-hash-wrong",
        f"{H}/p?bodySHA256={OTHER_HASH}",
        f"{H}/p?bodySHA256={OTHER_HASH}",
        False,
        BODY,
    ),
    row(
        "body-hash-upper-case",
        f"{H}/p?bodySHA256={BODY_HASH.upper()}",
        f"{H}/p?bodySHA256={BODY_HASH.upper()}",
        False,
        BODY,
    ),
    row(
        "body-hash-first-value-counts",
        f"{H}/p?bodySHA256={BODY_HASH}&bodySHA256={OTHER_HASH}",
        f"{H}/p?bodySHA256={BODY_HASH}&bodySHA256={OTHER_HASH}",
        True,
        BODY,
    ),
    row(
        "body-hash-second-value-ignored",
        f"{H}/p?bodySHA256={OTHER_HASH}&bodySHA256={BODY_HASH}",
        f"{H}/p?bodySHA256={OTHER_HASH}&bodySHA256={BODY_HASH}",
        False,
        BODY,
    ),
    row(
        "body-hash-name-percent-encoded",
        f"{H}/p?body%53HA256={BODY_HASH}",
        f"{H}/p?body%53HA256={BODY_HASH}",
        True,
        BODY,
    ),
    row(
        "body-hash-sha256-settings",
        f"{H}/p?bodySHA256={BODY_HASH}",
        f"{H}/p?bodySHA256={BODY_HASH}",
        True,
        BODY,
        settings=SHA256_SETTINGS,
        secret=SHARED_KEY,
    ),
    row("body-without-hash", f"{H}/p", f"{H}/p", False, BODY, oracle_raises=True),
    row(
        "body-hash-empty",
        f"{H}/p?bodySHA256=",
        f"{H}/p?bodySHA256=",
        False,
        BODY,
        oracle_raises=True,
    ),
    row("empty-body-without-hash", f"{H}/p", f"{H}/p", True, ""),
    row("form-with-body-hash-unchecked", f"{H}/p?bodySHA256=x", f"{H}/p?bodySHA256=x", True, FORM),
    # parameters: repeated names, duplicate values, none
    row("repeated-params", H + CALL, H + CALL, True, {"a": ["2", "1", "2"], "b": "x"}),
    row(
        "repeated-params-one-signed",
        H + CALL,
        H + CALL,
        False,
        {"a": ["2", "1"]},
        signed_params={"a": "1"},
    ),
    row(
        "duplicate-values-once",
        H + CALL,
        H + CALL,
        True,
        {"a": ["1", "1"]},
        signed_params={"a": "1"},
    ),
    row("empty-value-list", H + CALL, H + CALL, True, {"a": []}, signed_params={}),
    row("empty-params", H + CALL, H + CALL, True, {}, signed_params=None),
    row("none-params-signed-with-form", H + CALL, H + CALL, False, None, signed_params=FORM),
    row("form-changed", H + CALL, H + CALL, False, {**FORM, "To": "+1999"}, signed_params=FORM),
    row("non-ascii-params", H + CALL, H + CALL, True, {"Body": "h\u00e9llo \u260e", "\u00c5": ""}),
    # algorithms: SHA-256 named by the settings header, in any case; others refused
    row(
        "sha256-settings",
        H + CALL,
        H + CALL,
        True,
        FORM,
        settings=SHA256_SETTINGS,
        secret=SHARED_KEY,
    ),
    row(
        "sha256-settings-signed-sha1",
        H + CALL,
        H + CALL,
        False,
        FORM,
        settings=SHA256_SETTINGS,
        signed_with=HMAC_SHA1,
        secret=SHARED_KEY,
    ),
    row(
        "sha256-settings-spaced-lower-case",
        WSS + STREAM,
        "wss://voice.example.com:80" + STREAM,
        True,
        settings=" key = k , algorithm = hmac_sha256 ",
        secret=SHARED_KEY,
    ),
    row("sha256-lower-case", H + CALL, H + CALL, True, FORM, algorithm="hmac_sha256"),
    row("sha1-signed-sha256", H + CALL, H + CALL, False, FORM, signed_with=HMAC_SHA256),
    row("sha1-explicit", H + CALL, H + CALL, True, FORM, algorithm=HMAC_SHA1),
    row("empty-algorithm-is-sha1", H + CALL, H + CALL, True, FORM, algorithm=""),
    row("settings-without-algorithm-is-sha1", H + CALL, H + CALL, True, FORM, settings="key=k"),
    row("long-s-upper-cases-to-sha1", H + CALL, H + CALL, True, FORM, algorithm="hmac_\u017fha1"),
    row("unknown-algorithm", H + CALL, H + CALL, False, FORM, algorithm="HMAC_SHA512"),
    row(
        "unknown-algorithm-settings", H + CALL, H + CALL, False, FORM, settings="algorithm=HMAC_MD5"
    ),
    row("algorithm-with-a-space", H + CALL, H + CALL, False, FORM, algorithm=" HMAC_SHA1"),
    # the signature header: compared as given
    row(
        "signature-none",
        H + CALL,
        H + CALL,
        False,
        FORM,
        signature=lambda s: None,
        oracle_raises=True,
    ),
    row("signature-empty", H + CALL, H + CALL, False, FORM, signature=lambda s: ""),
    row(
        "signature-surrounding-spaces",
        H + CALL,
        H + CALL,
        False,
        FORM,
        signature=lambda s: f" {s} ",
    ),
    row(
        "signature-trailing-newline", H + CALL, H + CALL, False, FORM, signature=lambda s: s + "\n"
    ),
    row(
        "signature-non-ascii", H + CALL, H + CALL, False, FORM, signature=lambda s: "\u00fc" + s[1:]
    ),
    row("signature-truncated", H + CALL, H + CALL, False, FORM, signature=lambda s: s[:-1]),
]


@pytest.mark.parametrize("case", ROWS)
def test_edge_case_is_judged_as_twilio_judges_it(case: Row) -> None:
    algorithm = case.validation_algorithm()
    signed_params, signed_with = case.signing()
    signature = case.signature(oracle_sign(case.secret, case.signed, signed_params, signed_with))
    outcome = oracle_outcome(case.secret, case.url, case.params, signature, algorithm)
    assert outcome == (
        "accepts" if case.accepted else "raises" if case.oracle_raises else "refuses"
    )
    ours = validate_twilio_signature(
        case.secret, case.url, case.params, signature, algorithm=algorithm
    )
    assert ours is case.accepted
    # Every variant of the URL, signed with the right secret and with a wrong one.
    for url in url_variants(case.url):
        for secret in (case.secret, case.secret + "x"):
            made = oracle_sign(secret, url, signed_params, signed_with)
            assert_agrees(case.secret, case.url, case.params, made, algorithm)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Params]:
    """A URL (mostly well formed, with every odd corner) and the parameters or body it came with."""
    params: Params = draw(
        st.one_of(
            st.none(),
            st.dictionaries(
                st.text(max_size=6),
                st.one_of(st.text(max_size=8), st.lists(st.text(max_size=4), max_size=3)),
                max_size=4,
            ),
            st.text(max_size=24),
        )
    )
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=40)), params
    scheme = draw(st.sampled_from(["https", "http", "wss", "ws", "HTTPS", "Wss", "ftp"]))
    userinfo = draw(st.sampled_from(["", "", "", "user@", "user:pw@", ":@"]))
    host = draw(
        st.sampled_from(
            ["voice.example.com", "Voice.Example.COM", "127.0.0.1", "[::1]", "[2001:db8::1]", ""]
        )
    )
    port = draw(
        st.one_of(
            st.none(),
            st.sampled_from(["80", "443", "0", "", "8080", "065535", "abc", "99999"]),
            st.integers(0, 65535).map(str),
        )
    )
    path = draw(
        st.one_of(
            st.sampled_from(["", "/", CALL, STREAM, "/p;", "/p;v=1"]),
            st.text("ab/;%:@ ", max_size=8),
        )
    )
    query = draw(st.one_of(st.none(), st.text("ab=&;%+ ", max_size=10)))
    if isinstance(params, str) and draw(st.booleans()):
        digest = hashlib.sha256(params.encode("utf-8")).hexdigest()
        value = draw(st.sampled_from([digest, digest, digest.upper(), OTHER_HASH, ""]))
        name = draw(st.sampled_from(["bodySHA256", "body%53HA256", "bodysha256"]))
        query = f"{name}={value}" + (f"&{query}" if query else "")
    fragment = draw(st.one_of(st.none(), st.text("ab#?", max_size=4)))
    url = f"{scheme}://{userinfo}{host}"
    url += "" if port is None else f":{port}"
    url += path
    url += "" if query is None else f"?{query}"
    url += "" if fragment is None else f"#{fragment}"
    return url, params


ALGORITHMS = [
    None,
    "",
    HMAC_SHA1,
    HMAC_SHA256,
    "hmac_sha256",
    "Hmac_Sha1",
    "hmac_\u017fha256",
    " HMAC_SHA1",
    "HMAC_SHA512",
    "HMAC_MD5",
]


@settings(max_examples=300, deadline=None)
@given(
    request=requests(),
    secret=st.text(max_size=40),
    algorithm=st.sampled_from(ALGORITHMS),
    signed_with=st.sampled_from(["validation", HMAC_SHA1, HMAC_SHA256]),
    random_signature=st.one_of(
        st.text(max_size=48),
        st.binary(min_size=20, max_size=32).map(base64.b64encode).map(bytes.decode),
    ),
)
def test_validation_accepts_exactly_what_twilio_accepts(
    request: tuple[str, Params],
    secret: str,
    algorithm: str | None,
    signed_with: str,
    random_signature: str,
) -> None:
    url, params = request
    supported = (algorithm or HMAC_SHA1).upper() in (HMAC_SHA1, HMAC_SHA256)
    signer = (algorithm if supported else HMAC_SHA1) if signed_with == "validation" else signed_with
    form = params if isinstance(params, Mapping) else None
    for variant in url_variants(url):
        made = oracle_sign(secret, variant, params, signer)
        assert compute_twilio_signature(secret, variant, form, algorithm=signer) == made
        assert_agrees(secret, url, params, made, algorithm)
    assert_agrees(secret, url, params, random_signature, algorithm)


SETTINGS_HEADERS = [
    None,
    "",
    "key=k",
    SHA256_SETTINGS,
    "algorithm=HMAC_SHA256",
    " key = k , algorithm = hmac_sha256 ",
    "algorithm=",
    "algorithm= ,algorithm=HMAC_SHA256",
    "algorithm=HMAC_SHA256,algorithm=HMAC_SHA1",
    "algorithm=a=b",
    "Algorithm=HMAC_SHA256",
    "algorithm HMAC_SHA256",
    ",,,",
]


@pytest.mark.parametrize("header", SETTINGS_HEADERS)
def test_signature_algorithm_reads_the_settings_header_as_twilio_does(header: str | None) -> None:
    assert signature_algorithm(header) == twilio_validator.get_signature_algorithm(header)


@settings(max_examples=300, deadline=None)
@given(
    header=st.one_of(
        st.none(),
        st.text(max_size=30),
        st.lists(
            st.one_of(
                st.sampled_from(
                    ["key=k", "algorithm=HMAC_SHA256", " algorithm = x ", "algorithm="]
                ),
                st.text("algorithm=, HMAC_SH256", max_size=14),
            ),
            max_size=4,
        ).map(",".join),
    )
)
def test_signature_algorithm_agrees_with_twilio(header: str | None) -> None:
    assert signature_algorithm(header) == twilio_validator.get_signature_algorithm(header)


def test_the_settings_header_names_sha256_and_defaults_to_sha1() -> None:
    assert signature_algorithm(None) == signature_algorithm("") == HMAC_SHA1
    assert signature_algorithm(SHA256_SETTINGS) == HMAC_SHA256
    # The names, as the package spells them; the headers in lower case, as ASGI gives them.
    assert (HMAC_SHA1, HMAC_SHA256) == (twilio_validator.HMAC_SHA1, twilio_validator.HMAC_SHA256)
    assert twilio_validator.SIGNATURE_HEADER.lower() == SIGNATURE_HEADER
    assert twilio_validator.SIGNATURE_SETTINGS_HEADER.lower() == SIGNATURE_SETTINGS_HEADER


@pytest.mark.parametrize("algorithm", [None, "", HMAC_SHA1, HMAC_SHA256, "hmac_sha256"])
def test_compute_signs_with_the_algorithm_as_twilio_does(algorithm: str | None) -> None:
    expected = RequestValidator(SHARED_KEY).compute_signature(H + CALL, FORM, algorithm)
    assert compute_twilio_signature(SHARED_KEY, H + CALL, FORM, algorithm=algorithm) == expected
    sha256 = (algorithm or "").upper() == HMAC_SHA256
    assert len(base64.b64decode(expected)) == (32 if sha256 else 20)


@pytest.mark.parametrize("algorithm", ["HMAC_SHA512", "HMAC_MD5", " HMAC_SHA1", "sha1"])
def test_compute_refuses_an_unknown_algorithm_as_twilio_does(algorithm: str) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        RequestValidator(TOKEN).compute_signature(H + CALL, FORM, algorithm)
    with pytest.raises(ValueError, match="unsupported webhook signature algorithm"):
        compute_twilio_signature(TOKEN, H + CALL, FORM, algorithm=algorithm)
    good = oracle_sign(TOKEN, H + CALL, FORM, HMAC_SHA1)
    assert not validate_twilio_signature(TOKEN, H + CALL, FORM, good, algorithm=algorithm)


def test_multi_dicts_give_every_value_as_twilio_reads_them() -> None:
    """``getall`` (multidict) or ``getlist`` (Django, Werkzeug, Starlette), as the package."""

    class GetList(dict[str, str]):
        def getlist(self, name: str) -> list[str]:
            return {"a": ["2", "1"], "b": ["x"]}[name]

    plain = {"a": ["2", "1"], "b": ["x"]}
    for params in (GetList(a="1", b="x"), MultiDict(plain)):
        expected = ORACLE.compute_signature(H + CALL, params)
        assert compute_twilio_signature(TOKEN, H + CALL, params) == expected
        assert compute_twilio_signature(TOKEN, H + CALL, plain) == expected
        assert validate_twilio_signature(TOKEN, H + CALL, params, expected)
    # The mapping's own value (the last one, say) is not what is signed.
    assert not validate_twilio_signature(TOKEN, H + CALL, {"a": "1", "b": "x"}, expected)


# ---------------------------------------------------------------------------------------------
# The server, behind a proxy (a public URL) and not (the request's Host)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn); so do its tests."""
    return "asyncio"


@pytest.fixture(scope="module")
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        running.use(RealtimeSimulator(replies=[Reply(text="Hi", duration=0.3)], audio_speed=8.0))
        yield running


@pytest.fixture(scope="module")
async def proxied(
    router: ModelRouter, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """A server behind a proxy: Twilio signs https://voice.example.com/..."""
    async with ServerProcess.running(
        ["--realtime-url", router.url, "--public-url", PUBLIC + "/"],
        log_dir=tmp_path_factory.mktemp("proxied"),
        env={"TWILIO_AUTH_TOKEN": TOKEN},
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def direct(
    router: ModelRouter, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """A server without a public URL: signatures are checked against the request's Host
    (stream tokens off: these tests are about the signature alone)."""
    async with ServerProcess.running(
        ["--realtime-url", router.url, "--no-stream-tokens"],
        log_dir=tmp_path_factory.mktemp("direct"),
        env={"TWILIO_AUTH_TOKEN": TOKEN},
    ) as running:
        yield running


async def expect_refused(server: ServerProcess, headers: dict[str, str]) -> None:
    with anyio.fail_after(5), pytest.raises(TransportClosed, match=r"HTTP 403"):
        async with connect_websocket(server.media_url, headers=headers):
            pass  # pragma: no cover - refused before this


@pytest.mark.anyio
async def test_webhook_behind_a_proxy_is_checked_against_the_public_url(
    proxied: ServerProcess,
) -> None:
    signature = ORACLE.compute_signature(PUBLIC + "/incoming-call", FORM)
    ok = await proxied.post("/incoming-call", data=FORM, headers={"X-Twilio-Signature": signature})
    assert ok.status_code == 200
    assert '<Stream url="wss://voice.example.com/media-stream">' in ok.text
    assert '<Parameter name="voiceguard_token" value="v1.' in ok.text  # the call's token

    query = "/incoming-call?attempt=2"
    signed_query = ORACLE.compute_signature(PUBLIC + query, FORM)
    ok = await proxied.post(query, data=FORM, headers={"X-Twilio-Signature": signed_query})
    assert ok.status_code == 200

    missing = await proxied.post("/incoming-call", data=FORM)
    assert missing.status_code == 403
    wrong = await proxied.post(
        "/incoming-call", data={**FORM, "To": "+1999"}, headers={"X-Twilio-Signature": signature}
    )
    assert wrong.status_code == 403
    # Signed over the URL the app sees instead of the public one: refused.
    local = ORACLE.compute_signature(proxied.http_url + "/incoming-call", FORM)
    seen_locally = await proxied.post(
        "/incoming-call", data=FORM, headers={"X-Twilio-Signature": local}
    )
    assert seen_locally.status_code == 403


@pytest.mark.anyio
async def test_media_stream_behind_a_proxy_needs_the_wss_public_url_signature(
    proxied: ServerProcess, router: ModelRouter
) -> None:
    sessions = len(router.requests)
    await expect_refused(proxied, {})
    await expect_refused(proxied, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    https_signed = ORACLE.compute_signature("https://voice.example.com/media-stream", {})
    await expect_refused(proxied, {"X-Twilio-Signature": https_signed})
    assert len(router.requests) == sessions  # no model session for a refused stream

    good = ORACLE.compute_signature("wss://voice.example.com/media-stream", {})
    signature = ORACLE.compute_signature(PUBLIC + "/incoming-call", FORM)
    twiml = await proxied.post(
        "/incoming-call", data=FORM, headers={"X-Twilio-Signature": signature}
    )
    token = twiml.text.split('name="voiceguard_token" value="')[1].split('"')[0]
    caller = CallerSimulator(
        script=[HangUp(at=0.6)],
        custom_parameters={"voiceguard_token": token},
        call_sid=FORM["CallSid"],
        account_sid=FORM["AccountSid"],
    )
    with anyio.fail_after(5):
        record = await caller.call(proxied.media_url, headers={"X-Twilio-Signature": good})
    assert record.ended_by == "caller"
    assert record.protocol_errors == []
    assert len(router.requests) == sessions + 1
    page = (await proxied.get("/metrics")).text
    assert (
        'voiceguard_requests_refused_total{endpoint="/media-stream",reason="signature"} 3.0' in page
    )


@pytest.mark.anyio
async def test_without_a_public_url_signatures_use_the_request_host(
    direct: ServerProcess, router: ModelRouter
) -> None:
    signature = ORACLE.compute_signature(direct.http_url + "/incoming-call", FORM)
    ok = await direct.post("/incoming-call", data=FORM, headers={"X-Twilio-Signature": signature})
    assert ok.status_code == 200
    assert (await direct.post("/incoming-call", data=FORM)).status_code == 403

    sessions = len(router.requests)
    await expect_refused(direct, {})
    assert len(router.requests) == sessions
    host = direct.http_url.removeprefix("http://")
    good = ORACLE.compute_signature(f"wss://{host}/media-stream", {})
    caller = CallerSimulator(script=[HangUp(at=0.6)])
    with anyio.fail_after(5):
        record = await caller.call(direct.media_url, headers={"X-Twilio-Signature": good})
    assert record.ended_by == "caller"
    assert len(router.requests) == sessions + 1
