"""The sessid logger: a KV failure that a best-effort call (get, aget) answered without the KV, and
a shared table whose lock another process held too long."""

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


def hidden_lock_timeout(error: BaseException, answer: str, window: float) -> None:
    """Logs error (a LockTimeout) at WARNING: what best-effort calls answer for the next window."""
    logger.warning(
        "%s; get() and aget() answer %s without waiting for it for the next %g s",
        error,
        answer,
        window,
    )


def repaired_damage(kv_key: str) -> None:
    """Logs at WARNING that a lookup replaced damage under kv_key (a KV key, never an API key)."""
    logger.warning(
        "the KV key %r held something that is not a session id (a UUID); it now holds a new id",
        kv_key,
    )


def lost_shared_table(error: BaseException) -> None:
    """Logs at WARNING that the table now at a shared store's name cannot be opened (error says
    why): until it can, get() and aget() answer random ids, and required calls raise it."""
    logger.warning(
        "%s; get() and aget() answer random ids until this process can open it "
        "(get_required() raises this error)",
        error,
    )
