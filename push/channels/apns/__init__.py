"""APNs: the channel (sender.py) and the work on aioapns, h2 and hpack internals it runs on
(_aioapns.py)."""
