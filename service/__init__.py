"""The composition root and the use cases shared by web and CLI: building settings -> store ->
signer -> pass factory -> channels -> worker once (wiring.py), issuing a card (cards.py), ledger
intake (ledger.py), running the push worker (push.py), and geo at run time: the campaign snapshot,
app-ping areas and the campaign and message jobs (geo.py); report rows from recorded facts (reports.py)."""
