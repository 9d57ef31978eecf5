"""Modality Performed Procedure Steps (MPPS) received by the SCP

Revision ID: 0004_mpps
Revises: 0002_labels_shadow
Create Date: 2026-12-06 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_mpps"
down_revision = "0003_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mpps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "IN PROGRESS",
                "COMPLETED",
                "DISCONTINUED",
                name="mppsstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("calling_ae_title", sa.String(length=16), nullable=True),
        sa.Column("study_instance_uids", sa.JSON(), nullable=False),
        sa.Column("referenced_sop_instance_uids", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mpps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mpps_sop_instance_uid"), ["sop_instance_uid"], unique=True
        )
        batch_op.create_index(batch_op.f("ix_mpps_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mpps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mpps_status"))
        batch_op.drop_index(batch_op.f("ix_mpps_sop_instance_uid"))
    op.drop_table("mpps")
