# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Chatwoot as the hub of other channels: how a channel's customer, thread and message
become a Chatwoot contact, conversation and incoming message in an API inbox."""

import base64
import binascii
import json
from dataclasses import dataclass

from .client import ChatwootError

#: Chatwoot's limits (chatwoot.md §4): message content, attachments per message, attribute text.
MAX_CONTENT = 150_000
MAX_ATTACHMENTS = 15
MAX_ATTRIBUTE_TEXT = 1_499
MAX_METADATA_BYTES = 16_384
MAX_ATTACHMENT_BYTES = 40 * 1024 * 1024


@dataclass(frozen=True)
class ContactIdentity:
    """A channel's customer as a Chatwoot contact: the identifier is unique per account, so
    it carries the channel connector (the same person on two channels is two contacts)."""

    identifier: str
    source_id: str
    name: str
    email: str | None
    phone_number: str | None


def contact_identity(channel_type, connector_id, contact):
    external_id = str(contact["id"])
    identifier = f"{channel_type}:{connector_id}:{external_id}"
    phone = contact.get("phone") or None
    return ContactIdentity(
        identifier=identifier,
        source_id=identifier,
        name=(contact.get("name") or external_id)[:255],
        email=contact.get("email") or None,
        # Chatwoot takes E.164 only
        phone_number=phone if phone and phone.startswith("+") and phone[1:].isdigit() else None,
    )


def check_incoming(contact, text, attachments, metadata):
    """Why a channel's message cannot go into Chatwoot as it is, or None."""
    if not isinstance(contact, dict) or contact.get("id") in (None, ""):
        return "the contact has no id"
    if not text and not attachments:
        return "the message has neither text nor attachments"
    if len(text) > MAX_CONTENT:
        return f"the text is longer than Chatwoot's {MAX_CONTENT} characters"
    if len(attachments) > MAX_ATTACHMENTS:
        return f"more than {MAX_ATTACHMENTS} attachments"
    for item in attachments:
        if not isinstance(item, dict) or not (item.get("url") or item.get("data")):
            return "an attachment has neither url nor data"
    if len(json.dumps(metadata, default=str)) > MAX_METADATA_BYTES:
        return "the metadata is too large"
    return None


def incoming_content(text, attachments):
    """``(files, content)``: the attachments carried as data become uploaded files; those
    known by URL are listed under the text (Chatwoot fetches no URL for API inboxes)."""
    files, links = [], []
    for item in attachments:
        name = item.get("name") or "attachment"
        if item.get("data"):
            try:
                data = base64.b64decode(item["data"], validate=True)
            except (binascii.Error, ValueError):
                links.append(f"[{name}: invalid data]")
                continue
            if len(data) > MAX_ATTACHMENT_BYTES:
                links.append(f"[{name}: larger than Chatwoot accepts]")
                continue
            files.append((name, data, item.get("mimetype") or "application/octet-stream"))
        else:
            links.append(f"{name}: {item['url']}")
    content = "\n".join([text, *links]) if links else text
    return files, content[:MAX_CONTENT]


def outgoing_attachment(attachment):
    """What a channel connector gets of a Chatwoot attachment: its URL, name and type."""
    url = attachment.get("data_url") or ""
    return {
        "name": url.rsplit("/", 1)[-1] or "attachment",
        "url": url,
        "file_type": attachment.get("file_type"),
    }


def thread_attributes(channel_type, thread_id, metadata):
    """The conversation's additional attributes: its channel and thread, as strings (a
    marketplace's 13+ digit ids overflow Chatwoot's integer attributes)."""
    attributes = {"mcp_channel": channel_type, "external_thread_id": str(thread_id)}
    for key, value in (metadata or {}).items():
        if isinstance(value, (str, int, float, bool)) and len(attributes) < 20:
            attributes[f"mcp_{key}"[:64]] = str(value)[:MAX_ATTRIBUTE_TEXT]
    return attributes


def find_contact(client, identifier):
    """The id of the account's contact with exactly this identifier, or None."""
    for contact in client.search_contacts(identifier):
        if contact.get("identifier") == identifier:
            return contact["id"]
    return None


def find_contact_by_address(client, phone_number=None, email=None):
    """The id of the account's contact with exactly this phone number or e-mail, or None:
    the same customer may exist already (in one of Chatwoot's own inboxes, or another
    channel's) under another identifier, and Chatwoot keeps phones and e-mails unique."""
    for field, value in (("phone_number", phone_number), ("email", email)):
        if not value:
            continue
        for contact in client.search_contacts(value):
            if (contact.get(field) or "").lower() == value.lower():
                return contact["id"]
    return None


def ensure_contact_inbox(client, contact_id, inbox_id, source_id):
    """Give an existing contact its contact inbox in the API inbox; Chatwoot answers 422
    when it already has one with this source id, which is what we want."""
    try:
        client.create_contact_inbox(contact_id, inbox_id, source_id)
    except ChatwootError as error:
        if error.status != 422:
            raise
