"""Chatwoot protocol: no ORM."""
