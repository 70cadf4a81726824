"""The asyncio driver: steps a lookup's C state machine, awaiting each KV operation."""

from __future__ import annotations

from typing import Any


async def drive(call: Any) -> Any:
    pending = call.start()
    while pending is not None:
        try:
            reply = await pending
        except Exception as exc:  # the KV failed; BaseExceptions (cancellation) propagate
            pending = call.throw(exc)
        else:
            pending = call.send(reply)
    result = call.result()
    return result
