"""Read caches kept exact by CouchDB's changes feeds: account documents, connectivity
documents and listing pages."""
