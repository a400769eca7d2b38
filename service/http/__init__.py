"""The HTTP face: the aiohttp app, the request pipeline, KAZOO's envelope and the resources.

A request runs app → middleware → pipeline (authentication, routing) → a resource in
`resources/` → a store. Nothing here knows how a document is stored.
"""
