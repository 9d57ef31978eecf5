"""scope: per-model routing-rule and gate overrides, a study's scope verdicts

Revision ID: 0003_scope
Revises: 0002_labels_shadow
Create Date: 2026-12-06 08:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_scope"
down_revision = "0002_labels_shadow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scope_override",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=True),
        sa.Column("gate", sa.Boolean(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_key"),
    )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.JSON(), server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("scope")
    op.drop_table("scope_override")
