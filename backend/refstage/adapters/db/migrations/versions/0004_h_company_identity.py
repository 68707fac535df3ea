"""company identity

The tenant's own name, logo and colour for public pages and emails (so a program's name is no longer
used as the company's), and the locale and time zone the console formats money and dates in.
All nullable: existing tenants keep today's behaviour until an admin fills them in.

Revision ID: 0004_h
Revises: 0004_c
Create Date: 2026-12-02 01:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_h'
down_revision = '0004_c'
branch_labels = None
depends_on = None

COLUMNS = (
    ("display_name", sa.String(length=200)),
    ("logo_url", sa.String(length=500)),
    ("brand_color", sa.String(length=7)),
    ("locale", sa.String(length=20)),
    ("time_zone", sa.String(length=64)),
)


def upgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
