"""Alembic environment: always run programmatically by opengroup.storage.migrate."""

from alembic import context

from opengroup.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
