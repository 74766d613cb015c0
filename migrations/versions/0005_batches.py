"""batches, and the jobs that belong to them; cancelled jobs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 03:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batches_owner_created", "batches", ["owner", "created_at", "id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("batch_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("batch_index", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_jobs_batch_id", "batches", ["batch_id"], ["id"], ondelete="CASCADE")
        batch.create_unique_constraint("uq_jobs_batch_index", ["batch_id", "batch_index"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_batch_index", type_="unique")
        batch.drop_constraint("fk_jobs_batch_id", type_="foreignkey")
        batch.drop_column("batch_index")
        batch.drop_column("batch_id")
    op.drop_index("ix_batches_owner_created", table_name="batches")
    op.drop_table("batches")
