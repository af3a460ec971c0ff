"""The composition root and the use cases shared by web and CLI: building settings -> store ->
signer -> pass factory -> channels -> worker once (wiring.py), issuing a card (cards.py), ledger
intake (ledger.py), and running the push worker (push.py)."""
