"""job liveness: when enqueued, when the worker last beat

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 03:00:02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_jobs_status_enqueued", "jobs", ["status", "enqueued_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_enqueued", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("enqueued_at")
