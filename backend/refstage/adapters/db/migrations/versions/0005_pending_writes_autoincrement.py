"""pending_writes ids are never handed out twice (SQLite)

The write-back deletes the queue rows it read by id. Re-queueing an entity deletes its row and inserts a new one;
without AUTOINCREMENT SQLite gives the new row the largest id plus one, which is the deleted row's own id when that
row was the newest, so a write-back that had read the old row deleted the new one and the change was never
mirrored. With AUTOINCREMENT an id is never reused. PostgreSQL's sequence never reuses one: nothing to do there.

Revision ID: 0005
Revises: 0004_h
Create Date: 2026-12-02 09:15:00
"""
from alembic import op


revision = '0005'
down_revision = '0004_h'
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table('pending_writes', recreate='always',
                              table_kwargs={'sqlite_autoincrement': autoincrement}):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
