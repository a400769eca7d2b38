"""kazoo-connectivity: KAZOO's Crossbar `connectivity` API, served straight from CouchDB."""

__version__ = "0.1.0"
