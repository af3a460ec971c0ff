"""The request bodies that handlers read with a declaration (web/validation.py), so the rules they enforce
and the schema /openapi.json shows are one object. Bodies read by hand elsewhere, and answers, are
described in web/schemas.py."""

from __future__ import annotations

import re

from cards.bounds import POINTS_MAX
from web.validation import ACCOUNT_RE, EMAIL_RE, PHONE_RE, Body, Integer, Obj, Text

MEMBER = Body(
    "Member",
    {
        "name": Text(max_len=100, description="shown on the pass: one line"),
        "phone": Text(required=False, max_len=16, pattern=PHONE_RE, description="E.164, e.g. +79001234567"),
        "email": Text(required=False, max_len=254, pattern=EMAIL_RE, format="email"),
    },
)

NEW_CARD = Body(
    "NewCard",
    {
        "program": Text(max_len=64, one_of="programs", description="a program of GET /v1/programs (another: 404)"),
        "account": Text(
            max_len=128,
            pattern=ACCOUNT_RE,
            description="the ledger's account id; the same account again answers with its card",
        ),
        "member": Obj(MEMBER),
        "balance": Integer(required=False, default=0, minimum=0, maximum=POINTS_MAX),
        "tier": Text(
            required=False,
            max_len=32,
            one_of="tiers",
            description="a tier of the program; by default the one the balance reaches",
        ),
        "locale": Text(
            required=False,
            max_len=16,
            one_of="locales",
            description="a locale of the program; by default the program's default locale",
        ),
        "store": Text(
            required=False,
            max_len=64,
            pattern=re.compile(r"^[A-Za-z0-9._-]{1,64}$"),
            description="the enrolment store (an id of PUT /v1/stores in this program): until the companion "
            "app reports where the member is, the pass shows the campaign stores nearest to it",
        ),
    },
    description="Strings are trimmed of surrounding white space and may not hold control characters, "
    "bidirectional formatting characters (U+202A-U+202E, U+2066-U+2069) or lone UTF-16 surrogates.",
)
