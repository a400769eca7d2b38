"""`make bench`: the service measured next to the raw CouchDB operations it wraps."""
