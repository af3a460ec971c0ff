"""Fakes of remote services (APNs over HTTP/2+TLS, FCM and its OAuth token endpoint) for real clients to talk to."""
