"""sessid: a stable random session id (UUID v4) per API key, with a sliding TTL.

    import sessid
    sessid.get("sk-...")                        # in-process, one hour after the last use

    store = sessid.Store(kv=redis.Redis())       # shared by every worker and host
    store.get("sk-...")
"""

try:
    from ._sessid import Error
except ModuleNotFoundError as _missing:
    if _missing.name != "sessid._sessid":
        raise
    from ._source_tree import redirect

    redirect(__path__)
    del _missing, redirect

from ._sessid import (
    Error,
    KVError,
    LockTimeout,
    Store,
    aforget,
    aget,
    aget_required,
    default_store,
    forget,
    get,
    get_required,
    remove_shared,
    set_default_store,
)
from ._protocols import AsyncKV, KV

__all__ = [
    "AsyncKV",
    "Error",
    "KV",
    "KVError",
    "LockTimeout",
    "Store",
    "aforget",
    "aget",
    "aget_required",
    "default_store",
    "forget",
    "get",
    "get_required",
    "remove_shared",
    "set_default_store",
]

__version__ = "0.1.0"
