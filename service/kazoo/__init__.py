"""KAZOO's rules as pure code: document rules, ids, paging keys, filters, validation, errors.

Nothing here talks to CouchDB or imports another package of the service.
"""
