"""Push delivery: the outbox worker, APNs (aioapns) and FCM (pyfcm) senders, dry-run recording."""
