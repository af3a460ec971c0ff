"""Delivery channels: one adapter per way a push leaves the service (APNs, FCM, dry run), all
behind the batch-shaped `Channel` port of base.py, and `Channels`, the table the worker picks
a channel from by (client, scope)."""
