# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The private notes the bridge leaves for the agents in Chatwoot (wording passed in by the
caller, translated to the tenant's language)."""

#: Turns of the conversation quoted in a handoff note (the newest).
NOTE_TURNS = 6
#: Characters of one quoted turn or of the customer's message.
QUOTE_CHARS = 300


def _quote(text):
    text = " ".join((text or "").split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def handoff_note(words, reason, detail, request, crew, history, closed):
    """What the agent who takes over needs: why the AI stopped, what was asked, and the
    conversation so far (its summary and the last turns).

    :param words: the note's wording: ``title``, ``detail``, ``crew``, ``closed``,
        ``message``, ``earlier``, ``last``, ``customer``, ``ai``
    :param history: ``(summary, ((role, text), ...))`` of the conversation
    """
    summary, turns = history
    lines = [f"🤖 {words['title']}: {reason}"]
    if detail:
        lines.append(f"{words['detail']}: {_quote(detail)}")
    if crew:
        lines.append(f"{words['crew']}: {crew}")
    if closed:
        lines.append(words["closed"])
    lines.append(f"{words['message']}: {_quote(request)}")
    if summary:
        lines.append(f"{words['earlier']}: {_quote(summary)}")
    recent = [(role, text) for role, text in turns if text][-NOTE_TURNS:]
    if recent:
        lines.append(f"{words['last']}:")
        names = {"user": words["customer"], "assistant": words["ai"]}
        lines.extend(f"- {names.get(role, role)}: {_quote(text)}" for role, text in recent)
    return "\n".join(lines)
