"""Authentication: tokens, their revocation, verified-token memory and failure limits."""
