# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Webhook signatures, Chatwoot's scheme: known vectors, the time window, several secrets, and
errors that never show a secret or the body."""

import hashlib
import hmac
import json
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parent.parent / "addons/chatwoot_bridge/tests/data/chatwoot"
HEADERS = json.loads((REFERENCE / "webhook_delivery_headers.json").read_text())
TIMESTAMP = HEADERS["headers"]["X-Chatwoot-Timestamp"]  # "1771006931"
NOW = int(TIMESTAMP)
BODY = (REFERENCE / "wh_message_created_incoming_contact.json").read_bytes()
SECRET = "cw-webhook-secret"
# Computed outside Python: (printf '1771006931.'; cat wh_message_created_incoming_contact.json)
#   | openssl dgst -sha256 -hmac 'cw-webhook-secret'
SAMPLE_SIGNATURE = "sha256=e75ca14ee733e6c26c491ba877c6d4318cea475b1afc5d4e77ee29ae4b253cf5"


@pytest.fixture(scope="module")
def signing(services):
    from mcp_integrator_services import signing

    return signing


def documented_signature(secret, timestamp, body):
    """The signature built from the reference's header and signing-string templates."""
    template = HEADERS["signing_string"]
    separator = template.removeprefix("<X-Chatwoot-Timestamp>").removesuffix(
        "<exact raw request body bytes>"
    )
    assert separator == "."
    prefix = HEADERS["headers"]["X-Chatwoot-Signature"].split("<", 1)[0]
    assert prefix == "sha256="
    key = secret.encode() if isinstance(secret, str) else secret
    message = str(timestamp).encode() + separator.encode() + body
    return prefix + hmac.new(key, message, hashlib.sha256).hexdigest()


def test_sign_matches_the_documented_recipe_and_openssl(signing):
    assert documented_signature(SECRET, TIMESTAMP, BODY) == SAMPLE_SIGNATURE
    assert signing.sign(SECRET, TIMESTAMP, BODY) == SAMPLE_SIGNATURE
    assert signing.sign(SECRET, NOW, BODY) == SAMPLE_SIGNATURE


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        # printf '1700000000.{"event":"message_created","id":1}' | openssl dgst -sha256 -hmac s3cr3t
        ("s3cr3t", "04138dcc53323f6d45a6017e6ecde3e44d8a8fd47345498ffe2c3c7216510220"),
        # ... | openssl dgst -sha256 -mac HMAC -macopt hexkey:00ff7f80 (a key that is not text)
        (b"\x00\xff\x7f\x80", "b2dc134959fc143a1a1ddc2f183a97f5d37161dadd8d65e95f81ff3d376a2326"),
    ],
)
def test_sign_small_vectors(signing, secret, expected):
    body = b'{"event":"message_created","id":1}'
    assert signing.sign(secret, 1700000000, body) == "sha256=" + expected
    signing.verify([secret], body, "1700000000", "sha256=" + expected, now=1700000000)


def test_the_sample_delivery_verifies(signing):
    signing.verify([SECRET], BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW)


def test_str_and_bytes_secrets_are_the_same_key(signing):
    secret = "segrêdo-çã"
    assert signing.sign(secret, NOW, BODY) == signing.sign(secret.encode(), NOW, BODY)
    assert signing.sign(secret, NOW, BODY) == documented_signature(secret.encode(), NOW, BODY)
    signing.verify([secret.encode()], BODY, TIMESTAMP, signing.sign(secret, NOW, BODY), now=NOW)


def test_the_body_bytes_may_come_as_bytearray_or_memoryview(signing):
    assert signing.sign(SECRET, NOW, bytearray(BODY)) == SAMPLE_SIGNATURE
    signing.verify([SECRET], memoryview(BODY), TIMESTAMP, SAMPLE_SIGNATURE, now=NOW)


def test_upper_case_hex_verifies(signing):
    signature = "sha256=" + SAMPLE_SIGNATURE.removeprefix("sha256=").upper()
    signing.verify([SECRET], BODY, TIMESTAMP, signature, now=NOW)


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_inside_the_window_verify(signing, offset):
    signing.verify([SECRET], BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW + offset)


@pytest.mark.parametrize("offset", [-301, 301, 86400, -86400])
def test_timestamps_outside_the_window_are_stale(signing, offset):
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify([SECRET], BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW + offset)
    assert raised.value.reason == "stale timestamp"


def test_the_window_can_be_set(signing):
    signing.verify([SECRET], BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW + 30, window=30)
    with pytest.raises(signing.SignatureError, match="stale timestamp"):
        signing.verify([SECRET], BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW + 31, window=30)


def test_a_fractional_now_is_compared_in_seconds(signing):
    signing.verify([SECRET], BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW + 299.9)
    with pytest.raises(signing.SignatureError, match="stale timestamp"):
        signing.verify([SECRET], BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW + 300.5)


@pytest.mark.parametrize(
    "secrets",
    [
        ["agent-bot-secret", SECRET],
        [SECRET, "agent-bot-secret", "api-inbox-secret"],
        ("agent-bot-secret", "api-inbox-secret", SECRET.encode()),
        (secret for secret in ("other", SECRET)),
        ["", None, SECRET],
    ],
)
def test_any_configured_secret_may_match(signing, secrets):
    signing.verify(secrets, BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW)


def test_no_matching_secret_is_a_mismatch(signing):
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify(
            ["agent-bot-secret", "api-inbox-secret"], BODY, TIMESTAMP, SAMPLE_SIGNATURE, NOW
        )
    assert raised.value.reason == "signature mismatch"


@pytest.mark.parametrize("secrets", [[], (), None, [""], [b""], ["", None]])
def test_no_secret_configured_is_an_error_callers_can_fail_closed_on(signing, secrets):
    """An empty secret does not count: anyone can sign with an empty key."""
    unsigned_by_empty_key = signing.sign("", NOW, BODY)
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify(secrets, BODY, TIMESTAMP, unsigned_by_empty_key, now=NOW)
    assert raised.value.reason == "no signing secret configured"


@pytest.mark.parametrize("secrets", [SECRET, SECRET.encode()])
def test_one_secret_instead_of_a_collection_is_a_programming_error(signing, secrets):
    with pytest.raises(TypeError):
        signing.verify(secrets, BODY, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW)


def test_a_str_body_is_a_programming_error(signing):
    with pytest.raises(TypeError):
        signing.sign(SECRET, NOW, BODY.decode())
    with pytest.raises(TypeError):
        signing.verify([SECRET], BODY.decode(), TIMESTAMP, SAMPLE_SIGNATURE, now=NOW)


CHANGED_BODIES = {
    "reserialised": json.dumps(json.loads(BODY)).encode(),  # ASCII escapes, one line
    "reindented": json.dumps(json.loads(BODY), ensure_ascii=False, indent=4).encode(),
    "compact": json.dumps(json.loads(BODY), ensure_ascii=False, separators=(",", ":")).encode(),
    "trailing newline": BODY + b"\n",
    "one space less": BODY.replace(b'"private": false', b'"private":false', 1),
    "other id": BODY.replace(b"88001", b"88002"),
    "empty": b"",
}


@pytest.mark.parametrize("body", CHANGED_BODIES.values(), ids=CHANGED_BODIES.keys())
def test_any_change_to_the_raw_body_fails(signing, body):
    assert body != BODY
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify([SECRET], body, TIMESTAMP, SAMPLE_SIGNATURE, now=NOW)
    assert raised.value.reason == "signature mismatch"


def test_the_timestamp_is_signed(signing):
    later = str(NOW + 1)
    with pytest.raises(signing.SignatureError, match="signature mismatch"):
        signing.verify([SECRET], BODY, later, SAMPLE_SIGNATURE, now=NOW)
    signing.verify([SECRET], BODY, later, signing.sign(SECRET, later, BODY), now=NOW)


def test_a_signature_over_the_body_alone_fails(signing):
    """The mistake of issue #13809: signing the body without the timestamp."""
    body_only = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    with pytest.raises(signing.SignatureError, match="signature mismatch"):
        signing.verify([SECRET], BODY, TIMESTAMP, body_only, now=NOW)


@pytest.mark.parametrize("signature", [None, ""])
def test_a_missing_signature_is_an_error(signing, signature):
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify([SECRET], BODY, TIMESTAMP, signature, now=NOW)
    assert raised.value.reason == "missing signature"


@pytest.mark.parametrize("timestamp", [None, ""])
def test_a_missing_timestamp_is_an_error(signing, timestamp):
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify([SECRET], BODY, timestamp, SAMPLE_SIGNATURE, now=NOW)
    assert raised.value.reason == "missing timestamp"


@pytest.mark.parametrize(
    "timestamp",
    [
        "abc",
        "1771006931.0",
        "+1771006931",
        "-1771006931",
        " 1771006931",
        "1771006931 ",
        "1_771_006_931",
        "\u0661\u0667\u0667\u0661",  # Arabic-Indic digits: int() takes them
        "1" * 16,
        -1,
        True,
        1771006931.0,
        [1771006931],
    ],
)
def test_a_timestamp_that_is_not_an_integer_is_an_error(signing, timestamp):
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify([SECRET], BODY, timestamp, SAMPLE_SIGNATURE, now=NOW)
    assert raised.value.reason == "timestamp is not an integer"


def test_an_int_timestamp_verifies(signing):
    signing.verify([SECRET], BODY, NOW, SAMPLE_SIGNATURE, now=NOW)


@pytest.mark.parametrize(
    "signature",
    [
        SAMPLE_SIGNATURE.removeprefix("sha256="),  # bare hex
        "SHA256=" + SAMPLE_SIGNATURE.removeprefix("sha256="),
        "sha1=" + "a" * 40,
        "sha256=" + "a" * 63,
        "sha256=" + "a" * 65,
        "sha256=" + "g" * 64,
        "sha256= " + "a" * 64,
        SAMPLE_SIGNATURE + ",sha256=" + "a" * 64,
        SAMPLE_SIGNATURE.encode(),
        "sha256=" + "\u0661" * 64,
    ],
)
def test_a_malformed_signature_is_an_error(signing, signature):
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify([SECRET], BODY, TIMESTAMP, signature, now=NOW)
    assert raised.value.reason == "malformed signature"


@pytest.mark.parametrize(
    ("secrets", "timestamp", "signature", "now"),
    [
        ([], TIMESTAMP, SAMPLE_SIGNATURE, NOW),
        ([SECRET], TIMESTAMP, None, NOW),
        ([SECRET], None, SAMPLE_SIGNATURE, NOW),
        ([SECRET], "x", SAMPLE_SIGNATURE, NOW),
        ([SECRET], TIMESTAMP, SAMPLE_SIGNATURE, NOW + 3600),
        ([SECRET], TIMESTAMP, "sha256=zz", NOW),
        (["wrong-secret", SECRET + "x"], TIMESTAMP, SAMPLE_SIGNATURE, NOW),
    ],
)
def test_errors_show_neither_secrets_nor_body_nor_signatures(
    signing, secrets, timestamp, signature, now
):
    with pytest.raises(signing.SignatureError) as raised:
        signing.verify(secrets, BODY, timestamp, signature, now=now)
    error = raised.value
    shown = " ".join([str(error), repr(error), error.reason, str(error.args)])
    assert error.reason.isascii() and len(error.reason) < 40
    for forbidden in (SECRET, "wrong-secret", "Olá", "88001", SAMPLE_SIGNATURE[7:]):
        assert forbidden not in shown
