"""Storage: the schema, engines and migrations, and the one interface the domain uses."""
