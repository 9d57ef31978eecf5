"""instance.patient_key: whose instance it is, recorded at receive

Revision ID: 0005_instance_patient_key
Revises: 0004_mpps
Create Date: 2026-12-07 22:00:00

The column is added empty (NULL): the rows already there keep no key, and the one-patient rule
reads the files of those rows alone (``pipeline.scoping.study_patient_count``). Filling it here
would read every file the node ever received, in every process's start, under the upgrade lock,
and files removed by retention could not be read anyway. Downgrade drops the column.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_instance_patient_key"
down_revision = "0004_mpps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_column("patient_key")
