"""The document stores (connectivity, accounts) and view listing: KAZOO's persistence
rules (crossbar_doc, crossbar_view) over the CouchDB client. Stores raise their own errors."""
