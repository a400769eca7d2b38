"""CouchDB access: the HTTP client, the embedded server and its supervisor, design
documents and their maintenance, and the changes feeds the caches follow."""
