"""The card entity: a member's loyalty card and its member, card numbers (Luhn), serials and
auth tokens. Independent of storage and of wallet format."""
