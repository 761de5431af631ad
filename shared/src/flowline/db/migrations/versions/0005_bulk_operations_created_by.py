"""bulk operations record the principal that created them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 14:40:00.000000

Only that principal (and admins) may read an operation, as with an execution's ``owned_by``. Existing rows get
it from their creation's audit row; one without (none is expected) stays unknown, which only admins then see.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bulk_operations", sa.Column("created_by", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE bulk_operations b SET created_by = a.principal FROM audit_logs a
        WHERE a.tenant_id = b.tenant_id AND a.entity_type = 'bulk_operation' AND a.entity_id = b.id::text
            AND a.action = 'create'
        """
    )


def downgrade() -> None:
    op.drop_column("bulk_operations", "created_by")
