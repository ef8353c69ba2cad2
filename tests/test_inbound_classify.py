"""Classification of inbound mail: the real-world bounce corpus flufl.bounce ships, DSNs in the
shapes of Postfix, Exim, Exchange, Gmail and Yahoo, ARF complaints, auto-replies, mailto
unsubscribes, forgeries and hostile MIME. Pure: no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import Config
from newsletter.inbound.classify import classify
from newsletter.inbound.models import InboundKind
from newsletter.returnpath import DeliveryRef, ReturnPurpose
from tests.conftest import ConfigFactory
from tests.inbound_support import (
    SHAPES,
    arf,
    auto_reply,
    bounce_address,
    dsn,
    exim_plain_bounce,
    mailto_unsubscribe,
    original_headers,
    unsubscribe_address,
)

CORPUS = Path(__file__).parent / "data" / "bounces"
RCPT = "reader0@example.net"
REF = DeliveryRef(ReturnPurpose.BOUNCE, 7, 42)


@pytest.fixture
def cfg(make_config: ConfigFactory, sqlite_url: str) -> Config:
    return make_config(sqlite_url)


# From flufl.bounce's own tests (tests/test_detectors.py): file -> temporary?
CORPUS_VERDICTS: dict[str, bool] = {
    **{f"postfix_0{i}.txt": False for i in range(1, 6)},
    "exim_01.txt": False,
    **{f"dsn_{i:02}.txt": i in (5, 6, 7, 8, 17) for i in range(1, 19)},
    "microsoft_01.txt": False,
    "microsoft_02.txt": False,
    "microsoft_04.txt": False,
    "groupwise_02.txt": False,
    **{f"yahoo_{i:02}.txt": False for i in (*range(1, 12), 13) if i != 12},
    **{f"qmail_0{i}.txt": False for i in range(1, 8)},
    "sendmail_01.txt": False,
    "aol_01.txt": False,
    "llnl_01.txt": False,
    "simple_03.txt": True,
    "simple_21.txt": True,
    "simple_22.txt": True,
    # Where flufl.bounce says "permanent" but the status code is 4.x.x (the relay gave up on a
    # temporary condition: 4.4.7 expired in the queue, #4.4.1 no connection), the status code
    # decides: a soft bounce, counted towards the policy, not a dead address.
    "dsn_02.txt": True,
    "yahoo_01.txt": True,
}


@pytest.mark.parametrize("name", sorted(CORPUS_VERDICTS))
def test_corpus_bounce_reaching_a_verp_address_is_classified(cfg: Config, name: str) -> None:
    """Every real-world bounce of flufl.bounce's corpus that reaches our VERP address is a
    hard or soft bounce of the delivery the address names, as flufl.bounce's tests expect."""
    raw = (CORPUS / name).read_bytes()
    found = classify(cfg, raw, [bounce_address(cfg, 7, 42)])
    expected = InboundKind.SOFT_BOUNCE if CORPUS_VERDICTS[name] else InboundKind.HARD_BOUNCE
    assert (found.kind, found.ref) == (expected, REF), found.note


@pytest.mark.parametrize("name", sorted(CORPUS_VERDICTS))
def test_corpus_bounce_without_our_token_is_unclassified(cfg: Config, name: str) -> None:
    """The same bounces addressed anywhere else act on nobody: they are kept unclassified,
    with what was detected in the note."""
    found = classify(cfg, (CORPUS / name).read_bytes(), ["mailman-bounces@example.org"])
    assert found.kind is InboundKind.UNCLASSIFIED and found.ref is None
    assert "bounce" in found.note and "not acted on" in found.note


@pytest.mark.parametrize("name", ["groupwise_03.txt", "dumbass_01.txt"])
def test_corpus_non_bounces_stay_unclassified(cfg: Config, name: str) -> None:
    """Messages flufl.bounce recognises as no bounce are unclassified, even at our address."""
    found = classify(cfg, (CORPUS / name).read_bytes(), [bounce_address(cfg, 7, 42)])
    assert found.kind is InboundKind.UNCLASSIFIED


@pytest.mark.parametrize("shape", SHAPES)
def test_dsn_shapes_hard_and_soft_by_status_code(cfg: Config, shape: str) -> None:
    """An RFC 3464 DSN in each MTA's shape is hard for 5.x.x and soft for 4.x.x (Action
    delayed), and names the delivery of its To: address, with the status and diagnostic."""
    hard = classify(cfg, dsn(cfg, 7, 42, RCPT, shape=shape))
    assert (hard.kind, hard.ref, hard.status_code) == (InboundKind.HARD_BOUNCE, REF, "5.1.1")
    assert "User unknown" in hard.reason
    soft = classify(
        cfg,
        dsn(cfg, 7, 42, RCPT, shape=shape, status="4.2.2", action="delayed", diagnostic="x"),
    )
    assert (soft.kind, soft.ref, soft.status_code) == (InboundKind.SOFT_BOUNCE, REF, "4.2.2")


def test_failed_action_with_temporary_status_is_soft(cfg: Config) -> None:
    """Permanent versus temporary comes from the status code: Action failed with 4.4.7
    (expired in the queue) is a soft bounce."""
    found = classify(cfg, dsn(cfg, 7, 42, RCPT, status="4.4.7", action="failed"))
    assert found.kind is InboundKind.SOFT_BOUNCE


def test_exchange_enhanced_status_with_two_digit_detail(cfg: Config) -> None:
    """Exchange's 5.1.10 (RecipientNotFound) is read whole."""
    diagnostic = "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found"
    found = classify(
        cfg, dsn(cfg, 7, 42, RCPT, shape="exchange", status="5.1.10", diagnostic=diagnostic)
    )
    assert (found.kind, found.status_code) == (InboundKind.HARD_BOUNCE, "5.1.10")


def test_success_dsn_is_ignored(cfg: Config) -> None:
    """A DSN that reports delivery (Action: delivered) is ignored, like an auto-reply."""
    found = classify(cfg, dsn(cfg, 7, 42, RCPT, status="2.0.0", action="delivered"))
    assert found.kind is InboundKind.AUTO_REPLY


def test_exim_plain_bounce_goes_through_flufl(cfg: Config) -> None:
    """Exim's classic non-RFC bounce (X-Failed-Recipients) is a hard bounce via flufl.bounce."""
    found = classify(cfg, exim_plain_bounce(cfg, 7, 42, RCPT))
    assert (found.kind, found.ref) == (InboundKind.HARD_BOUNCE, REF)


def test_arf_complaint_names_the_delivery_from_the_returned_original(cfg: Config) -> None:
    """An ARF report sent to a fixed feedback address is a complaint about the delivery whose
    token is in the returned original's Return-Path."""
    found = classify(cfg, arf(cfg, 7, 42, RCPT))
    assert (found.kind, found.ref) == (InboundKind.COMPLAINT, REF)
    assert found.reason == "Feedback-Type: abuse"


def test_arf_with_only_the_list_unsubscribe_token(cfg: Config) -> None:
    """A feedback loop that strips Return-Path still names the delivery through the
    List-Unsubscribe mailto token."""
    headers = original_headers(cfg, 7, 42, RCPT).split("\r\n", 1)[1]
    found = classify(cfg, arf(cfg, 7, 42, RCPT, original=headers))
    assert found.kind is InboundKind.COMPLAINT
    assert found.ref == DeliveryRef(ReturnPurpose.UNSUBSCRIBE, 7, 42)


def test_mailto_unsubscribe(cfg: Config) -> None:
    """A message to unsubscribe+TOKEN is a mailto unsubscribe of that delivery."""
    found = classify(cfg, mailto_unsubscribe(unsubscribe_address(cfg, 7, 42)))
    assert found.kind is InboundKind.UNSUBSCRIBE
    assert found.ref == DeliveryRef(ReturnPurpose.UNSUBSCRIBE, 7, 42)


def test_auto_reply_is_ignored_even_at_a_verp_address(cfg: Config) -> None:
    """An RFC 3834 out-of-office reply is ignored, wherever it was sent."""
    assert classify(cfg, auto_reply(bounce_address(cfg, 7, 42))).kind is InboundKind.AUTO_REPLY
    assert classify(cfg, auto_reply("liens@example.org")).kind is InboundKind.AUTO_REPLY


def _forgeries(cfg: Config, other: Config, case: str) -> tuple[str, str]:
    """(an address for a DSN, an address for a mailto unsubscribe) forged the way ``case``
    says."""
    pairs = []
    for make, local_part in ((bounce_address, "bounces"), (unsubscribe_address, "unsubscribe")):
        local, _, domain = make(cfg, 7, 42).partition("@")
        token = local.partition("+")[2]
        forged = {
            "forged": local[:-4] + "aaaa",
            "truncated": local[:-6],
            "other subscriber": local.replace("-42-", "-43-"),
            "other list": make(other, 7, 42).partition("@")[0],
            "none": local_part,
            # The other purpose's genuine token under this local part.
            "other purpose": local_part
            + "+"
            + (unsubscribe_address if make is bounce_address else bounce_address)(cfg, 7, 42)
            .partition("+")[2]
            .partition("@")[0],
        }[case]
        assert forged.partition("+")[2] != token
        pairs.append(f"{forged}@{domain}")
    return pairs[0], pairs[1]


@pytest.fixture
def other_list(make_config: ConfigFactory, sqlite_url: str) -> Config:
    return make_config(sqlite_url, web__secret_key="another-list-secret-0123456789abcdef0123")


@pytest.mark.parametrize(
    "case", ["forged", "truncated", "other subscriber", "other list", "none", "other purpose"]
)
def test_forged_tokens_name_no_delivery(cfg: Config, other_list: Config, case: str) -> None:
    """A DSN, complaint or mailto whose token is forged, truncated, for another list or
    missing names no delivery: unclassified, never acted on."""
    address, mailto = _forgeries(cfg, other_list, case)
    for raw, to in (
        (dsn(cfg, 7, 42, RCPT, to=address), address),
        (mailto_unsubscribe(mailto), mailto),
    ):
        found = classify(cfg, raw, [to])
        assert found.kind is InboundKind.UNCLASSIFIED and found.ref is None
    forged_original = f"Return-Path: <{address}>\r\nSubject: x\r\n"
    found = classify(cfg, arf(cfg, 7, 42, RCPT, original=forged_original))
    assert found.kind is InboundKind.UNCLASSIFIED and found.ref is None


def test_token_survives_a_lower_casing_mta(cfg: Config) -> None:
    """Some MTAs lower-case local parts; the token is case-insensitive by construction."""
    address = bounce_address(cfg, 7, 42)
    assert classify(cfg, dsn(cfg, 7, 42, RCPT, to=address.upper())).ref == REF


def _nested(depth: int) -> bytes:
    inner = b"From: a@example.net\r\nSubject: innermost\r\n\r\nhello\r\n"
    for level in range(depth):
        inner = (
            f"From: l{level}@example.net\r\nSubject: level {level}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode() + inner
    return inner


HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "garbage": bytes(range(256)) * 4,
    "truncated mime": (
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; a\r\n\r\n"
        b"Final-Recipient: rfc822; a@b\r\nAct"
    ),
    "wrong charsets": (
        b"Subject: =?x-unknown-charset?B?w6l0w6k=?=\r\nFrom: =?utf-8?Q?=FF=FE?= <a@b>\r\n"
        b"Content-Type: text/plain; charset=klingon\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"not base64 at all \xff\xfe\r\n"
    ),
    "nested 50 deep": _nested(50),
    "10 MB attachment": (
        b"Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n"
        * (10 * 1024 * 1024 // 78)
        + b"--b--\r\n"
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_mime_is_unclassified_and_never_raises(cfg: Config, case: str) -> None:
    """Truncated MIME, wrong charsets, garbage, a 10 MB attachment and message/rfc822 nested
    50 deep are classified as unclassified without raising."""
    found = classify(cfg, HOSTILE[case], [bounce_address(cfg, 7, 42)])
    assert found.kind is InboundKind.UNCLASSIFIED
