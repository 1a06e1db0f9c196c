"""The reference server inside your own app: the same endpoints as ``voiceguard serve``.

Run it with uvicorn (``pip install 'voiceguard[server]'``)::

    OPENAI_API_KEY=sk-... PUBLIC_URL=https://voice.example.com \\
        uvicorn examples.reference_server:app --port 5050

Point your Twilio number's voice webhook at ``https://voice.example.com/incoming-call``. With
``TWILIO_AUTH_TOKEN`` set, requests without a valid ``X-Twilio-Signature`` are refused.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from voiceguard.config import BridgeConfig, HandlerConfig
from voiceguard.server import ServerConfig, create_app

config = ServerConfig(
    realtime_url=os.environ.get(
        "REALTIME_URL", "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    ),
    api_key=os.environ.get("OPENAI_API_KEY"),
    public_url=os.environ.get("PUBLIC_URL"),  # where Twilio reaches you, behind any proxy
    twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN"),
    max_calls=50,
    handler=HandlerConfig(
        bridge=BridgeConfig(
            instructions="You are the front desk of a dental practice. Be brief.",
            greeting="Say: Thanks for calling Bright Smiles, how can I help?",
        )
    ),
)


async def home(_request: object) -> PlainTextResponse:
    return PlainTextResponse("my app\n")


# The voice agent's endpoints (/incoming-call, /media-stream, /healthz, /metrics) at the root,
# next to the app's own routes. Each call runs in its own handler; one failing call never
# touches another.
app = Starlette(routes=[Route("/", home), Mount("/", create_app(config))])
