"""why a face is uncertain, its re-encoded score, and whether its heatmap explains anything

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.add_column(sa.Column("verdict_reason", sa.String(255), nullable=True))
        batch.add_column(sa.Column("reencoded_probability", sa.Float(), nullable=True))
        batch.add_column(sa.Column("explanation", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch:
        batch.drop_column("explanation")
        batch.drop_column("reencoded_probability")
        batch.drop_column("verdict_reason")
