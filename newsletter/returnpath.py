"""The signed return addresses (VERP): where bounces and mailto unsubscribes come back.

Each message's envelope sender is ``bounces+TOKEN@<bounce domain>`` and the ``mailto:`` of its
List-Unsubscribe is ``unsubscribe+TOKEN@<bounce domain>``; TOKEN names the delivery (send run,
subscriber) and is HMAC-signed (``subscribers.tokens``), so a bounce acts on the exact delivery
it answers and a forged one acts on nobody. The sender makes these addresses, the inbound
processor reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from newsletter.config import Config
from newsletter.errors import TokenError
from subscribers.tokens import (
    BOUNCE,
    MAILTO_UNSUBSCRIBE,
    make_return_token,
    read_return_token,
)


class ReturnPurpose(StrEnum):
    BOUNCE = BOUNCE
    UNSUBSCRIBE = MAILTO_UNSUBSCRIBE


@dataclass(frozen=True)
class DeliveryRef:
    """A verified reference to one delivery, read from a return address."""

    purpose: ReturnPurpose
    run_id: int
    subscriber_id: int


def bounce_domain(config: Config) -> str:
    """``[bounces] domain``, else the domain of ``[list] from_address``."""
    domain = str(config.get("bounces", "domain")).strip()
    return domain or str(config.get("list", "from_address")).rpartition("@")[2]


def _local_part(config: Config, purpose: ReturnPurpose) -> str:
    key = "bounce_local_part" if purpose is ReturnPurpose.BOUNCE else "unsubscribe_local_part"
    return str(config.get("bounces", key)).strip()


def return_address(config: Config, purpose: ReturnPurpose, run_id: int, subscriber_id: int) -> str:
    """``<local>+TOKEN@<bounce domain>`` for the delivery (``run_id``, ``subscriber_id``)."""
    token = make_return_token(config.secret_key, purpose.value, run_id, subscriber_id)
    return f"{_local_part(config, purpose)}+{token}@{bounce_domain(config)}"


def read_return_address(config: Config, address: str) -> DeliveryRef | None:
    """The delivery a return address names, or None when it is not one of ours or its token
    does not verify (forged, truncated, another list's secret, another purpose)."""
    local, at, _domain = address.strip().strip("<>").rpartition("@")
    if not at:
        return None
    prefix, plus, token = local.partition("+")
    if not plus:
        return None
    for purpose in ReturnPurpose:
        if prefix.lower() != _local_part(config, purpose).lower():
            continue
        try:
            run_id, subscriber_id = read_return_token(config.secret_key, purpose.value, token)
        except TokenError:
            return None
        return DeliveryRef(purpose, run_id, subscriber_id)
    return None
