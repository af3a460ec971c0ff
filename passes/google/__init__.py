"""Google Wallet: the loyalty class/object JSON, the "Save to Google Wallet" link, callback checks.

Everything in this folder is pure (no network, no clock unless passed in, no storage):
  model.py       LoyaltyClass / LoyaltyObject bodies and their ids, from the same program template
                 and card state as the Apple pass (passes/apple/pass_json.py)
  save_link.py   the save-link JWT (full or skinny form)
  callbacks.py   verification of Google's signed save/delete callbacks (ECv2SigningOnly)
The REST client and the outbox worker that send these bodies live at the edges (push/channels/).
"""
