"""Which databases of a name range exist, as fresh as `_all_dbs`, mostly for less.

Apache CouchDB keeps its list of databases as the docs of a node-local database, `_dbs`,
and `_all_dbs` is a range read of it. The info of `_dbs` itself (`GET /_node/{node}/_dbs`)
costs CouchDB about half as much, and its update sequence moves with every database
created or deleted: while it stands where it stood when a range was last listed, that
listing is still exact, and the info alone answers. Otherwise the range is read from the
same `_dbs` (`_all_docs` with `update_seq`), so that the names and the sequence they are
kept under come from one snapshot (README, Performance).

One node, named: behind a load balancer `_local` is whichever node answers, and every
node's copy of `_dbs` counts its own sequence. Its name is asked once (`GET /_node/_local`).

Where `_node` is not served (the embedded server, whose `_all_dbs` is a read of an
in-memory list anyway) or not allowed (credentials without server-admin rights), every
listing is one `_all_dbs` read, as before; so is one the named node does not answer within
3 s (its name is then asked again next time).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from service.couchdb.client import (
    CouchClient,
    CouchError,
    CouchUnreachable,
    encode_view_params,
)

log = logging.getLogger(__name__)

# The node whose `_dbs` is read is not known yet.
_UNRESOLVED = ""
# A node cut off from the one answering holds a request until Erlang gives it up (about a
# minute): the listing turns to `_all_dbs` well before, and a write waits this long once.
_NODE_TIMEOUT = aiohttp.ClientTimeout(total=3.0)


class DatabaseListing:
    def __init__(self, client: CouchClient) -> None:
        self.client = client
        # "": not asked yet; None: `_node` is not served or not allowed here.
        self._node: str | None = _UNRESOLVED
        # (startkey, endkey) -> ((uuid, update_seq) of `_dbs`, the names it then held).
        self._listed: dict[tuple[str, str], tuple[tuple[Any, Any], frozenset[str]]] = {}

    async def names(self, startkey: str, endkey: str) -> frozenset[str]:
        """The databases from `startkey` to `endkey` that exist as this call is answered."""
        try:
            node = await self._node_name()
            if node is not None:
                return await self._from_node(node, startkey, endkey)
        except CouchUnreachable:
            # That node may be down or cut off while the others answer: `_all_dbs` tells
            # (or fails as well, when CouchDB itself is out of reach), and the node's name
            # is asked again next time.
            self._node = _UNRESOLVED
            self._listed.clear()
        except CouchError:
            log.info("database listing by _node refused, _all_dbs from now on")
            self._node = None
            self._listed.clear()
        return frozenset(await self.client.all_dbs(startkey=startkey, endkey=endkey))

    async def _node_name(self) -> str | None:
        if self._node == _UNRESOLVED:
            status, body = await self.client.request("GET", "_node/_local", timeout=_NODE_TIMEOUT)
            name = body.get("name") if isinstance(body, dict) else None
            self._node = name if status == 200 and isinstance(name, str) and name else None
        return self._node

    async def _from_node(self, node: str, startkey: str, endkey: str) -> frozenset[str]:
        shards = f"_node/{quote(node, safe='@')}/_dbs"
        status, info = await self.client.request("GET", shards, timeout=_NODE_TIMEOUT)
        if status != 200 or not isinstance(info, dict):
            raise CouchError(f"GET /{shards}: HTTP {status}", status=status)
        version = (info.get("uuid"), info.get("update_seq"))
        listed = self._listed.get((startkey, endkey))
        if listed is not None and listed[0] == version and None not in version:
            return listed[1]
        params = encode_view_params({"startkey": startkey, "endkey": endkey})
        params["update_seq"] = "true"
        status, body = await self.client.request(
            "GET", f"{shards}/_all_docs", params=params, timeout=_NODE_TIMEOUT
        )
        if status != 200 or not isinstance(body, dict):
            raise CouchError(f"GET /{shards}/_all_docs: HTTP {status}", status=status)
        names = frozenset(str(row["id"]) for row in body.get("rows") or [])
        # Kept only when nothing moved between the two reads: the names are then exactly
        # what `_dbs` held at that sequence.
        if body.get("update_seq") == version[1]:
            self._listed[(startkey, endkey)] = (version, names)
        return names
