"""The ledger's tables as ORM classes, for applications that use SQLAlchemy's Session."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Identity, Numeric
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(primary_key=True)
    balance: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))


class Operation(Base):
    """A row of ``transactions``: one payment or transfer."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(Identity(always=True), primary_key=True)
    kind: Mapped[str] = mapped_column(default="payment")
    account: Mapped[str | None] = mapped_column(ForeignKey("accounts.name"))
    counterparty: Mapped[str | None] = mapped_column(ForeignKey("accounts.name"))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    client_ref: Mapped[str]
    status: Mapped[str] = mapped_column(default="pending")
    created_at: Mapped[datetime | None] = mapped_column(server_default="now()")
