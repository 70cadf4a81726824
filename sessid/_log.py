"""The sessid logger: a KV failure that a best-effort call (get, aget) answered without the KV."""

from __future__ import annotations

import logging

logger = logging.getLogger("sessid")


def hidden_kv_failure(error: BaseException, answer: str, backoff: float) -> None:
    """Logs error (a KVError chained to the KV's exception) at WARNING, with its traceback."""
    if backoff > 0:
        then = f"get() and aget() answer {answer} without asking the KV for the next {backoff:g} s"
    else:
        then = f"get() answered {answer} (kv_backoff=0: every call asks the KV)"
    logger.warning("the KV failed: %s; %s", error, then, exc_info=error)


def repaired_damage(kv_key: str) -> None:
    """Logs at WARNING that a lookup replaced damage under kv_key (a KV key, never an API key)."""
    logger.warning(
        "the KV key %r held something that is not a session id (a UUID); it now holds a new id",
        kv_key,
    )
