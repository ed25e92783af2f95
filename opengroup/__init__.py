"""opengroup: a server for Session open groups."""
