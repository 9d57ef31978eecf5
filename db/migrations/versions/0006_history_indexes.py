"""indexes for a node with years of history

Revision ID: 0006_history_indexes
Revises: 0005_instance_patient_key
Create Date: 2026-12-08 01:30:00

Rows stay for good (retention removes files), so what the node asks often must not scan them
all: the sweeper's receiving studies (``study.state``) and final steps not acted on yet
(``mpps.status, acted_at``, which replaces the index on ``mpps.status`` alone), delivery
retries due and problem deliveries (``delivery.state``), the status pages' newest studies and
retention's oldest (``study.last_received_at, id``), and retention's "expired yet?" per study
with the delivery failure count (``audit_event.action, entity, entity_id``). Without them
retention's pass grew with studies x audit events (measured in ``benchmarks/history.py``).
Downgrade drops them and restores ``ix_mpps_status``.
"""

from alembic import op

revision = "0006_history_indexes"
down_revision = "0005_instance_patient_key"
branch_labels = None
depends_on = None

#: (index, table, columns)
INDEXES = (
    ("ix_study_state", "study", ["state"]),
    ("ix_study_last_received_at", "study", ["last_received_at", "id"]),
    ("ix_delivery_state", "delivery", ["state"]),
    ("ix_audit_event_action_entity", "audit_event", ["action", "entity", "entity_id"]),
    ("ix_mpps_status_acted_at", "mpps", ["status", "acted_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.drop_index("ix_mpps_status", table_name="mpps")


def downgrade() -> None:
    op.create_index("ix_mpps_status", "mpps", ["status"])
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
