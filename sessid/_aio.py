"""The asyncio driver: steps a lookup's C state machine, awaiting each KV operation; lookups of one
key in flight at once in one store share one KV exchange."""

from __future__ import annotations

import asyncio
from typing import Any

ANSWERED, FELL_BACK, RAISED = 0, 1, 2


class _Flight:
    """One lookup in flight, led by one task; the others of its key await its answer."""

    __slots__ = ("loop", "task", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, task: Any) -> None:
        self.loop = loop
        self.task = task
        self.future: asyncio.Future[tuple[Any, int]] | None = None


async def _steps(call: Any) -> Any:
    pending = call.start()
    while pending is not None:
        try:
            reply = await pending
        except Exception as exc:  # the KV failed; BaseExceptions (cancellation) propagate
            pending = call.throw(exc)
        else:
            pending = call.send(reply)
    return call.result()


async def drive(call: Any) -> Any:
    flight_key = call.flight_key()
    if flight_key is None:
        return await _steps(call)
    flights, key = flight_key
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    while True:
        flight = flights.get(key)
        if flight is None:
            break
        if flight.loop is not loop or flight.task is task:
            return await _steps(call)  # another loop's, or a KV method of this lookup calling back
        if flight.future is None:
            flight.future = loop.create_future()
        answer, outcome = await asyncio.shield(flight.future)
        adopted = call.adopt(answer, outcome)
        if adopted is not None:
            return adopted
    flight = flights[key] = _Flight(loop, task)
    answer, outcome = None, RAISED
    try:
        answer = await _steps(call)
        outcome = call.outcome()
        return answer
    finally:
        if flights.get(key) is flight:
            del flights[key]
        if flight.future is not None and not flight.future.done():
            flight.future.set_result((answer, outcome))
