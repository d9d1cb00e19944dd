from alembic import context

from core.migrations import run_migrations

run_migrations(context)
