"""Rostra's Python client: generated gRPC stubs (``rostra.v1``) and a thin layer for
what raw stubs make hard, watches that resume and locks that fence.

    import rostra

    with rostra.Client("127.0.0.1:8502") as client:
        client.kv.put("app/config", b"v1")
        for change in client.kv.watch("app/", prefix=True):
            print(change.index, dict(change.upserted), list(change.removed))
"""

from ._errors import LockLost, RostraError
from ._watch import Change
from .aio import AsyncClient
from .client import Client, Lock, Watch

__all__ = ["AsyncClient", "Change", "Client", "Lock", "LockLost", "RostraError", "Watch"]
__version__ = "0.1.0"
