# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The hub's plain parts: a channel's customer as a Chatwoot contact, its message's content
and attachments, the conversation's attributes, and the handoff note for the agents."""

import base64
import importlib

import pytest
from conftest import load_services, load_test_double

load_services("chatwoot_bridge")
hub = importlib.import_module("chatwoot_bridge_services.hub")
handoff = importlib.import_module("chatwoot_bridge_services.handoff")
client_module = importlib.import_module("chatwoot_bridge_services.client")


def test_contact_identity_is_per_channel_connector_and_keeps_e164_phones_only():
    identity = hub.contact_identity("mercadolivre", 4, {"id": 123456789012345, "name": "Joana"})
    assert identity.identifier == "mercadolivre:4:123456789012345"
    assert identity.source_id == identity.identifier
    assert identity.name == "Joana"
    assert identity.phone_number is None
    with_phone = hub.contact_identity("webhook", 1, {"id": "c", "phone": "+5511988887777"})
    assert with_phone.phone_number == "+5511988887777"
    assert with_phone.name == "c", "no name: the channel's id stands in"
    assert (
        hub.contact_identity("webhook", 1, {"id": "c", "phone": "11 98888-7777"}).phone_number
        is None
    )


@pytest.mark.parametrize(
    ("contact", "text", "attachments", "metadata", "problem"),
    [
        ({"id": "c"}, "Oi", [], {}, None),
        ({"id": "c"}, "", [{"url": "https://x/y.png"}], {}, None),
        ({}, "Oi", [], {}, "the contact has no id"),
        ({"id": ""}, "Oi", [], {}, "the contact has no id"),
        ({"id": "c"}, "", [], {}, "neither text nor attachments"),
        ({"id": "c"}, "x" * (hub.MAX_CONTENT + 1), [], {}, "longer than"),
        ({"id": "c"}, "Oi", [{"url": "u"}] * 16, {}, "more than 15 attachments"),
        ({"id": "c"}, "Oi", [{"name": "no source"}], {}, "neither url nor data"),
        ({"id": "c"}, "Oi", [], {"blob": "x" * 20000}, "metadata is too large"),
    ],
)
def test_check_incoming(contact, text, attachments, metadata, problem):
    found = hub.check_incoming(contact, text, attachments, metadata)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_incoming_content_uploads_data_and_lists_urls():
    png = base64.b64encode(b"\x89PNG fake").decode()
    files, content = hub.incoming_content(
        "Veja",
        [
            {"name": "foto.png", "mimetype": "image/png", "data": png},
            {"name": "nota.pdf", "url": "https://files.example.com/nota.pdf"},
            {"name": "ruim.bin", "data": "not base64!"},
        ],
    )
    assert files == [("foto.png", b"\x89PNG fake", "image/png")]
    assert content.splitlines() == [
        "Veja",
        "nota.pdf: https://files.example.com/nota.pdf",
        "[ruim.bin: invalid data]",
    ]


def test_thread_attributes_are_strings_and_bounded():
    attributes = hub.thread_attributes(
        "mercadolivre", 2000004567890123456789, {"order": 2000009876543, "nested": {"a": 1}}
    )
    assert attributes == {
        "mcp_channel": "mercadolivre",
        "external_thread_id": "2000004567890123456789",
        "mcp_order": "2000009876543",
    }


def test_outgoing_attachment_gives_the_channel_a_url():
    assert hub.outgoing_attachment(
        {"file_type": "image", "data_url": "https://cw.example.com/rails/blob/foto.png"}
    ) == {
        "name": "foto.png",
        "url": "https://cw.example.com/rails/blob/foto.png",
        "file_type": "image",
    }


@pytest.fixture
def fake():
    chatwoot = load_test_double("chatwoot_bridge", "fake_chatwoot").FakeChatwoot()
    with chatwoot:
        yield chatwoot
    assert chatwoot.violations == []


def test_find_contact_matches_the_identifier_exactly(fake):
    fake.new_conversation(7, name="A", identifier="webhook:1:c-10")
    fake.new_conversation(7, name="B", identifier="webhook:1:c-1")
    with client_module.ChatwootClient(
        fake.url, fake.account_id, user_token=fake.user_token
    ) as client:
        found = hub.find_contact(client, "webhook:1:c-1")
        assert fake.contacts[found]["name"] == "B"
        assert hub.find_contact(client, "webhook:1:c-2") is None
        # a contact inbox that exists already is what the hub wants: no error
        hub.ensure_contact_inbox(client, found, 7, "webhook:1:c-1")
        hub.ensure_contact_inbox(client, found, 7, "webhook:1:c-1")


def test_handoff_note_quotes_what_the_agent_needs():
    words = {
        "title": "Transferência",
        "detail": "Detalhe",
        "crew": "Equipe",
        "closed": "Fora do horário.",
        "message": "Mensagem",
        "earlier": "Antes",
        "last": "Últimas",
        "customer": "Cliente",
        "ai": "IA",
    }
    turns = [("user", f"pergunta {n}") for n in range(10)] + [("assistant", "resposta")]
    note = handoff.handoff_note(
        words,
        reason="Pedido de reembolso",
        detail="x" * 1000,
        request="Quero meu   dinheiro\nde volta",
        crew="Suporte",
        history=("resumo antigo", turns),
        closed=True,
    )
    lines = note.splitlines()
    assert lines[0] == "🤖 Transferência: Pedido de reembolso"
    assert len(lines[1]) <= len("Detalhe: ") + handoff.QUOTE_CHARS
    assert "Fora do horário." in lines
    assert "Mensagem: Quero meu dinheiro de volta" in lines
    assert "Antes: resumo antigo" in lines
    assert lines[-1] == "- IA: resposta"
    assert len([line for line in lines if line.startswith("- ")]) == handoff.NOTE_TURNS
