"""sessid: a stable random session id (UUID v4) per API key, with a sliding TTL.

    import sessid
    sessid.get("sk-...")                        # in-process, one hour after the last use

    store = sessid.Store(kv=redis.Redis())       # shared by every worker and host
    store.get("sk-...")
"""

try:
    from ._sessid import Error
except ModuleNotFoundError as missing:
    if missing.name != "sessid._sessid":
        raise
    from ._source_tree import redirect

    redirect(__path__)
    del missing, redirect

from ._sessid import (
    Error,
    KVError,
    Store,
    aget,
    aget_required,
    default_store,
    get,
    get_required,
    set_default_store,
)

__all__ = [
    "Error",
    "KVError",
    "Store",
    "aget",
    "aget_required",
    "default_store",
    "get",
    "get_required",
    "set_default_store",
]

__version__ = "0.1.0"
