"""Alembic environment: runs on the connection the store passes in, or on COSMICS_DB_URL."""

from __future__ import annotations

from alembic import context

from db.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata
if config.config_file_name is not None and config.attributes.get("connection") is None:
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)  # the command line's logging


def _render_item(type_, obj, autogen_context):
    # Migrations stay free of imports from db.models, which keeps changing.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    from db.session import database_url

    context.configure(url=config.get_main_option("sqlalchemy.url") or database_url(), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from db.session import get_engine, migration_connection

    with migration_connection(get_engine(config.get_main_option("sqlalchemy.url") or None)) as connection:
        _run(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
