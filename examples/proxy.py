"""An LLM API proxy that gives each API key one stable session id: copy it, and make it yours.

    pip install 'sessid[examples]'
    UPSTREAM_URL=https://api.anthropic.com uvicorn examples.proxy:app --workers 4
    UPSTREAM_URL=https://api.anthropic.com gunicorn -w 4 -k uvicorn.workers.UvicornWorker examples.proxy:app

Clients send their requests here instead of upstream. Each POST /v1/messages is forwarded as it came,
with one header more: X-Claude-Code-Session-Id, the same for every request made with one key while
the key is used at least once an hour. Every worker of this host opens one shared table (its name in
SESSID_SHARED), so whichever worker answers, a key has one id. To share ids between hosts, set
SESSID_REDIS_URL (redis://host:6379/0) and every worker asks Redis instead.
"""

import contextlib
import os

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import sessid

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "https://api.anthropic.com").rstrip("/")

if os.environ.get("SESSID_REDIS_URL"):
    import redis.asyncio

    store = sessid.Store(kv=redis.asyncio.Redis.from_url(os.environ["SESSID_REDIS_URL"]))
else:
    # The table is made by the first worker and opened by the others; it outlives them all, so a
    # restart (or a worker that dies) changes no id.
    store = sessid.Store(shared=os.environ.get("SESSID_SHARED", "myproxy"))

# Headers about one hop's connection, not about the request: the next hop sets its own.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host", "content-length"}


def api_key(request: Request) -> str:
    """The client's key: x-api-key, as Anthropic's API takes it, or an OAuth-style bearer token."""
    if key := request.headers.get("x-api-key", ""):
        return key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def messages(request: Request) -> Response:
    key = api_key(request)
    if not key:
        return JSONResponse({"type": "error", "error": {"type": "authentication_error",
                                                        "message": "no x-api-key or bearer token"}},
                            status_code=401)
    headers = {name: value for name, value in request.headers.items() if name not in HOP_BY_HOP}
    # aget never raises because of Redis: when Redis is down, the request goes on with a fresh id.
    headers["x-claude-code-session-id"] = await store.aget(key)

    client: httpx.AsyncClient = request.state.http
    upstream = client.build_request("POST", f"{UPSTREAM_URL}/v1/messages", headers=headers,
                                    params=request.query_params, content=await request.body())
    try:
        reply = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        return JSONResponse({"type": "error", "error": {"type": "api_error",
                                                        "message": f"upstream: {exc!r}"}},
                            status_code=502)
    # Streamed back as it arrives (server-sent events), bytes untouched: the client decodes them.
    return StreamingResponse(reply.aiter_raw(), status_code=reply.status_code,
                             headers={name: value for name, value in reply.headers.items()
                                      if name not in HOP_BY_HOP - {"content-length"}},
                             background=BackgroundTask(reply.aclose))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    # One connection pool per worker. A reply may stream for minutes: wait up to 10 minutes for each
    # piece of it, 10 seconds to connect.
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0)) as http:
        yield {"http": http}


app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])], lifespan=lifespan)
